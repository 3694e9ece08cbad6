#!/usr/bin/env bash
# `kite make` benchmarks on simulated clusters (issue 4). Prints a Markdown table of
#   1. per-recipe overhead: a Makefile of N trivial recipes (`true`), `kite make -j8` with
#      one guest host (node2, 8 slots) against `make -j8` at home (node1): ms per recipe;
#   2. speedup: the generated project (tests/integration/gen_make_project.sh, 240 C files,
#      recursive make) with `kite make` on 4 hosts against `make -j2` on one host, and the same
#      build with Debian's distcc over the same 4 hosts (distccd on node2..node4, 2 jobs each,
#      node1 compiling too: `make -j8 CC="distcc gcc"`; plain mode, no pump: the preprocessor
#      runs on node1), and in pump mode (distcc-pump: headers shipped, remote preprocessing).
# Every host is capped to the same CPU fraction (default 0.5 core): the speedup compares N
# capped hosts with one capped host; say so wherever a figure is quoted. Run it alone, under
# the build lock: flock /tmp/kite-build.lock bench/make/run.sh [RECIPES] [CPU]
set -euo pipefail

recipes=${1:-500}
cpu=${2:-0.5}
repo=$(cd "$(dirname "$0")/../.." && pwd)
cluster="$repo/scripts/cluster"
gen="$repo/tests/integration/gen_make_project.sh"
export KITE_BIN=${KITE_BIN:-$repo/build/bin}
name="kmb$$"

cleanup() { "$cluster" --name "$name" down >/dev/null 2>&1 || true; }
trap cleanup EXIT

in_host() { "$cluster" --name "$name" exec "$@"; }
# Wall seconds of a command run in a host (the clock is read inside the host, around it).
timed() {
  local host=$1; shift
  in_host "$host" -- sh -c 's=$(date +%s.%N); '"$*"' >/dev/null 2>&1 || exit 1; e=$(date +%s.%N); echo "$e - $s" | bc -l'
}

echo "1/2: $recipes trivial recipes, one guest host, ${cpu} core per host..." >&2
"$cluster" --name "$name" up 2 --slots 8 --cpu "$cpu" >&2
in_host node1 -- sh -c "mkdir -p /kite/trivial && cd /kite/trivial && {
  printf 'all:'; i=1; while [ \$i -le $recipes ]; do printf ' t%d' \$i; i=\$((i+1)); done; printf '\n'
  printf 't%%:\n\ttrue\n.PHONY: all\n'; } > Makefile"
# Warm up the page cache and the daemons' connections once, then measure.
timed node1 "cd /kite/trivial && kite make --quiet -j8" >/dev/null
t_make=$(timed node1 "cd /kite/trivial && make -j8")
t_kite=$(timed node1 "cd /kite/trivial && kite make --quiet -j8")
where=$(in_host node1 -- sh -c "cd /kite/trivial && kite make -j8 2>&1 >/dev/null | grep -E '^  ' | tr -s ' ' | tr '\n' ';'")
cleanup

echo "2/2: generated project, 4 hosts vs 1 host, ${cpu} core per host..." >&2
"$cluster" --name "$name" up 4 --cpu "$cpu" >&2
in_host node1 -- sh -c "$gen /kite/kite 4 3 20 && $gen /kite/local 4 3 20"
t_local=$(timed node1 "cd /kite/local && make -j2")
t_dist=$(timed node1 "cd /kite/kite && kite make --quiet")
jobs=$(in_host node1 -- sh -c "cd /kite/kite && make -s clean >/dev/null 2>&1; find . -name '*.[oa]' -delete; rm -f app; kite make 2>&1 >/dev/null | grep -E '^  ' | tr -s ' ' | tr '\n' ';'")
t_distcc=""
distcc_where=""
t_pump=""
pump_where=""
if command -v distccd >/dev/null && command -v distcc >/dev/null; then
  subnet=$(<"/run/kite-sim/$name/subnet")
  dhosts="localhost/2"
  for k in 2 3 4; do
    addr=$(awk -v h="node$k" '$1 == h {print $2}' "/run/kite-sim/$name/hosts")
    # The log goes where distccd's user (nobody) may write it: the counts below come from it.
    in_host "node$k" -- sh -c "touch /run/kite/distccd.log && chown nobody /run/kite/distccd.log &&
      distccd --daemon --allow $subnet.0/24 --listen $addr --jobs 2 --user nobody --log-level info \
        --log-file /run/kite/distccd.log"
    dhosts="$dhosts $addr/2"
  done
  in_host node1 -- sh -c "$gen /kite/distcc 4 3 20"
  sleep 1
  # DISTCC_DIR must exist: without its lock directory distcc silently compiles everything locally.
  in_host node1 -- mkdir -p /tmp/distcc-bench
  t_distcc=$(timed node1 "cd /kite/distcc && DISTCC_HOSTS='$dhosts' DISTCC_DIR=/tmp/distcc-bench make -j8 CC='distcc gcc'")
  same=$(in_host node1 -- sh -c "cd /kite/distcc && n=0; for f in \$(find . -name '*.o'); do cmp -s \$f /kite/local/\$f || n=\$((n+1)); done; echo \$n")
  remote=""
  for k in 2 3 4; do
    remote="$remote node$k $(in_host "node$k" -- sh -c 'grep -c COMPILE_OK /run/kite/distccd.log || true')"
  done
  echo "distcc build: $same objects differ from the plain make's; compiled remotely:$remote" >&2
  distcc_where="compiled remotely:$remote"
  if command -v distcc-pump >/dev/null; then
    # Pump mode: the include server ships headers and the remote hosts preprocess too.
    phosts="localhost/2"
    for k in 2 3 4; do
      in_host "node$k" -- sh -c ': > /run/kite/distccd.log'
      phosts="$phosts $(awk -v h="node$k" '$1 == h {print $2}' "/run/kite-sim/$name/hosts")/2,cpp,lzo"
    done
    in_host node1 -- sh -c "rm -rf /kite/distcc && $gen /kite/distcc 4 3 20"
    t_pump=$(timed node1 "cd /kite/distcc && DISTCC_HOSTS='$phosts' DISTCC_DIR=/tmp/distcc-bench distcc-pump make -j8 CC='distcc gcc'")
    remote=""
    for k in 2 3 4; do
      remote="$remote node$k $(in_host "node$k" -- sh -c 'grep -c COMPILE_OK /run/kite/distccd.log || true')"
    done
    same=$(in_host node1 -- sh -c "cd /kite/distcc && n=0; for f in \$(find . -name '*.o'); do cmp -s \$f /kite/local/\$f || n=\$((n+1)); done; echo \$n")
    echo "distcc pump build: $same objects differ from the plain make's; compiled remotely:$remote" >&2
    pump_where="compiled remotely:$remote"
  fi
fi

awk -v n="$recipes" -v tm="$t_make" -v tk="$t_kite" -v tl="$t_local" -v td="$t_dist" -v tc="$t_distcc" -v dw="${distcc_where:-}" -v tp="$t_pump" -v pw="${pump_where:-}" -v cpu="$cpu" \
    -v where="$where" -v jobs="$jobs" 'BEGIN {
  printf "| benchmark | plain make | kite make | result |\n|---|---|---|---|\n"
  printf "| %d trivial recipes, -j8, 1 guest host (%s) | %.2f s | %.2f s | %.1f ms overhead per recipe |\n", \
         n, where, tm, tk, (tk - tm) * 1000 / n
  printf "| 240-file recursive C project: make -j2 on 1 host vs kite make on 4 hosts (%s) | %.2f s | %.2f s | speedup %.2f |\n", \
         jobs, tl, td, tl / td
  if (tc != "") printf "| the same project with distcc on the same 4 hosts (make -j8 CC=\"distcc gcc\"; %s) | %.2f s | %.2f s (kite make) | distcc %.2f s: speedup %.2f; kite make is %.2fx as fast as distcc |\n", \
         dw, tl, td, tc, tl / tc, tc / td
  if (tp != "") printf "| the same with distcc pump mode (distcc-pump make -j8 CC=\"distcc gcc\"; %s) | %.2f s | %.2f s (kite make) | distcc pump %.2f s: speedup %.2f; kite make is %.2fx as fast |\n", \
         pw, tl, td, tp, tl / tp, tp / td
  printf "\nEvery host capped to %s core (cgroup cpu quota); 4 capped hosts vs 1 capped host.\n", cpu
}'
