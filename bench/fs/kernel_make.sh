#!/usr/bin/env bash
# Issue 5's file-server benchmark: `kite make` of the demo's kernel (bench/make/kernel.sh, no
# plain reference build) on N hosts (default 4) with /kite on kitefs (kite-fsd on node1, inside
# node1's CPU cap) against the same build with /kite a bind-mounted local directory, one after
# the other in this run. Prints both times and their ratio (target <= 1.15: the file server must
# not become the bottleneck that capped Sprite's pmake).
#   flock /tmp/kite-build.lock bench/fs/kernel_make.sh [--hosts N] [--cpu F] [--slots S]
# (it runs kernel.sh with --no-lock: take the lock around the whole comparison).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
declare -A took
for fs in bind kitefs; do
  echo "== kite make with /kite on $fs" >&2
  out=$("$repo/bench/make/kernel.sh" --no-lock --reference none --fs "$fs" "$@")
  echo "$out"
  took[$fs]=$(awk -F'|' '/^\| kite make on/ {gsub(/ /, "", $3); print $3}' <<<"$out")
  [[ -n ${took[$fs]} ]] || { echo "kernel_make.sh: no time from kernel.sh --fs $fs" >&2; exit 1; }
done
echo
echo "| kite make of Linux (tinyconfig), /kite on | wall s |"
echo "|---|---:|"
echo "| a bind-mounted local directory | ${took[bind]} |"
echo "| kitefs (kite-fsd on node1) | ${took[kitefs]} |"
awk -v k="${took[kitefs]}" -v b="${took[bind]}" 'BEGIN { printf "\nkitefs / bind: %.2f (target <= 1.15)\n", k / b }'
