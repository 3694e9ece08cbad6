#!/usr/bin/env bash
# The demo's code base, measured: a Linux kernel (Debian's linux-source, tinyconfig) built with
# `kite make` on a simulated cluster against a plain `make -j2` of the same tree at the same path,
# outputs compared byte for byte (vmlinux, the boot image, every object).
#
#   bench/make/kernel.sh                      issue 4's speedup: N hosts (default 4) at 0.5 core
#                                             against plain make -j2 on one host at 0.5 core
#   bench/make/kernel.sh --evict node3,node4  issue 6's eviction: those hosts' owners come back
#                                             mid-build (--evict-at S, default 20 s); each must
#                                             clear, and kite make's summary says how many
#                                             recipes migrated and how many were requeued
#   --owner-leaves-after S                    with --evict: the owners go away again S s after
#                                             their hosts cleared (the hosts take guests again)
#   --deadline S                              fail (and tear down) once S s have gone by; meant to
#                                             be below ctest's timeout, which kills with SIGKILL
#   --reference uncapped                      the plain build runs on the machine itself (all its
#                                             cores, on local disk, in a private mount namespace
#                                             with that tree at /kite): a faster reference for
#                                             correctness only, no speedup is printed (the test
#                                             suite's mode)
#   --reference none                          no plain build: kite make's time only (bench/fs's
#                                             kitefs-against-bind comparison)
#   --peers distcc,pump,icecc                 after kite make, the same build with Debian's peer
#                                             tools over the same hosts, -j(2 x hosts), each on a
#                                             tree cleaned with mrproper (bench/make/peers.sh):
#                                             distcc, distcc's pump mode, icecc; their times and
#                                             kite make's ratio to each, outputs compared too
#   --fs kitefs|bind                          the cluster's /kite (default kitefs, as scripts/cluster)
#   --hosts N, --cpu F, --slots S             the cluster: hosts (default 4), each one's CPU cap
#                                             in cores (0.5) and guest slots (2)
#   --no-lock                                 do not take /tmp/kite-build.lock (the test suite,
#                                             which runs alone, calls it so)
#
# Exit status 0 only when the outputs are identical (and, with --evict, every evicted host was
# cleared and the summary line is there). Tears its cluster down on any exit. Needs root; run
# it alone (it takes the build lock): the hosts' caps only mean something on a quiet machine.
# shellcheck disable=SC2016  # single-quoted commands are expanded on the hosts, on purpose
set -euo pipefail

hosts=4 cpu=0.5 slots=2 evict="" evict_at=20 reference=capped lock=1 fs=${KITE_SIM_FS:-kitefs}
owner_leaves_after="" deadline="" peers=""
usage() { sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --hosts) hosts=$2; shift 2 ;;
    --cpu) cpu=$2; shift 2 ;;
    --slots) slots=$2; shift 2 ;;
    --evict) evict=$2; shift 2 ;;
    --evict-at) evict_at=$2; shift 2 ;;
    --owner-leaves-after) owner_leaves_after=$2; shift 2 ;;
    --deadline) deadline=$2; shift 2 ;;
    --reference) reference=$2; shift 2 ;;
    --no-lock) lock=0; shift ;;
    --fs) fs=$2; shift 2 ;;
    --peers) peers=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "kernel.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -z $owner_leaves_after || $owner_leaves_after =~ ^[0-9]+$ ]] || { echo "kernel.sh: --owner-leaves-after wants seconds" >&2; exit 2; }
[[ -z $deadline || $deadline =~ ^[1-9][0-9]*$ ]] || { echo "kernel.sh: --deadline wants seconds" >&2; exit 2; }
deadline_at=""
[[ -z $deadline ]] || deadline_at=$(($(date +%s) + deadline))
[[ $hosts =~ ^[2-9]$ ]] || { echo "kernel.sh: --hosts wants 2..9" >&2; exit 2; }
[[ $reference =~ ^(capped|uncapped|none)$ ]] || { echo "kernel.sh: --reference capped|uncapped|none" >&2; exit 2; }
[[ $fs == kitefs || $fs == bind ]] || { echo "kernel.sh: --fs kitefs|bind" >&2; exit 2; }
IFS=, read -r -a evicted <<<"$evict"
for h in "${evicted[@]}"; do
  [[ $h =~ ^node([2-9])$ && ${BASH_REMATCH[1]} -le $hosts ]] ||
    { echo "kernel.sh: --evict takes guest hosts node2..node$hosts, not '$h'" >&2; exit 2; }
done
IFS=, read -r -a peer_list <<<"$peers"
for p in "${peer_list[@]}"; do
  case $p in
    distcc|pump) command -v distccd >/dev/null || { echo "kernel.sh: --peers $p needs distcc (scripts/install-deps.sh)" >&2; exit 2; } ;;
    icecc) command -v iceccd >/dev/null || { echo "kernel.sh: --peers icecc needs icecc (scripts/install-deps.sh)" >&2; exit 2; } ;;
    *) echo "kernel.sh: --peers takes distcc, pump and icecc, not '$p'" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "kernel.sh: run me as root (namespaces, cgroups, mounts)" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/../.." && pwd)
export KITE_BIN=${KITE_BIN:-$repo/build/bin}
name="kkb$$"
shared=/var/lib/kite-sim/$name/shared
cache=${KITE_KERNEL_CACHE:-/var/cache/kite-demo}  # shared with scripts/demo.sh
logs=$(mktemp -d /tmp/kite-kernel.XXXXXX)
die() { echo "kernel.sh: $*" >&2; exit 1; }
cluster() { "$repo/scripts/cluster" --name "$name" "$@"; }
on() { local host=$1; shift; cluster exec "$host" -- bash -c "set -euo pipefail; $*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
bg=()
cleanup() {
  local rc=$?
  for p in "${bg[@]}"; do kill "$p" 2>/dev/null || true; done
  cluster down >/dev/null 2>&1 || true
  declare -F icecc_cleanup >/dev/null && icecc_cleanup
  [[ -z ${ref:-} || $ref == "${shared:-}" ]] || rm -rf "$ref"
  if ((rc == 0)); then rm -rf "$logs"; else echo "kernel.sh: logs in $logs" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# shellcheck source=scripts/lib/kernel-tree.sh
source "$repo/scripts/lib/kernel-tree.sh"
# shellcheck source=bench/make/peers.sh
source "$repo/bench/make/peers.sh"
kernel_build_env

if ((lock)); then
  exec 9>/tmp/kite-build.lock
  flock 9
fi
echo "bringing up $hosts hosts at $cpu core, $slots slots each, /kite on $fs..." >&2
cluster up "$hosts" --cpu "$cpu" --slots "$slots" --fs "$fs" >&2
prepare_cache "$(kernel_tarball)" >&2
t0=$(now)
place_tree "$shared/linux"
echo "kernel tree placed in /kite in $(elapsed "$t0" "$(now)") s" >&2
on node1 'cd /kite/linux && make -s tinyconfig' >"$logs/tinyconfig.log" 2>&1 || die "make tinyconfig failed ($logs)"
image=$(on node1 'cd /kite/linux && make -s image_name')

# With --evict: from evict_at s on, wait (at most 48 s) until every listed host runs a guest
# (an owner coming back to an empty host tests nothing), then their owners come back; then wait
# (at most 60 s) for each remoted to say it is clear. The guest counts `kite hosts` shows are up
# to a second old and a recipe may be shorter: a host whose guests all ended before its owner
# came back ("cleared of 0") gets its owner away again and another round, five at most. With
# --owner-leaves-after S, each owner goes away again S s after its host cleared, and the host
# takes guests again. One line per host in $logs/evictions (the report).
evictor() {
  sleep "$evict_at"
  local h guests listing all round cleared log n
  local -a pending=("${evicted[@]}") retry before
  for round in 1 2 3 4 5; do
    for _ in $(seq 240); do
      listing=$(on node1 'kite hosts' 2>/dev/null) || listing=""
      all=1
      for h in "${pending[@]}"; do
        guests=$(awk -v h="$h" '$1 == h && $2 == "idle" { print $5 }' <<<"$listing")
        [[ ${guests:-0} =~ ^[1-9][0-9]*$ ]] || all=0
      done
      ((all)) && break
      [[ -e $logs/make-done ]] && break
      sleep 0.2
    done
    before=()
    for h in "${pending[@]}"; do
      before+=("$(grep -c 'host cleared of' "/run/kite-sim/$name/$h/remoted.log" 2>/dev/null || true)")
    done
    on node1 "for h in ${pending[*]}; do kite owner \$h active; done" >/dev/null
    retry=()
    for i in "${!pending[@]}"; do
      h=${pending[i]} log=/run/kite-sim/$name/${pending[i]}/remoted.log cleared=""
      for _ in $(seq 600); do
        if [[ $(grep -c 'host cleared of' "$log" 2>/dev/null || true) -gt ${before[i]:-0} ]]; then
          cleared=$(grep 'host cleared of' "$log" | tail -n 1 | sed 's/.*host cleared of/cleared of/')
          break
        fi
        sleep 0.1
      done
      n=$(sed -nE 's/^cleared of ([0-9]+) guest.*/\1/p' <<<"$cleared")
      if [[ $n == 0 && $round -lt 5 && ! -e $logs/make-done ]]; then
        echo "$h: round $round: its guests had ended before its owner came back; again" >>"$logs/eviction-rounds"
        retry+=("$h")
      else
        echo "$h: ${cleared:-NOT cleared 60 s after its owner came back}$( ((round == 1)) || echo " (round $round)")" >>"$logs/evictions"
      fi
    done
    ((${#retry[@]})) || break
    on node1 "for h in ${retry[*]}; do kite owner \$h idle; done" >/dev/null
    pending=("${retry[@]}")
  done
  if [[ -n $owner_leaves_after ]]; then
    sleep "$owner_leaves_after"
    on node1 "for h in ${evicted[*]}; do kite owner \$h idle; done" >/dev/null
    echo "owners away again ${owner_leaves_after} s after their hosts cleared" >>"$logs/evictions"
  fi
}

# Runs a long step within what is left of --deadline (if any): ctest's own timeout kills with
# SIGKILL, which would leave the cluster up; this one ends the step and the trap tears it down.
# `within_deadline on HOST CMD` runs `on` (a function, which timeout cannot run) as the program.
within_deadline() {
  if [[ $1 == on ]]; then
    local host=$2 cmd=$3
    set -- "$repo/scripts/cluster" --name "$name" exec "$host" -- bash -c "set -euo pipefail; $cmd"
  fi
  if [[ -z $deadline_at ]]; then "$@"; return; fi
  local left=$((deadline_at - $(date +%s)))
  ((left > 0)) || left=1
  local rc=0
  timeout -k 15 "$left" "$@" || rc=$?
  ((rc != 124 && rc != 137)) || echo "kernel.sh: --deadline of $deadline s reached" >&2
  return "$rc"
}

echo "kite make on $hosts hosts..." >&2
if ((${#evicted[@]})); then
  evictor &
  bg+=("$!")
fi
t0=$(now)
within_deadline on node1 'cd /kite/linux && kite make' >"$logs/kite-make.log" 2>&1 || {
  # make's own error lines first (they can be far above the end), then the end.
  grep -nE 'rror|\*\*\*|kite[a-z-]*:|No such file|Segmentation|Killed|Bus error' "$logs/kite-make.log" | head -n 40 >&2
  echo "..." >&2
  tail -n 15 "$logs/kite-make.log" >&2
  die "kite make failed"
}
t1=$(now)
: >"$logs/make-done"  # the evictor starts no new round after this
if ((${#evicted[@]})); then
  wait "${bg[0]}" || true
  # What each move cost and why any waited, as the home saw it (the report's detail).
  grep -E 'moved .* -> |cannot leave|requeueing it|did not take it' "/run/kite-sim/$name/node1/homed.log" \
    >"$logs/moves" 2>/dev/null || true
fi
kite_s=$(elapsed "$t0" "$t1")
summary=$(grep -E '^kite make:|^  (node[0-9]|home) |evicted while running' "$logs/kite-make.log" || true)

# The evictions, if any: each host's clearing, the rounds, the home's log of every move; ok=1
# when a host was not cleared or none had a guest to send away.
report_evictions() {
  ((${#evicted[@]})) || return 0
  echo "owners back at ${evict_at} s on ${evicted[*]}:"
  [[ ! -e $logs/evictions ]] || sed 's/^/  /' "$logs/evictions"
  [[ ! -s $logs/eviction-rounds ]] || sed 's/^/  /' "$logs/eviction-rounds"
  if [[ -s $logs/moves ]]; then
    echo "the home's log of the moves:"
    head -n 30 "$logs/moves" | sed -E 's/^/  /; s/^(.{200}).*/\1.../'
  fi
  grep -qs 'NOT cleared' "$logs/evictions" && ok=1
  grep -qsE 'cleared of [1-9]' "$logs/evictions" ||
    { echo "no evicted host had a guest when its owner came back: the eviction was not exercised"; ok=1; }
  grep -qE 'evicted while running: [0-9]+ migrated, [0-9]+ requeued' <<<"$summary" ||
    { echo "kite make's summary does not say how many recipes migrated and were requeued"; ok=1; }
}

if [[ $reference == none ]]; then
  echo
  echo "| build of Linux (tinyconfig), hosts at $cpu core, /kite on $fs | wall s |"
  echo "|---|---:|"
  echo "| kite make on $hosts hosts ($slots slots each) | $kite_s |"
  echo
  echo "$summary"
  ok=0
  report_evictions
  exit "$ok"
fi
echo "plain make -j2 ($reference)..." >&2
mv "$shared/linux" "$shared/linux.kite"
ref=$shared  # where the plain build's tree is: /kite/linux of the build that makes it
if [[ $reference == capped ]]; then
  place_tree "$shared/linux"
else
  # On local disk (a copy, not hard links: nothing the build does may reach the cache), at
  # the same path through a private mount namespace below.
  ref=$(mktemp -d /var/tmp/kite-kernel-ref.XXXXXX)
  cp -a "$cache/linux" "$ref/linux"
fi
if [[ $reference == capped ]]; then
  on node1 'cd /kite/linux && make -s tinyconfig' >/dev/null 2>&1
  t2=$(now)
  within_deadline on node1 'cd /kite/linux && make -j2' >"$logs/plain-make.log" 2>&1 || die "plain make failed ($logs)"
  t3=$(now)
else
  # The same path, /kite/linux, outside the hosts: their mountpoint exists on the real root while
  # a cluster is up; a private mount namespace puts the local tree on it for this build only.
  t2=$(now)
  within_deadline unshare -m --propagation private bash -c 'mount --bind "$1" /kite && cd /kite/linux && make -s tinyconfig &&
    make -j"$(nproc)"' bash "$ref" >"$logs/plain-make.log" 2>&1 || die "plain make failed ($logs)"
  t3=$(now)
fi
plain_s=$(elapsed "$t2" "$t3")

ok=0
compare=$(compare_builds "$shared/linux.kite" "$ref/linux" "$image") || ok=1
echo
echo "| build of Linux $(on node1 'cd /kite/linux.kite && make -s kernelversion') (tinyconfig), hosts at $cpu core | wall s |"
echo "|---|---:|"
echo "| kite make on $hosts hosts ($slots slots each) | $kite_s |"
if [[ $reference == capped ]]; then
  echo "| plain make -j2 on one host | $plain_s |"
  echo
  awk -v k="$kite_s" -v p="$plain_s" -v n="$hosts" 'BEGIN { printf "speedup: %.2f (target %.1f = 0.8 x %d)\n", p / k, 0.8 * n, n }'
else
  echo "| plain make -j$(nproc) on the machine itself, uncapped (reference for the outputs only) | $plain_s |"
fi
echo
echo "$summary"
echo "$compare"
# The peer tools, each on the kite make's tree after mrproper + tinyconfig (as fresh as that
# tree was before kite make: host tools, configuration and every object made again), outputs
# compared with the same reference.
if ((${#peer_list[@]})); then
  jobs=$((2 * hosts))
  guests=()
  for ((k = 2; k <= hosts; k++)); do guests+=("node$k"); done
  for p in "${peer_list[@]}"; do
    case $p in
      distcc) ((${#peer_distccd_hosts[@]})) || distcc_start "${guests[@]}"
              env=$(distcc_hosts) run="make -j$jobs CC='distcc gcc'" ;;
      pump)   ((${#peer_distccd_hosts[@]})) || distcc_start "${guests[@]}"
              env=$(distcc_pump_hosts) run="distcc-pump make -j$jobs CC='distcc gcc'" ;;
      icecc)  icecc_start node1 "${guests[@]}"
              env=$(icecc_env) run="make -j$jobs CC='icecc gcc'"
              # icecc's first compile makes the compiler environment and each daemon unpacks it
              # once: done before the clock starts, as a team's daemons would already hold it.
              on node1 "cd /tmp && echo 'int f(void){return 1;}' > icecc-warm.c && for i in 1 2 3 4 5 6 7 8; do
                $env icecc gcc -c icecc-warm.c -o icecc-warm-\$i.o & done; wait" >/dev/null 2>&1 || true
              icecc_counts >/dev/null ;;
    esac
    on node1 'cd /kite/linux.kite && make -s mrproper && make -s tinyconfig' >/dev/null 2>&1 ||
      die "mrproper + tinyconfig before $p failed"
    t4=$(now)
    within_deadline on node1 "cd /kite/linux.kite && $env $run" >"$logs/$p-make.log" 2>&1 || {
      tail -n 15 "$logs/$p-make.log" >&2; die "the $p build failed"; }
    t5=$(now)
    peer_s=$(elapsed "$t4" "$t5")
    case $p in
      icecc) where=$(icecc_counts) ;;
      *) where=$(distcc_counts) ;;
    esac
    peer_compare=$(compare_builds "$shared/linux.kite" "$ref/linux" "$image") || true
    peer_same=$(head -n 1 <<<"$peer_compare")
    # Which files, below the table (a peer's outputs may differ; kite make's may not).
    [[ $peer_same == identical* ]] || printf '%s\n' "$peer_compare" | sed "s/^/$p: /" >>"$logs/peer-differences"
    label=$p
    [[ $p == pump ]] && label="distcc pump mode"
    awk -v l="$label" -v s="$peer_s" -v k="$kite_s" -v w="$where" -v run="$run" -v same="$peer_same" 'BEGIN {
      printf "| %s on the same %s hosts (%s; remote compiles: %s; outputs %s): kite make is %.2fx as fast | %s |\n", l, '"$hosts"', run, w, same, s / k, s }'
  done
fi
[[ ! -s $logs/peer-differences ]] || { echo; cat "$logs/peer-differences"; }
report_evictions
exit "$ok"
