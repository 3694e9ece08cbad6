#!/usr/bin/env bash
# Migration benchmarks on a simulated cluster (issue 6). Prints a Markdown table of
#   1. `kite migrate` freeze time (the job stopped on node2 -> running on node3) and image size
#      for a python3 process holding SIZE MiB (a bytearray it keeps touching), for each SIZE;
#      baselines in the same run on the target host, as capped: memcpy of SIZE MiB and a
#      loopback TCP copy of it, each into freshly mapped memory (bench/migrate/copy_baseline.cc),
#      and writing and reading back SIZE MiB through the shared tree (`dd`, fsync'd);
#   2. the time to clear a host: GUESTS such jobs (16 MiB each) on node2, `kite evict node2`,
#      as node2 measures it (owner back -> last guest gone), all of them migrating home;
#   3. the same for BUILD_JOBS build jobs: `gcc -O2 -c` of a generated C file (a job tree, the
#      driver waiting on cc1), evicted mid-compile; every object is then compared with one
#      compiled without moving.
# Every figure comes from this run; hosts are CPU-capped namespaces (scripts/cluster), say so
# when quoting. The shared tree is scripts/cluster's default (kitefs; KITE_SIM_FS=bind for the
# bind-mounted directory).
# PAGES says how the target gets a move's pages, one whole run (a fresh cluster) per word:
# "stream" ([remoted] stream_pages = true, the default: from the source host straight into the
# restoring process) and/or "copy" (false: the image is copied to the target's disk, then
# restored). PAGES="stream copy" measures both, one after the other, in one run.
# Usage: [PAGES="stream copy"] bench/migrate/run.sh [SIZES_MIB (default "16 256 1024")] [GUESTS (4)]
#        [RUNS (3)] [BUILD_JOBS (8)]
set -euo pipefail

sizes=${1:-16 256 1024}
guests=${2:-4}
runs=${3:-3}
build_jobs=${4:-8}
repo=$(cd "$(dirname "$0")/../.." && pwd)
cluster="$repo/scripts/cluster"
pages_modes=${PAGES:-stream}
name=""
export KITE_BIN=${KITE_BIN:-$repo/build/bin}

cleanup() { [[ -z $name ]] || "$cluster" --name "$name" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
on() { local h=$1; shift; "$cluster" --name "$name" exec "$h" -- bash -c "$*"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The whole benchmark on a fresh cluster whose remoteds get pages as $1 says (not indented:
# it holds multi-line programs).
bench_mode() {
local mode=$1
case $mode in
  stream) export KITE_SIM_REMOTED="stream_pages = true" ;;
  copy) export KITE_SIM_REMOTED="stream_pages = false" ;;
  *) echo "PAGES: '$mode' is neither stream nor copy" >&2; exit 2 ;;
esac
name="km$$$mode"
echo
echo "### pages: $mode ($KITE_SIM_REMOTED)"
echo "bringing up 3 hosts..." >&2
"$cluster" --name "$name" up 3 --slots 8 >&2

# A job holding $1 MiB that prints a line every 50 ms (its output shows it running).
subject() {
  echo "cd /kite && exec kite run --host node2 -- python3 -c 'import sys, time
b = bytearray(b\"k\") * ($1 << 20)  # no transient bytes object of the same size
i = 0
while True:
    b[(i * 4096) % len(b)] = i & 255
    print(i, flush=True)
    i += 1
    time.sleep(0.05)'"
}

vpid_of() {  # the vpid of node1's running python3 job
  on node1 'kite ps --json' | python3 -c '
import json, sys
jobs = [j for j in json.load(sys.stdin) if "python3" in j["command"] and j["home"] == "node1"]
print(jobs[0]["vpid"] if jobs else "")'
}

echo "| job memory | freeze (median of $runs) | image | memcpy | loopback TCP copy | dd write+read | freeze / TCP copy |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for mib in $sizes; do
  freezes=() image=""
  for _ in $(seq "$runs"); do
    on node1 "$(subject "$mib")" >/dev/null 2>&1 &
    job=$!
    vpid=""
    for _ in $(seq 600); do vpid=$(vpid_of); [[ -n $vpid ]] && break; sleep 0.1; done
    [[ -n $vpid ]] || { echo "the $mib MiB job did not start" >&2; exit 1; }
    sleep $(( mib >= 1024 ? 8 : 2 ))  # until its memory is filled
    out=$(on node1 "kite migrate $vpid --to node3")
    echo "  $mib MiB: $out" >&2
    freezes+=("$(sed -n 's/.* in \([0-9]*\) ms.*/\1/p' <<<"$out")")
    image=$(sed -n 's/.*(image \([0-9.]*\) MiB).*/\1/p' <<<"$out")
    on node1 "kill $vpid" >/dev/null 2>&1 || true
    wait "$job" 2>/dev/null || true
  done
  freeze=$(printf '%s\n' "${freezes[@]}" | median)
  dd_ms=$(on node1 "t0=\$(date +%s%N); dd if=/dev/zero of=/kite/.bench-dd bs=1M count=$mib conv=fsync status=none;
                    dd if=/kite/.bench-dd of=/dev/null bs=1M status=none; t1=\$(date +%s%N); rm -f /kite/.bench-dd;
                    echo \$(( (t1 - t0) / 1000000 ))")
  copy=$(on node3 "$KITE_BIN/kite_copy_baseline $mib $runs")  # the target host, as capped
  memcpy_ms=$(sed -n 's/.*memcpy_ms=\([0-9]*\).*/\1/p' <<<"$copy")
  tcp_ms=$(sed -n 's/.*tcp_ms=\([0-9]*\).*/\1/p' <<<"$copy")
  awk -v m="$mib" -v f="$freeze" -v i="$image" -v c="$memcpy_ms" -v t="$tcp_ms" -v d="$dd_ms" \
    'BEGIN { printf "| %d MiB | %d ms | %s MiB | %d ms | %d ms | %d ms | %.2f |\n", m, f, i, c, t, d, (t > 0 ? f / t : 0) }'
done

echo
echo "time to clear node2 of $guests guests (16 MiB python3 jobs each, migrating home):"
pids=()
for _ in $(seq "$guests"); do
  on node1 "$(subject 16)" >/dev/null 2>&1 &
  pids+=($!)
done
for _ in $(seq 600); do
  n=$(on node1 'kite ps --json' | grep -c '"host": "node2"' || true)
  [[ $n -ge $guests ]] && break
  sleep 0.1
done
sleep 2
on node1 "kite evict node2"
on node1 'for v in $(kite ps --json | python3 -c "import json,sys; print(*[j[\"vpid\"] for j in json.load(sys.stdin)])"); do kill $v; done' || true
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done

echo
echo "time to clear node2 of $build_jobs build jobs (gcc -O2 -c, each gcc waiting on cc1), mid-compile:"
on node1 'kite owner node2 auto' >/dev/null
sleep 2  # node2 reports idle again
on node1 'mkdir -p /kite/.bench-cc && cd /kite/.bench-cc && python3 -c "
for i in range(600):
  print(\"int f%d(int *a, int n) { int s = %d; for (int i = 0; i < n; i++) { s += a[i] * %d; if (s > %d) s ^= a[(i + %d) %% n]; } return s; }\" % (i, i, i % 7 + 1, i * 31, i))
" > big.c && gcc -O2 -c big.c -o plain.o'
pids=()
for n in $(seq "$build_jobs"); do
  on node1 "cd /kite/.bench-cc && exec kite run --host node2 -- gcc -O2 -c big.c -o moved$n.o" >/dev/null 2>&1 &
  pids+=($!)
done
for _ in $(seq 600); do
  n=$(on node1 'kite ps --json' | grep -c '"host": "node2"' || true)
  [[ $n -ge $build_jobs ]] && break
  sleep 0.1
done
sleep 2  # every cc1 is compiling
on node1 "kite evict node2"
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
same=$(on node1 "cd /kite/.bench-cc && for f in moved*.o; do cmp -s plain.o \$f && echo same; done | wc -l")
echo "  $build_jobs compiles: $failed failed, $same objects identical to the unmoved compile"
grep -h "moved node2\|requeued" "/run/kite-sim/$name/node1/homed.log" | tail -n "$build_jobs" | sed 's/^/  /' || true
echo "  where node2's checkpoints spent their time (its remoted's log):"
grep -h "checkpointed to" "/run/kite-sim/$name/node2/remoted.log" | tail -n "$build_jobs" |
  sed 's/.*checkpointed to [^ ]* \(.*\)/    \1/' || true
echo "  what node1 spent copying them from node2 (its remoted's log):"
grep -h "fetched checkpoint\|streamed" "/run/kite-sim/$name/node1/remoted.log" | tail -n "$((build_jobs * 2))" |
  sed 's/.*: \([0-9]* file(s).*\)/    \1/; s/.*\(streamed .*\)/    \1/' || true
on node1 'rm -rf /kite/.bench-cc'
on node1 'kite owner node2 auto' >/dev/null
"$cluster" --name "$name" down >/dev/null 2>&1 || true
name=""
}

for mode in $pages_modes; do bench_mode "$mode"; done
