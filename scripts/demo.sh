#!/usr/bin/env bash
# kite's demo, the README's first command: installs what is missing, builds kite, brings up 3
# simulated hosts on this machine, shows remote exec, then builds a Linux kernel (Debian's
# linux-source, tinyconfig) with `kite make` spread over the hosts; mid-build node3's owner comes
# back and its guest recipes leave it (the time to clear is printed); at the end it checks that
# vmlinux, the boot image and every object are byte for byte those of a plain `make`.
# Tears the cluster down when it ends, even on failure or Ctrl-C. Needs root and Debian 12; takes
# about 8 minutes on 2 cores (most of it the plain build on one capped host) and keeps the
# unpacked kernel tree (1.5 GB) in /var/cache/kite-demo for the next run.
# shellcheck disable=SC2016  # the single-quoted commands are expanded on the hosts, on purpose
set -euo pipefail

repo=$(cd "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$repo"
export KITE_BIN=$repo/build/bin
readonly name=demo
readonly hosts=3
readonly cpu=0.6   # each host's CPU cap, in cores: 3 x 0.6 leaves some of a 2-core machine free
readonly slots=2   # guest slots per host
readonly shared=/var/lib/kite-sim/$name/shared   # /kite inside the hosts (scripts/cluster)
readonly cache=/var/cache/kite-demo              # the unpacked kernel tree, kept across runs
readonly build_lock=/tmp/kite-build.lock         # one build at a time on this machine
readonly top_every_s=40                          # a `kite top --once` snapshot this often
readonly evict_after_s=25                        # node3's owner comes back this far into the build
readonly progress_every_s=30                     # a progress line of the plain build this often

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step="starting"
say() { step=$*; printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
die() { echo "demo: $*" >&2; exit 1; }
cluster() { scripts/cluster --name "$name" "$@"; }
on() { local host=$1; shift; cluster exec "$host" -- bash -c "set -euo pipefail; $*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
cluster_is_ours() {  # `up --owner-pid $$` records this process as the instance's owner
  local f=/run/kite-sim/$name/owner
  [[ -f $f && $(cut -d' ' -f1 "$f") == "$$" ]]
}

[[ $(id -u) -eq 0 ]] || die "run me as root: the simulated hosts need namespaces, cgroups and mounts"
logs=$(mktemp -d /tmp/kite-demo.XXXXXX)
bg_pids=()

finish() {
  local rc=$? p log
  trap - EXIT INT TERM HUP
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if ((rc == 129 || rc == 130 || rc == 143)); then
    printf '\n%s== demo stopped by SIG%s during: %s%s\n' "$bold" "$(kill -l $((rc - 128)))" "$step" "$plain" >&2
  elif ((rc != 0)); then
    printf '\n%s== demo FAILED (exit status %d) during: %s%s\n' "$bold" "$rc" "$step" "$plain" >&2
    if cluster_is_ours; then
      for log in /run/kite-sim/"$name"/node*/*.log; do
        [[ -s $log ]] || continue
        echo "--- last lines of $log" >&2
        tail -n 12 "$log" | cut -c1-240 >&2
      done
    fi
  fi
  if ((rc == 0)); then rm -rf "$logs"; else echo "demo: its logs are in $logs" >&2; fi
  if cluster_is_ours; then
    say "tearing the cluster down"
    cluster down || true
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# logged LOG HOST CMD: runs CMD on HOST with its output in LOG; on failure shows the log's tail.
logged() {
  local log=$1 host=$2 cmd=$3
  if ! on "$host" "$cmd" >"$log" 2>&1; then
    echo "demo: '$cmd' failed on $host; the last lines of $log:" >&2
    tail -n 25 "$log" >&2
    return 1
  fi
}

# shellcheck source=scripts/lib/kernel-tree.sh
source "$repo/scripts/lib/kernel-tree.sh"

top_loop() {  # kite top snapshots while the build runs
  local out
  while sleep "$top_every_s"; do
    out=$(on node1 'kite top --once' 2>&1) || return 0
    printf '\n%s--- kite top --once (on node1, during the build)%s\n%s\n\n' "$bold" "$plain" "$out"
  done
}

evict_midway() {  # the owner of node3 comes back mid-build: its guests leave
  sleep "$evict_after_s"
  local log=/run/kite-sim/$name/node3/remoted.log before out
  before=$(grep -c 'host cleared of' "$log" 2>/dev/null || true)
  printf '\n%s--- %d s into the build: node3'"'"'s owner is back (kite owner node3 active)%s\n' "$bold" "$evict_after_s" "$plain"
  on node1 'kite owner node3 active' || return 0
  sleep 0.3
  out=$(on node1 'kite top --once' 2>&1) || true
  printf '%s--- kite top --once, right after%s\n%s\n' "$bold" "$plain" "$out"
  for _ in $(seq 600); do  # 60 s at most
    if [[ $(grep -c 'host cleared of' "$log" 2>/dev/null || true) -gt ${before:-0} ]]; then
      printf '%s--- node3: %s%s\n' "$bold" "$(grep 'host cleared of' "$log" | tail -n 1 | sed 's/.*\] //')" "$plain"
      out=$(on node1 'kite top --once' 2>&1) || true
      printf '%s\n\n' "$out"
      return 0
    fi
    sleep 0.1
  done
  printf 'node3 still has guests 60 s after its owner came back (see %s)\n' "$log"
}

progress_loop() {  # progress_loop LOG: the plain build's latest line now and then
  local start=$SECONDS
  while sleep "$progress_every_s"; do
    printf '  plain make, %3d s: %s\n' $((SECONDS - start)) "$(tail -n 1 "$1" 2>/dev/null)"
  done
}

stop_bg() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# ---------------------------------------------------------------------------------------------

say "installing what is missing (scripts/install-deps.sh)"
scripts/install-deps.sh
echo "all present"

say "building kite"
if [[ ! -f build/build.ninja ]]; then
  [[ ! -f build/CMakeCache.txt ]] || die "build/ was configured with another generator than Ninja; remove it first"
  flock "$build_lock" cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
flock "$build_lock" cmake --build build --target kite kite-homed kite-remoted kite-shim kite-fsd kitefs -j"$(nproc)"

say "bringing up $hosts simulated hosts (network, mount, PID and UTS namespaces; $cpu core each)"
cluster down --stale >/dev/null 2>&1 || true  # left by a demo that was killed outright
cluster up "$hosts" --cpu "$cpu" --slots "$slots" --owner-pid $$
cluster status

say "kite hosts (on node1)"
on node1 kite hosts

say "a job started on node1 runs on node2 and still sees its home"
on node1 "$(cat <<'EOF'
cd /kite
echo "at home: $(hostname), the shell's pid $$"
kite run -v --host node2 -- sh -c 'echo "in the job: hostname=$(hostname) pid=$$ ppid=$PPID, really on $(cat /proc/sys/kernel/hostname)"'
echo "(the job's pid is its deputy's at home; its parent is the shell)"
EOF
)"

say "exit status and signals come back exactly"
on node1 "$(cat <<'EOF'
cd /kite
kite run --host node3 -- sh -c 'exit 42' || echo "exit status: $?"
kite run --host node3 -- sh -c 'kill -TERM $$' || echo "status: $? (128+15: killed by SIGTERM)"
EOF
)"

say "kite ps while a job runs"
on node1 "$(cat <<'EOF'
cd /kite
kite run --host node2 -- sleep 3 &
for i in $(seq 20); do  # until the job has started
  out=$(kite ps)
  [[ $(wc -l <<<"$out") -lt 2 ]] || break
  sleep 0.1
done
echo "$out"
wait
EOF
)"

kernel_build_env  # the same environment for both builds (scripts/lib/kernel-tree.sh)

say "the Linux kernel source (Debian's linux-source) in the shared tree, /kite/linux on every host"
tarball=$(kernel_tarball)
prepare_cache "$tarball"
place_tree "$shared/linux"

say "make tinyconfig on node1 (plain make, at home)"
logged "$logs/tinyconfig-kite.log" node1 'cd /kite/linux && make tinyconfig'
on node1 'cd /kite/linux && echo "/kite/linux/.config: $(grep -c "=y$" .config) options on ($(make -s kernelversion), $(grep -q "^CONFIG_64BIT=y" .config && echo 64 || echo 32)-bit x86)"'
image=$(on node1 'cd /kite/linux && make -s image_name')

say "kite make on node1: each recipe runs as a kite job on an idle host"
free=$(on node1 'kite hosts --json' |
       python3 -c 'import json, sys; print(sum(h["free_slots"] for h in json.load(sys.stdin) if h["state"] == "idle"))')
echo "kite make picks -j from the cluster's free slots ($free now, home's included)."
echo "Fixed for a reproducible build: KBUILD_BUILD_TIMESTAMP='$KBUILD_BUILD_TIMESTAMP'" \
     "KBUILD_BUILD_USER=$KBUILD_BUILD_USER KBUILD_BUILD_HOST=$KBUILD_BUILD_HOST KBUILD_BUILD_VERSION=$KBUILD_BUILD_VERSION"
echo
echo "At ${evict_after_s} s node3's owner comes back: its guest recipes migrate home (the whole recipe:"
echo "its shell, gcc and cc1, with their pipes and temporary files), or are rerun elsewhere when they"
echo "cannot be migrated."
top_loop &
top_pid=$!
bg_pids+=("$top_pid")
evict_midway &
evict_pid=$!
bg_pids+=("$evict_pid")
t0=$(now)
on node1 'cd /kite/linux && kite make'
t1=$(now)
stop_bg "$top_pid"
wait "$evict_pid" 2>/dev/null || true
kite_s=$(elapsed "$t0" "$t1")
# (no match is no error: the guests may all have ended on their own before they had to move)
{ grep -h 'moved node3\|requeued: killed on node3' "/run/kite-sim/$name/node1/homed.log" 2>/dev/null || true; } |
  awk '/requeued/ { r++ } /moved/ { m++ } END { printf "jobs sent off node3: %d migrated, %d requeued (killed and rerun from the start)\n", m, r }'

plain_jobs=$(nproc)
say "the same tree built again with plain make -j$plain_jobs on node1 alone, at the same path"
echo "the kite-made tree moves to /kite/linux.kite; a fresh copy of the source takes /kite/linux"
mv "$shared/linux" "$shared/linux.kite"
place_tree "$shared/linux"
logged "$logs/tinyconfig-plain.log" node1 'cd /kite/linux && make tinyconfig'
echo "make -j$plain_jobs (its output goes to a log, shown if the build fails)"
progress_loop "$logs/plain-make.log" &
progress_pid=$!
bg_pids+=("$progress_pid")
t2=$(now)
logged "$logs/plain-make.log" node1 "cd /kite/linux && make -j$plain_jobs"
t3=$(now)
stop_bg "$progress_pid"
plain_s=$(elapsed "$t2" "$t3")
tail -n 1 "$logs/plain-make.log"

say "are kite make's outputs those of the plain build?"
compare_builds "$shared/linux.kite" "$shared/linux" "$image"

say "wall times (simulated hosts, each capped to $cpu core by its cgroup)"
printf '  kite make on %d hosts (-j%d):   %7.1f s\n' "$hosts" "$free" "$kite_s"
printf '  plain make -j%d on node1 alone: %7.1f s\n' "$plain_jobs" "$plain_s"
awk -v k="$kite_s" -v p="$plain_s" 'BEGIN { printf "  kite make was %.2fx as fast\n", p / k }'

say "demo finished"
