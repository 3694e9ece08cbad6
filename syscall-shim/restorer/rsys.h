/* kite-restore's system calls and constants: raw `syscall` instructions, kernel UAPI headers
 * only (no libc). Every call returns the kernel's value, -errno on failure. */
#ifndef KITE_SYSCALL_SHIM_RESTORER_RSYS_H_
#define KITE_SYSCALL_SHIM_RESTORER_RSYS_H_

#include <asm/prctl.h>
#include <asm/stat.h>
#include <asm/unistd.h>
#include <linux/capability.h>
#include <linux/fcntl.h>
#include <linux/mman.h>
#include <linux/poll.h>
#include <linux/prctl.h>
#include <stddef.h>
#include <stdint.h>

#include "syscall-shim/raw_syscall6.h"

#define rsys6 kite_raw_syscall6
#define rsys0(n) rsys6((n), 0, 0, 0, 0, 0, 0)
#define rsys1(n, a) rsys6((n), (long)(a), 0, 0, 0, 0, 0)
#define rsys2(n, a, b) rsys6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define rsys3(n, a, b, c) rsys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define rsys4(n, a, b, c, d) rsys6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define rsys5(n, a, b, c, d, e) rsys6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)
#define rsys_failed(r) ((unsigned long)(r) > (unsigned long)-4096L)

#define R_EINTR 4
#define R_EAGAIN 11
#define R_EPERM 1

#define R_SIGKILL 9
#define R_SIGSTOP 19
#define R_SIG_SETMASK 2
#define R_PR_SET_DUMPABLE 4
#define R_CAP_CHECKPOINT_RESTORE 40
#define R_ITIMER_COUNT 3

struct r_timeval {
  long tv_sec;
  long tv_usec;
};
struct r_itimerval {
  struct r_timeval it_interval;
  struct r_timeval it_value;
};
struct r_rlimit64 {
  uint64_t cur;
  uint64_t max;
};
struct r_linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

#define R_S_IFMT 0170000
#define R_S_IFREG 0100000
#define R_S_IFDIR 0040000
#define R_S_IFIFO 0010000

#endif /* KITE_SYSCALL_SHIM_RESTORER_RSYS_H_ */
