#!/usr/bin/env bash
# kitefs benchmarks (issue 5), on this machine: kitefs and sshfs, each set against the same work
# on a local directory of the same disk, in the same run.
#  - kitefs: a kite-fsd on 127.0.0.1 with its store on local disk, and two kitefs mounts ("two
#    hosts": the second one idles, but it listens for the server's invalidations, so every
#    change waits for its acknowledgement as it would in a cluster).
#  - sshfs: Debian's sshfs to a private sshd of the bench's own on 127.0.0.1 (a free high port,
#    a host key and an authorized key made in the bench's temporary directory, key login as
#    root, nothing of the system's ssh config used or changed), exporting a directory on the
#    same disk through the stock /usr/lib/openssh/sftp-server. Cipher aes128-gcm@openssh.com
#    (AES-NI: cheaper here than the default chacha20-poly1305), no compression, one
#    connection, sshfs's default caching (the kernel's page cache is dropped at every open,
#    kernel attributes kept 1 s, sshfs's own cache 20 s), no_contain_symlinks (Debian's sshfs
#    otherwise refuses to read back symlinks with `..`, which the Linux tree has).
# Prints a Markdown table; ratios are of speed (above 1: faster), for the timed rows too:
#   1. metadata: create, stat and unlink of N files (default 10000) in one directory, ops/s;
#   2. untar of TARBALL (default Debian's linux-source .tar.xz, decompressed first so that xz is
#      not timed), wall seconds of tar and then sync(1) (everything on disk, for all three),
#      tar's exit status, and what `tar -d` finds against the archive in each tree (kitefs's
#      through the other mount, sshfs's on the server's side); kite-fsd's RSS (after its untar)
#      and the store's size on disk;
#   3. fio, bs=1M, ioengine=psync: sequential write of SIZE_MB (default 1024) with end_fsync=1,
#      a warm sequential read of the same file (read once first; for sshfs that means the
#      server's page cache, as its client keeps none across opens), and a cold one after
#      `echo 3 > /proc/sys/vm/drop_caches` (root only): for the FUSE mounts that empties the
#      client's page cache and the server's (kite-fsd's blob files, sftp-server's file) alike,
#      so the read goes through the client and the server to the disk; kite-fsd's own RocksDB
#      cache (64 MiB) stays.
# No network is involved (loopback). Run it alone, under the build lock:
#   flock /tmp/kite-build.lock bench/fs/run.sh [FILES] [SIZE_MB] [TARBALL]
# A quick try: bench/fs/run.sh 500 64 /some/small.tar (TARBALL "none": no untar).
set -euo pipefail

files=${1:-10000}
size_mb=${2:-1024}
tarball=${3:-$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | head -1)}
[ "$tarball" = none ] && tarball=""
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${KITE_BIN:-$repo/build/bin}
for tool in fio sshfs /usr/sbin/sshd ssh-keygen /usr/lib/openssh/sftp-server; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
work=$(mktemp -d /var/tmp/kitefs-bench.XXXXXX)
port=$((20000 + $$ % 20000))
fsd_pid=""; c1_pid=""; c2_pid=""; sshd_pid=""; sshfs_pid=""; made_privsep=""

mounted() { grep -qs " $1 fuse" /proc/self/mounts; }
cleanup() {
  set +e  # every step, whatever the last one did
  for m in "$work/m1" "$work/m2" "$work/ms"; do mounted "$m" && umount -l "$m"; done
  for p in $sshfs_pid $c1_pid $c2_pid $fsd_pid; do kill "$p" 2>/dev/null || true; done
  # sshd last, once its session for sshfs has ended: a session whose listener went first would
  # be left to init.
  [ -n "$sshfs_pid" ] && wait "$sshfs_pid" 2>/dev/null
  if [ -n "$sshd_pid" ]; then
    for _ in $(seq 40); do pgrep -P "$sshd_pid" >/dev/null || break; sleep 0.05; done
    kill "$sshd_pid" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  [ -n "$made_privsep" ] && rmdir /run/sshd 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- set up kitefs: certificates, configs, server, two mounts ----------------------------
"$bin/kite-admin" init --out "$work/ca" fsd=127.0.0.1 node1=127.0.0.1 node2=127.0.0.1 >/dev/null
for h in fsd node1 node2; do
  cat > "$work/$h.toml" <<EOF
[cluster]
ca = "$work/ca/ca.pem"
cert = "$work/ca/$h/host.pem"
key = "$work/ca/$h/host.key"
[host]
name = "$h"
listen = "127.0.0.1"
EOF
done
mkdir -p "$work/m1" "$work/m2" "$work/ms" "$work/local" "$work/export"
# kite-fsd's grace period after a start (for clients to reclaim open files and locks) is its
# default, named here because it is waited out before anything is timed: while it runs, opens
# get no caching (write sharing is assumed), which would make the reads below uncached.
grace_ms=5000
"$bin/kite-fsd" --config "$work/fsd.toml" --store "$work/store" --port "$port" --grace-ms "$grace_ms" \
  --log-level warn 2> "$work/fsd.log" & fsd_pid=$!
fsd_started=$(date +%s%N)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
"$bin/kitefs" -f --config "$work/node1.toml" --server "127.0.0.1:$port" --log-level warn "$work/m1" \
  2> "$work/c1.log" & c1_pid=$!
"$bin/kitefs" -f --config "$work/node2.toml" --server "127.0.0.1:$port" --log-level warn "$work/m2" \
  2> "$work/c2.log" & c2_pid=$!
for _ in $(seq 200); do mounted "$work/m1" && mounted "$work/m2" && break; sleep 0.05; done
mounted "$work/m1" && mounted "$work/m2" || { echo "kitefs mounts failed" >&2; cat "$work"/*.log >&2; exit 1; }

# --- set up sshfs: a private sshd on a free port, keys of its own, one mount ---------------
ssh_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -m 700 "$work/ssh"
ssh-keygen -q -t ed25519 -N '' -C kitefs-bench-host -f "$work/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -C kitefs-bench-user -f "$work/ssh/id"
cp "$work/ssh/id.pub" "$work/ssh/authorized_keys"
# StrictModes no: the keys live under /var/tmp, which is world-writable (sticky).
cat > "$work/ssh/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $work/ssh/host_key
PidFile $work/ssh/sshd.pid
AuthorizedKeysFile $work/ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
# sshd needs its privilege-separation directory (the packaged unit makes it at start).
[ -d /run/sshd ] || { mkdir -m 755 /run/sshd; made_privsep=1; }
/usr/sbin/sshd -t -f "$work/ssh/sshd_config"
/usr/sbin/sshd -D -e -f "$work/ssh/sshd_config" 2> "$work/sshd.log" & sshd_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$ssh_port") 2>/dev/null && break; sleep 0.05; done
sshfs -f -F /dev/null -p "$ssh_port" "root@127.0.0.1:$work/export" "$work/ms" \
  -o IdentityFile="$work/ssh/id",IdentitiesOnly=yes,BatchMode=yes \
  -o StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,LogLevel=ERROR \
  -o Ciphers=aes128-gcm@openssh.com,Compression=no,no_contain_symlinks \
  2> "$work/sshfs.log" & sshfs_pid=$!
for _ in $(seq 200); do mounted "$work/ms" && break; sleep 0.05; done
mounted "$work/ms" || { echo "sshfs mount failed" >&2; cat "$work/sshd.log" "$work/sshfs.log" >&2; exit 1; }

# Nothing is timed before kite-fsd's grace period is over.
while (( $(date +%s%N) < fsd_started + (grace_ms + 200) * 1000000 )); do sleep 0.1; done

now() { date +%s.%N; }
ratio() {  # A B → A / B, e.g. "0.27x"
  awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) { print "n/a"; exit }
    r = a / b; printf(r < 0.1 ? "%.3fx" : "%.2fx", r) }'
}

# --- 1. metadata ---------------------------------------------------------------------------
meta() {  # DIR → "create stat unlink" ops/s
  python3 - "$1" "$files" <<'EOF'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
names = [os.path.join(d, "f%06d" % i) for i in range(n)]
out = []
t = time.perf_counter()
for p in names: os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
out.append(n / (time.perf_counter() - t))
t = time.perf_counter()
for p in names: os.stat(p)
out.append(n / (time.perf_counter() - t))
t = time.perf_counter()
for p in names: os.unlink(p)
out.append(n / (time.perf_counter() - t))
os.rmdir(d)
print(" ".join("%.0f" % x for x in out))
EOF
}
echo "1/3: create+stat+unlink of $files files..." >&2
read -r lc ls lu <<< "$(meta "$work/local/meta")"
read -r kc ks ku <<< "$(meta "$work/m1/meta")"
read -r sc ss su <<< "$(meta "$work/ms/meta")"

# --- 2. untar --------------------------------------------------------------------------------
untar_rows=""
untar() {  # DIR NAME → "tar_s sync_s tar_status": tar xf, then sync; tar's messages in tar-NAME.err
  local t0 t1 t2 rc=0
  mkdir "$1"
  sync
  t0=$(now); tar xf "$work/src.tar" -C "$1" 2> "$work/tar-$2.err" || rc=$?; t1=$(now); sync; t2=$(now)
  echo "$(echo "$t1 - $t0" | bc -l) $(echo "$t2 - $t1" | bc -l) $rc"
}
compare() {  # DIR → what `tar -d` finds against the archive (data, mode, mtime, owner, links)
  local n
  n=$(tar -df "$work/src.tar" -C "$1" 2>&1 | wc -l)
  if [ "$n" -eq 0 ]; then echo "none"; else echo "$n differences"; fi
}
tar_status() {  # STATUS NAME → "0", or "2 (N lines of errors)"
  if [ "$1" -eq 0 ]; then echo 0; else echo "$1 ($(grep -c . "$work/tar-$2.err") lines of errors)"; fi
}
if [ -n "$tarball" ] && [ -r "$tarball" ]; then
  echo "2/3: untar of $tarball (decompressing first)..." >&2
  case "$tarball" in
    *.xz) xz -dc "$tarball" > "$work/src.tar" ;;
    *.gz) gzip -dc "$tarball" > "$work/src.tar" ;;
    *) cp "$tarball" "$work/src.tar" ;;
  esac
  nfiles=$(tar tf "$work/src.tar" | wc -l)
  read -r tl_tar tl_sync tl_rc <<< "$(untar "$work/local/untar" local)"
  echo "   local: tar $tl_tar s (status $tl_rc), sync $tl_sync s" >&2
  read -r tk_tar tk_sync tk_rc <<< "$(untar "$work/m1/untar" kitefs)"
  echo "   kitefs: tar $tk_tar s (status $tk_rc), sync $tk_sync s" >&2
  rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$fsd_pid/status")
  store_mb=$(du -sm "$work/store" | cut -f1)
  read -r ts_tar ts_sync ts_rc <<< "$(untar "$work/ms/untar" sshfs)"
  echo "   sshfs: tar $ts_tar s (status $ts_rc), sync $ts_sync s" >&2
  cat "$work"/tar-*.err | head -20 >&2
  # Check the results: kitefs's through the other host's mount, sshfs's on the server's side.
  echo "   comparing the trees with the archive (tar -d)..." >&2
  l_diff=$(compare "$work/local/untar"); k_diff=$(compare "$work/m2/untar"); s_diff=$(compare "$work/export/untar")
  tl=$(echo "$tl_tar + $tl_sync" | bc -l); tk=$(echo "$tk_tar + $tk_sync" | bc -l); ts=$(echo "$ts_tar + $ts_sync" | bc -l)
  untar_rows="| untar $(basename "$tarball") ($nfiles entries): tar + sync, s | $(printf %.2f "$tl") | $(printf %.2f "$tk") | $(printf %.2f "$ts") | $(ratio "$tl" "$tk") | $(ratio "$tl" "$ts") | $(ratio "$ts" "$tk") |"
  untar_rows+=$'\n'"| of which the final sync, s | $(printf %.2f "$tl_sync") | $(printf %.2f "$tk_sync") | $(printf %.2f "$ts_sync") | | | |"
  untar_rows+=$'\n'"| tar's exit status | $(tar_status "$tl_rc" local) | $(tar_status "$tk_rc" kitefs) | $(tar_status "$ts_rc" sshfs) | | | |"
  untar_rows+=$'\n'"| tar -d against the archive (kitefs: through the other mount; sshfs: the server's copy) | $l_diff | $k_diff | $s_diff | | | |"
  untar_rows+=$'\n'"| kite-fsd RSS after the untar, MiB | | $((rss_kb / 1024)) | | | | |"
  untar_rows+=$'\n'"| on disk after the untar, MiB (tree / kitefs store / exported tree) | $(du -sm "$work/local/untar" | cut -f1) | $store_mb | $(du -sm "$work/export/untar" | cut -f1) | | | |"
  rm -rf "$work/local/untar" "$work/export/untar" "$work/src.tar"
else
  echo "2/3: no tarball (give one as the third argument): untar skipped" >&2
fi

# --- 3. sequential I/O (fio) -----------------------------------------------------------------
fio_mbps() {  # FILE RW [fio options] → MB/s (10^6 bytes/s)
  local f=$1 rw=$2; shift 2
  fio --name=seq --filename="$f" --rw="$rw" --bs=1M --size="${size_mb}M" --ioengine=psync \
    --fallocate=none --invalidate=0 --output-format=json "$@" > "$work/fio.json"
  python3 -c 'import json, sys; j = json.load(open(sys.argv[1]))["jobs"][0]; print("%.0f" % (j[sys.argv[2]]["bw_bytes"] / 1e6))' \
    "$work/fio.json" "$rw"
}
can_drop=""; [ -w /proc/sys/vm/drop_caches ] && can_drop=1
seq_io() {  # FILE → "write warm_read cold_read" MB/s
  local f=$1 w r c="n/a"
  w=$(fio_mbps "$f" write --end_fsync=1)
  cat "$f" > /dev/null  # warm
  r=$(fio_mbps "$f" read)
  if [ -n "$can_drop" ]; then
    sync; echo 3 > /proc/sys/vm/drop_caches
    c=$(fio_mbps "$f" read)
  fi
  echo "$w $r $c"
  rm -f "$f"
}
echo "3/3: fio sequential write, warm and cold read of $size_mb MiB..." >&2
read -r lw lr lcr <<< "$(seq_io "$work/local/seq")"
read -r kw kr kcr <<< "$(seq_io "$work/m1/seq")"
read -r sw sr scr <<< "$(seq_io "$work/ms/seq")"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average at the end: $load_end" >&2

row() {  # LABEL LOCAL KITE SSHFS (higher is better)
  echo "| $1 | $2 | $3 | $4 | $(ratio "$3" "$2") | $(ratio "$4" "$2") | $(ratio "$3" "$4") |"
}
cat <<EOF
| kitefs (2 mounts) and sshfs (loopback) vs local disk | local | kitefs | sshfs | kitefs / local | sshfs / local | kitefs / sshfs |
|---|---:|---:|---:|---:|---:|---:|
$(row "create, files/s" "$lc" "$kc" "$sc")
$(row "stat, files/s" "$ls" "$ks" "$ss")
$(row "unlink, files/s" "$lu" "$ku" "$su")
${untar_rows:+$untar_rows
}$(row "fio sequential write ${size_mb} MiB (bs=1M, psync, end_fsync=1), MB/s" "$lw" "$kw" "$sw")
$(row "fio warm sequential read ${size_mb} MiB, MB/s" "$lr" "$kr" "$sr")
$(row "fio cold sequential read ${size_mb} MiB (after drop_caches), MB/s" "$lcr" "$kcr" "$scr")

Ratios are of speed (above 1: faster). Load average (1, 5, 15 min) at the start: $load_start; at the end: $load_end.
EOF
