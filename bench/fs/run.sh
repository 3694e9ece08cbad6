#!/usr/bin/env bash
# kitefs benchmarks (issue 5), on this machine: a kite-fsd on 127.0.0.1 with its store on local
# disk, and two kitefs mounts ("two hosts": the second one idles, but it listens for the
# server's invalidations, so every change waits for its acknowledgement as it would in a
# cluster). Each figure is set against the same work on a local directory of the same disk, in
# the same run. Prints a Markdown table:
#   1. metadata: create, stat and unlink of N files (default 10000) in one directory, ops/s;
#   2. untar of TARBALL (default Debian's linux-source .tar.xz, decompressed first so that xz is
#      not timed), wall seconds; then kite-fsd's RSS and the store's size on disk;
#   3. sequential write of SIZE_MB (default 1024) with dd bs=1M, then a warm read (the same file
#      again, from the client's page cache), MB/s.
# No network is involved (loopback). Run it alone, under the build lock:
#   flock /tmp/kite-build.lock bench/fs/run.sh [FILES] [SIZE_MB] [TARBALL]
set -euo pipefail

files=${1:-10000}
size_mb=${2:-1024}
tarball=${3:-$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | head -1)}
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${KITE_BIN:-$repo/build/bin}
work=$(mktemp -d /var/tmp/kitefs-bench.XXXXXX)
port=$((20000 + $$ % 20000))
fsd_pid=""; c1_pid=""; c2_pid=""

cleanup() {
  for m in "$work/m1" "$work/m2"; do mountpoint -q "$m" 2>/dev/null && umount -l "$m"; done
  for p in $c1_pid $c2_pid $fsd_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- set up: certificates, configs, server, two mounts -----------------------------------
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
mkdir -p "$work/m1" "$work/m2" "$work/local"
"$bin/kite-fsd" --config "$work/fsd.toml" --store "$work/store" --port "$port" --log-level warn \
  2> "$work/fsd.log" & fsd_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
"$bin/kitefs" -f --config "$work/node1.toml" --server "127.0.0.1:$port" --log-level warn "$work/m1" \
  2> "$work/c1.log" & c1_pid=$!
"$bin/kitefs" -f --config "$work/node2.toml" --server "127.0.0.1:$port" --log-level warn "$work/m2" \
  2> "$work/c2.log" & c2_pid=$!
for _ in $(seq 200); do mountpoint -q "$work/m1" && mountpoint -q "$work/m2" && break; sleep 0.05; done
mountpoint -q "$work/m1" && mountpoint -q "$work/m2" || { echo "mounts failed" >&2; cat "$work"/*.log >&2; exit 1; }

now() { date +%s.%N; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }

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

# --- 2. untar --------------------------------------------------------------------------------
untar_rows=""
if [ -n "$tarball" ] && [ -r "$tarball" ]; then
  echo "2/3: untar of $tarball (decompressing first)..." >&2
  case "$tarball" in
    *.xz) xz -dc "$tarball" > "$work/src.tar" ;;
    *.gz) gzip -dc "$tarball" > "$work/src.tar" ;;
    *) cp "$tarball" "$work/src.tar" ;;
  esac
  nfiles=$(tar tf "$work/src.tar" | wc -l)
  mkdir "$work/local/untar" "$work/m1/untar"
  sync
  t0=$(now); tar xf "$work/src.tar" -C "$work/local/untar"; sync; t1=$(now)
  t_local=$(echo "$t1 - $t0" | bc -l)
  t0=$(now); tar xf "$work/src.tar" -C "$work/m1/untar"; t1=$(now)
  t_kite=$(echo "$t1 - $t0" | bc -l)
  # Check the result: the same bytes in the same tree.
  if diff -r -q "$work/local/untar" "$work/m2/untar" >/dev/null; then same="identical"; else same="DIFFERENT"; fi
  rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$fsd_pid/status")
  store_mb=$(du -sm "$work/store" | cut -f1)
  untar_rows="| untar $(basename "$tarball") ($nfiles entries), s | $(printf %.2f "$t_local") | $(printf %.2f "$t_kite") | $(ratio "$t_kite" "$t_local")x slower |"
  untar_rows+=$'\n'"| tree read back through the other mount vs local | | $same | |"
  untar_rows+=$'\n'"| kite-fsd RSS after the untar, MiB | | $((rss_kb / 1024)) | |"
  untar_rows+=$'\n'"| store on disk after the untar, MiB | $(du -sm "$work/local/untar" | cut -f1) | $store_mb | |"
  rm -rf "$work/local/untar" "$work/src.tar"
else
  echo "2/3: no tarball (give one as the third argument): untar skipped" >&2
fi

# --- 3. sequential I/O -----------------------------------------------------------------------
seq_io() {  # FILE → "write_MBps warm_read_MBps"
  local f=$1 t0 t1 w r
  t0=$(now); dd if=/dev/zero of="$f" bs=1M count="$size_mb" conv=fsync status=none; t1=$(now)
  w=$(echo "$size_mb / ($t1 - $t0)" | bc -l)
  cat "$f" > /dev/null  # warm
  t0=$(now); cat "$f" > /dev/null; t1=$(now)
  r=$(echo "$size_mb / ($t1 - $t0)" | bc -l)
  printf "%.0f %.0f\n" "$w" "$r"
  rm -f "$f"
}
echo "3/3: sequential write and warm read of $size_mb MiB..." >&2
read -r lw lr <<< "$(seq_io "$work/local/seq")"
read -r kw kr <<< "$(seq_io "$work/m1/seq")"

cat <<EOF
| kitefs (2 mounts, loopback) vs local disk | local | kitefs | kitefs / local |
|---|---:|---:|---:|
| create, files/s | $lc | $kc | $(ratio "$kc" "$lc")x |
| stat, files/s | $ls | $ks | $(ratio "$ks" "$ls")x |
| unlink, files/s | $lu | $ku | $(ratio "$ku" "$lu")x |
${untar_rows}
| sequential write ${size_mb} MiB (dd bs=1M, conv=fsync), MB/s | $lw | $kw | $(ratio "$kw" "$lw")x |
| warm sequential read ${size_mb} MiB, MB/s | $lr | $kr | $(ratio "$kr" "$lr")x |
EOF
