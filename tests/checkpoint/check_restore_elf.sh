#!/bin/sh
# Checks kite-restore is what the restorer must be: statically linked, no interpreter, no
# undefined symbols (no libc), loaded at its fixed window (restorer.h: KITE_RESTORER_BASE).
# Usage: check_restore_elf.sh path/to/kite-restore
set -eu
bin=$1
undefined=$(nm -u "$bin" | tr '\n' ' ')
if [ -n "$undefined" ]; then echo "FAIL: undefined symbols: $undefined"; exit 1; fi
if readelf -lW "$bin" | grep -q INTERP; then echo "FAIL: has a program interpreter"; exit 1; fi
if readelf -dW "$bin" 2>/dev/null | grep -q NEEDED; then echo "FAIL: needs shared libraries"; exit 1; fi
first_load=$(readelf -lW "$bin" | awk '$1 == "LOAD" { print $3; exit }')
if [ "$first_load" != "0x00007e0000000000" ]; then echo "FAIL: loaded at $first_load"; exit 1; fi
echo "ok: static, no undefined symbols, loaded at $first_load"
