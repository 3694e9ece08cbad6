#!/usr/bin/env bash
# `kite make` benchmarks on simulated clusters (issue 4). Prints a Markdown table of
#   1. per-recipe overhead: a Makefile of N trivial recipes (`true`), `kite make -j8` with
#      one guest host (node2, 8 slots) against `make -j8` at home (node1): ms per recipe;
#   2. speedup: the generated project (tests/integration/gen_make_project.sh, 240 C files,
#      recursive make) with `kite make` on 4 hosts against `make -j2` on one host, and the same
#      build with Debian's distcc over the same 4 hosts (distccd on node2..node4, 2 jobs each,
#      node1 compiling too: `make -j8 CC="distcc gcc"`; plain mode, no pump: the preprocessor
#      runs on node1), and in pump mode (distcc-pump: headers shipped, remote preprocessing),
#      and with Debian's icecc (icecc-scheduler on node1, iceccd with 2 jobs on every host,
#      `make -j8 CC="icecc gcc"`; the compiler environment is made and shipped in a warm-up
#      build first, as a team's daemons would already hold it).
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
# The peer tools on the same hosts, each on a fresh copy of the project (bench/make/peers.sh).
# shellcheck source=bench/make/peers.sh
source "$repo/bench/make/peers.sh"
trap 'cleanup; icecc_cleanup' EXIT
# One timed peer build of a fresh copy of the project: peer_build LABEL COMMAND COUNTS prints
# "SECONDS|WHERE" (COUNTS: the peers.sh function that says where the compiles ran).
peer_build() {
  local t where differ
  in_host node1 -- sh -c "rm -rf /kite/peer && $gen /kite/peer 4 3 20"
  t=$(timed node1 "cd /kite/peer && $2") || { echo "run.sh: the $1 build failed" >&2; return 1; }
  where="compiled remotely: $($3)"
  differ=$(in_host node1 -- sh -c "cd /kite/peer && n=0; for f in \$(find . -name '*.o'); do cmp -s \$f /kite/local/\$f || n=\$((n+1)); done; echo \$n")
  echo "$1 build: $differ objects differ from the plain make's; $where" >&2
  echo "$t|$where"
}
t_distcc="" distcc_where="" t_pump="" pump_where="" t_icecc="" icecc_where=""
if command -v distccd >/dev/null && command -v distcc >/dev/null; then
  distcc_start node2 node3 node4
  r=$(peer_build distcc "$(distcc_hosts) make -j8 CC='distcc gcc'" distcc_counts)
  t_distcc=${r%%|*} distcc_where=${r#*|}
  if command -v distcc-pump >/dev/null; then
    # Pump mode: the include server ships headers and the remote hosts preprocess too.
    r=$(peer_build "distcc pump" "$(distcc_pump_hosts) distcc-pump make -j8 CC='distcc gcc'" distcc_counts)
    t_pump=${r%%|*} pump_where=${r#*|}
  else
    echo "run.sh: distcc-pump is not installed (scripts/install-deps.sh): no pump-mode row" >&2
  fi
else
  echo "run.sh: distcc is not installed (scripts/install-deps.sh): no distcc rows" >&2
fi
if command -v iceccd >/dev/null && command -v icecc-scheduler >/dev/null; then
  icecc_start node1 node2 node3 node4
  # Warm-up: icecc's first compiles make the compiler environment and each daemon unpacks it
  # once (a team's daemons would already hold it); then the timed build of a fresh copy.
  peer_build "icecc warm-up" "$(icecc_env) make -j8 CC='icecc gcc'" icecc_counts >/dev/null 2>&1 || true
  r=$(peer_build icecc "$(icecc_env) make -j8 CC='icecc gcc'" icecc_counts)
  t_icecc=${r%%|*} icecc_where=${r#*|}
else
  echo "run.sh: icecc is not installed (scripts/install-deps.sh): no icecc row" >&2
fi

awk -v n="$recipes" -v tm="$t_make" -v tk="$t_kite" -v tl="$t_local" -v td="$t_dist" -v tc="$t_distcc" -v dw="${distcc_where:-}" -v tp="$t_pump" -v pw="${pump_where:-}" -v ti="$t_icecc" -v iw="$icecc_where" -v cpu="$cpu" \
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
  if (ti != "") printf "| the same with icecc on the same 4 hosts (make -j8 CC=\"icecc gcc\"; %s) | %.2f s | %.2f s (kite make) | icecc %.2f s: speedup %.2f; kite make is %.2fx as fast |\n", \
         iw, tl, td, ti, tl / ti, ti / td
  printf "\nEvery host capped to %s core (cgroup cpu quota); 4 capped hosts vs 1 capped host.\n", cpu
}'
