// libkite-shim.so's exported surface: the libc functions it replaces, as thin extern "C"
// wrappers over Shim, and the constructor that reads the job environment once.
//
// Without a valid KITE_JOB the shim is inert: each wrapper makes the plain system call, as libc
// would. Wrappers never print and never throw; failures are reported through errno, and errno
// is left untouched on success.
//
// Known limits of this slice (remote exec; migration comes later):
//  - calls that bypass the PLT are not seen: glibc-internal callers (raise, abort, posix_spawn),
//    syscall(SYS_getpid), statically linked programs, direct ioctl(TIOCGPGRP);
//  - gettid(), tgkill() and tkill() pass through: in the root's main thread gettid() is the real
//    pid while getpid() is the vpid;
//  - /proc/self and /proc/<pid> paths are this host's (a job reading /proc/<getpid()> in its
//    root reads another pid's entry, or nothing);
//  - calls made by other libraries' constructors before ours runs see real values;
//  - other pid-taking calls (sched_*, setpriority, prlimit, pidfd_open, ptrace) are not
//    translated; waits are (a restored job's processes are known by their pids before the
//    move), but not glibc's internal ones (system(), posix_spawn's callers waiting by hand are
//    fine: they call waitpid).
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <termios.h>

#include "syscall-shim/checkpoint/checkpoint_protocol.h"
#include "syscall-shim/checkpoint/checkpointer.h"
#include "syscall-shim/shim.h"
#include "syscall-shim/sys_calls.h"

#define KITE_SHIM_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

constinit kite::shim::Shim g_shim;

__attribute__((constructor)) void InitShim() {
  const char* job = getenv(kite::shim::kJobVar);
  const char* ckpt_dir = getenv(kite::shim::kCkptDirVar);
  if (job == nullptr && ckpt_dir == nullptr) return;  // not a kite job: inert, two getenvs
  if (job != nullptr) g_shim.Init(job, getenv(kite::shim::kHomeVar), getenv(kite::shim::kSockVar));
  // Checkpointable: every job, and any process given KITE_CKPT_DIR (tests, kite checkpoint).
  kite::shim::TheCheckpointer().Install(ckpt_dir != nullptr ? ckpt_dir
                                                            : kite::shim::kDefaultCkptDir);
}

// The shim state, brought up to date first if the process was restored from an image.
kite::shim::Shim& Synced() {
  g_shim.SyncRestore();
  return g_shim;
}

// 0 or an errno from the shim's classes -> the libc convention.
int Result(int err) {
  if (err == 0) return 0;
  errno = err;
  return -1;
}

// A pid returned by a call that may fail (-1 with errno) shown as the job sees it.
pid_t Virtual(pid_t real) { return real < 0 ? real : g_shim.pids().ToVirtual(real); }

}  // namespace

extern "C" void __chk_fail(void) __attribute__((noreturn));

KITE_SHIM_EXPORT pid_t getpid(void) noexcept {
  pid_t real = kite::shim::sys::getpid();
  return Synced().active() ? Virtual(real) : real;
}

KITE_SHIM_EXPORT pid_t getppid(void) noexcept {
  pid_t parent = kite::shim::sys::getppid();
  if (!Synced().active()) return parent;
  return g_shim.pids().ParentOf(kite::shim::sys::getpid(), parent);
}

// The root is its own session and group leader here, so its group and session ids are its
// real pid and show as its vpid.
KITE_SHIM_EXPORT pid_t getpgid(pid_t pid) noexcept {
  if (!Synced().active()) return kite::shim::sys::getpgid(pid);
  return Virtual(kite::shim::sys::getpgid(g_shim.pids().ToReal(pid)));
}

KITE_SHIM_EXPORT pid_t getpgrp(void) noexcept { return getpgid(0); }

KITE_SHIM_EXPORT pid_t getsid(pid_t pid) noexcept {
  if (!Synced().active()) return kite::shim::sys::getsid(pid);
  return Virtual(kite::shim::sys::getsid(g_shim.pids().ToReal(pid)));
}

KITE_SHIM_EXPORT int setpgid(pid_t pid, pid_t pgid) noexcept {
  if (Synced().active()) {
    pid = g_shim.pids().ToReal(pid);
    pgid = g_shim.pids().ToReal(pgid);
  }
  return kite::shim::sys::setpgid(pid, pgid);
}

// Job-control shells compare these with getpgrp() and hand the terminal to their own group.
KITE_SHIM_EXPORT pid_t tcgetpgrp(int fd) noexcept {
  pid_t pgrp = kite::shim::sys::tcgetpgrp(fd);
  return Synced().active() ? Virtual(pgrp) : pgrp;
}

KITE_SHIM_EXPORT int tcsetpgrp(int fd, pid_t pgrp) noexcept {
  if (Synced().active()) pgrp = g_shim.pids().ToReal(pgrp);
  return kite::shim::sys::tcsetpgrp(fd, pgrp);
}

KITE_SHIM_EXPORT int uname(struct utsname* buf) noexcept {
  return Result(g_shim.identity().Uname(buf));
}

// Also the inert path: the shim owns the symbol, so it implements glibc's semantics itself.
KITE_SHIM_EXPORT int gethostname(char* name, size_t len) noexcept {
  return Result(g_shim.identity().Gethostname(name, len));
}

// What -D_FORTIFY_SOURCE builds call when the length is not a constant; glibc's version calls
// its internal gethostname, which would bypass the shim.
KITE_SHIM_EXPORT int __gethostname_chk(char* name, size_t len, size_t buflen) noexcept {
  if (buflen < len) __chk_fail();
  return gethostname(name, len);
}

KITE_SHIM_EXPORT int kill(pid_t pid, int signo) noexcept {
  if (!Synced().active()) return kite::shim::sys::kill(pid, signo);
  int saved = errno;  // forwarding and /proc reads may set errno on the way to success
  int err = g_shim.kill_router().Kill(pid, signo);
  if (err == 0) errno = saved;
  return Result(err);
}

KITE_SHIM_EXPORT int killpg(pid_t pgrp, int signo) noexcept {
  if (pgrp < 0) return Result(EINVAL);  // as glibc
  return kill(-pgrp, signo);
}

// Waits: pids in and out are the job's. The checkpoint signal interrupts a wait and the kernel
// restarts it after the restore with the real pid it was given before the move, which is no
// child here (ECHILD): translated again and retried once the restore is applied.
namespace {

pid_t RealWaitTarget(pid_t pid) {
  if (pid > 0) return g_shim.pids().ToReal(pid);
  if (pid < -1) return -g_shim.pids().ToReal(-pid);
  return pid;  // -1: any child; 0: any child in our group
}

}  // namespace

KITE_SHIM_EXPORT pid_t wait4(pid_t pid, int* status, int options, struct rusage* ru) noexcept {
  if (!Synced().active()) return kite::shim::sys::wait4(pid, status, options, ru);
  for (;;) {
    uint32_t seen = g_shim.restores_seen();
    pid_t r = kite::shim::sys::wait4(RealWaitTarget(pid), status, options, ru);
    const int err = errno;
    if (r < 0 && err == ECHILD && Synced().restores_seen() != seen) continue;
    Synced();  // a restore during the wait: the pid is a new real one
    errno = err;
    return Virtual(r);
  }
}

KITE_SHIM_EXPORT pid_t waitpid(pid_t pid, int* status, int options) noexcept {
  return wait4(pid, status, options, nullptr);
}

KITE_SHIM_EXPORT pid_t wait(int* status) noexcept { return wait4(-1, status, 0, nullptr); }

KITE_SHIM_EXPORT pid_t wait3(int* status, int options, struct rusage* ru) noexcept {
  return wait4(-1, status, options, ru);
}

KITE_SHIM_EXPORT int waitid(idtype_t idtype, id_t id, siginfo_t* info, int options) noexcept {
  if (!Synced().active()) return kite::shim::sys::waitid(idtype, id, info, options);
  for (;;) {
    uint32_t seen = g_shim.restores_seen();
    id_t real = id;
    if ((idtype == P_PID || idtype == P_PGID) && id > 0) {
      real = static_cast<id_t>(g_shim.pids().ToReal(static_cast<pid_t>(id)));
    }
    int r = kite::shim::sys::waitid(idtype, real, info, options);
    const int err = errno;
    if (r < 0 && err == ECHILD && Synced().restores_seen() != seen) continue;
    Synced();
    errno = err;
    if (r == 0 && info != nullptr && info->si_pid > 0) info->si_pid = Virtual(info->si_pid);
    return r;
  }
}
