/* The x86-64 `syscall` instruction with six arguments, for the code of syscall-shim/ that must
 * not use libc: the checkpoint handler (errno is part of the image it writes) and kite-restore
 * (built without libc). Plain C, no includes. Returns the kernel's value, -errno on failure. */
#ifndef KITE_SYSCALL_SHIM_RAW_SYSCALL6_H_
#define KITE_SYSCALL_SHIM_RAW_SYSCALL6_H_

static inline long kite_raw_syscall6(long n, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

#endif /* KITE_SYSCALL_SHIM_RAW_SYSCALL6_H_ */
