// System calls made without libc, for the checkpoint handler (private to checkpoint/).
// They return the kernel's result (-errno on failure) and never touch errno: the dump runs
// inside a signal handler and captures the process's memory, its errno included, so the
// handler must leave that memory as the interrupted code left it.
#pragma once

#include <sys/syscall.h>

#include "syscall-shim/raw_syscall6.h"

namespace kite::shim::raw {

inline long Syscall(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0,
                    long f = 0) {
  return kite_raw_syscall6(n, a, b, c, d, e, f);
}

template <typename P>
inline long Arg(P* p) { return reinterpret_cast<long>(p); }

inline bool Failed(long r) { return r < 0 && r > -4096; }

}  // namespace kite::shim::raw
