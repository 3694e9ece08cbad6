#!/usr/bin/env bash
# Remote exec benchmarks on a simulated cluster (issue 3). Prints a Markdown table of
#   1. median latency of `kite run --host node2 -- /bin/true` from node1, against local
#      fork+exec of /bin/true and against ssh to node2 (cold, and with a warm ControlMaster);
#   2. throughput: N `kite run -- /bin/true` launched 16 at a time across the hosts (jobs/s).
# Every figure comes from this run; hosts are CPU-capped namespaces (scripts/cluster), say so
# when quoting. Usage: bench/remote_exec/run.sh [RUNS] [THROUGHPUT_JOBS]
set -euo pipefail

runs=${1:-300}
jobs=${2:-1000}
repo=$(cd "$(dirname "$0")/../.." && pwd)
cluster="$repo/scripts/cluster"
name="kb$$"
export KITE_BIN=${KITE_BIN:-$repo/build/bin}
work=$(mktemp -d /tmp/kite-bench.XXXXXX)

cleanup() {
  "$cluster" --name "$name" exec node2 -- sh -c 'kill $(cat /tmp/kite-bench-sshd.pid 2>/dev/null) 2>/dev/null' >/dev/null 2>&1 || true
  "$cluster" --name "$name" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

for tool in hyperfine ssh sshd; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { echo "missing $tool: run scripts/install-deps.sh" >&2; exit 1; }
done

echo "bringing up 3 hosts..." >&2
"$cluster" --name "$name" up 3 --slots 8 >&2
addr2=$(awk '$1 == "node2" {print $2}' "/run/kite-sim/$name/hosts")

# sshd on node2 (key auth only, its own host key, listening on node2's address).
ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$work/userkey"
cat > "$work/sshd_config" <<CONF
ListenAddress $addr2
Port 2222
HostKey $work/hostkey
PidFile /tmp/kite-bench-sshd.pid
AuthorizedKeysFile $work/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
CONF
cp "$work/userkey.pub" "$work/authorized_keys"
mkdir -p /run/sshd
# sshd runs `bash -c CMD`, which sources ~/.bashrc when started by sshd; root's rc files on a
# developer machine (pyenv, nvm, ...) cost 100+ ms and would make ssh look slower than it is.
# Inside node2's own mount namespace only, they are hidden for a fair baseline.
"$cluster" --name "$name" exec node2 -- sh -c \
  'for f in "$HOME/.bashrc" "$HOME/.bash_profile" "$HOME/.profile"; do [ -f "$f" ] && mount --bind /dev/null "$f"; done; exec /usr/sbin/sshd -f "$1"' \
  sh "$work/sshd_config"
ssh_opts="-i $work/userkey -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes"

# Everything below runs inside node1, the home.
"$cluster" --name "$name" exec node1 -- bash -s "$runs" "$jobs" "$addr2" "$ssh_opts" "$work" <<'INNER'
set -euo pipefail
runs=$1 jobs=$2 addr2=$3 ssh_opts=$4 work=$5
cd /kite
ssh $ssh_opts -o ControlMaster=yes -o ControlPath="$work/cm" -o ControlPersist=300 -fN "root@$addr2"
hyperfine -N --warmup 20 --runs "$runs" --export-json "$work/lat.json" \
  -n local '/bin/true' \
  -n 'kite run' 'kite run --host node2 -- /bin/true' \
  -n 'ssh (warm ControlMaster)' "ssh $ssh_opts -o ControlPath=$work/cm root@$addr2 /bin/true" \
  >/dev/null
hyperfine -N --warmup 3 --runs $(( runs / 10 > 10 ? runs / 10 : 10 )) --export-json "$work/cold.json" \
  -n 'ssh (cold)' "ssh $ssh_opts -o ControlPath=none root@$addr2 /bin/true" >/dev/null
start=$(date +%s.%N)
seq "$jobs" | xargs -P 16 -I{} kite run -- /bin/true
end=$(date +%s.%N)
echo "$jobs $start $end" > "$work/tput"
ssh $ssh_opts -o ControlPath="$work/cm" -O exit "root@$addr2" 2>/dev/null || true
INNER

python3 - "$work" "$runs" <<'PY'
import json, sys
work, runs = sys.argv[1], sys.argv[2]
res = json.load(open(f"{work}/lat.json"))["results"] + json.load(open(f"{work}/cold.json"))["results"]
med = {r["command"]: r["median"] * 1000 for r in res}
local = med["local"]
print(f"| command (median of {runs} runs; cold ssh fewer) | median ms | vs local | kite run vs it |")
print("|---|---:|---:|---:|")
for name, ms in med.items():
    kr = med["kite run"]
    print(f"| {name} | {ms:.3f} | {ms/local:.1f}x | {kr/ms:.2f}x |")
print(f"\nkite run overhead over local fork+exec: {med['kite run'] - local:.3f} ms")
n, start, end = open(f"{work}/tput").read().split()
secs = float(end) - float(start)
print(f"throughput: {n} `kite run -- /bin/true`, 16 at a time, placement free over 3 hosts: {int(n)/secs:.0f} jobs/s ({secs:.2f} s)")
PY
