#!/bin/sh
# Checks what libkite-shim.so costs every process it is preloaded into: it must need nothing
# but libc (no C++ runtime) and export exactly the wrapped libc functions.
# Usage: check_shim_elf.sh path/to/libkite-shim.so
set -eu
so=$1
needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
if [ "$needed" != "libc.so.6 " ]; then
  echo "FAIL: $so needs: $needed (want only libc.so.6)"; exit 1
fi
exported=$(nm -D --defined-only "$so" | awk '{print $3}' | sort | tr '\n' ' ')
want="__gethostname_chk gethostname getpgid getpgrp getpid getppid getsid kill killpg setpgid tcgetpgrp tcsetpgrp uname wait wait3 wait4 waitid waitpid "
if [ "$exported" != "$want" ]; then
  echo "FAIL: $so exports: $exported"; echo "want: $want"; exit 1
fi
echo "ok: needs $needed; exports $exported"
