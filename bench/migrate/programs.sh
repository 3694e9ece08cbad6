#!/usr/bin/env bash
# Real programs moved while they run (issue 6), on a simulated cluster: `xz -9` of a SIZE MiB
# file in the shared tree, moved node2 -> node3 -> home (node1) -> node2 while it compresses,
# its output compared with a plain `xz -9` of the same file. Prints each move's freeze time and
# image size, and the wall time of the moved and the unmoved run. Hosts are CPU-capped
# namespaces (scripts/cluster, 0.5 core by default): say so when quoting.
# Usage: bench/migrate/programs.sh [SIZE_MIB (default 200)]
set -euo pipefail

size=${1:-200}
repo=$(cd "$(dirname "$0")/../.." && pwd)
cluster="$repo/scripts/cluster"
name="kp$$"
export KITE_BIN=${KITE_BIN:-$repo/build/bin}

cleanup() { "$cluster" --name "$name" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
on() { local h=$1; shift; "$cluster" --name "$name" exec "$h" -- bash -c "$*"; }
now() { date +%s.%N; }

echo "bringing up 3 hosts..." >&2
"$cluster" --name "$name" up 3 --slots 2 >&2

# Half text, half random: xz has work to do and the output is not trivial.
on node1 "mkdir -p /kite/xz && cd /kite/xz && { seq 1 $((size * 1024 * 1024 / 16)) | head -c $((size << 19));
          head -c $((size << 19)) /dev/urandom; } > in.dat && ls -l in.dat" >&2

t0=$(now)
on node1 "cd /kite/xz && xz -9 -T1 -k -c in.dat > plain.xz"
t1=$(now)
echo "plain xz -9 on node1: $(echo "$t1 - $t0" | bc -l | cut -c1-6) s" 

on node1 "cd /kite/xz && exec kite run --host node2 -- sh -c 'xz -9 -T1 -c in.dat > moved.xz'" &
job=$!
t2=$(now)
vpid=""
for _ in $(seq 100); do
  vpid=$(on node1 'kite ps --json' | python3 -c '
import json, sys
jobs = [j for j in json.load(sys.stdin) if "moved.xz" in j["command"]]
print(jobs[0]["vpid"] if jobs else "")')
  [[ -n $vpid ]] && break
  sleep 0.1
done
[[ -n $vpid ]] || { echo "the xz job did not start" >&2; exit 1; }
for to in node3 node1 node2; do
  sleep 5
  on node1 "kite migrate $vpid --to $to" || echo "  move to $to failed (see above)"
done
wait "$job"
t3=$(now)
echo "xz -9 moved 3 times: $(echo "$t3 - $t2" | bc -l | cut -c1-6) s"
if on node1 "cmp /kite/xz/plain.xz /kite/xz/moved.xz"; then echo "output identical to the plain run"; else echo "OUTPUT DIFFERS"; exit 1; fi
on node1 'rm -rf /kite/xz'
