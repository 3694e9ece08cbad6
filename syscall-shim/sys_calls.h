// Raw system calls for the shim's own use (private to syscall-shim/).
// The shim defines getpid, kill, uname, ... itself, so calling those libc names from inside it
// would call the shim again. Each of them is a plain system call in glibc, so making the call
// directly is exactly what libc would have done; it also means nothing has to be looked up with
// dlsym, not even in an inert process. The price: another preloaded library that wraps the same
// calls and is loaded after us is bypassed.
#pragma once

#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace kite::shim::sys {

inline pid_t getpid() { return static_cast<pid_t>(::syscall(SYS_getpid)); }
inline pid_t getppid() { return static_cast<pid_t>(::syscall(SYS_getppid)); }
inline pid_t getpgid(pid_t pid) { return static_cast<pid_t>(::syscall(SYS_getpgid, pid)); }
inline pid_t getsid(pid_t pid) { return static_cast<pid_t>(::syscall(SYS_getsid, pid)); }
inline int setpgid(pid_t pid, pid_t pgid) { return static_cast<int>(::syscall(SYS_setpgid, pid, pgid)); }
inline int kill(pid_t pid, int signo) { return static_cast<int>(::syscall(SYS_kill, pid, signo)); }
inline pid_t wait4(pid_t pid, int* status, int options, struct rusage* ru) {
  return static_cast<pid_t>(::syscall(SYS_wait4, pid, status, options, ru));
}
inline int waitid(int idtype, id_t id, siginfo_t* info, int options) {
  return static_cast<int>(::syscall(SYS_waitid, idtype, id, info, options, nullptr));
}
inline int uname(struct utsname* buf) { return static_cast<int>(::syscall(SYS_uname, buf)); }

// tcgetpgrp/tcsetpgrp as glibc implements them (ioctl is not wrapped by the shim).
inline pid_t tcgetpgrp(int fd) {
  pid_t pgrp = 0;
  return ::ioctl(fd, TIOCGPGRP, &pgrp) < 0 ? -1 : pgrp;
}
inline int tcsetpgrp(int fd, pid_t pgrp) { return ::ioctl(fd, TIOCSPGRP, &pgrp); }

}  // namespace kite::shim::sys
