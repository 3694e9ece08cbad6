// Raw-syscall file helpers for the checkpoint handler (see proc_files.h).
#include "syscall-shim/checkpoint/proc_files.h"

#include <fcntl.h>

#include <cerrno>

#include "syscall-shim/checkpoint/raw_syscall.h"

namespace kite::shim {

long OpenFile(const char* path, int flags, int mode) {
  long r;
  do {
    r = raw::Syscall(SYS_openat, AT_FDCWD, raw::Arg(path), flags | O_CLOEXEC, mode);
  } while (r == -EINTR);
  return r;
}

void CloseFd(int fd) { raw::Syscall(SYS_close, fd); }

long ReadWholeFile(const char* path, char* buf, size_t cap) {
  long fd = OpenFile(path, O_RDONLY);
  if (raw::Failed(fd)) return fd;
  size_t got = 0;
  long result = 0;
  for (;;) {
    if (got + 1 >= cap) {
      result = -EFBIG;
      break;
    }
    long n = raw::Syscall(SYS_read, fd, raw::Arg(buf + got), static_cast<long>(cap - 1 - got));
    if (n == -EINTR) continue;
    if (raw::Failed(n)) {
      result = n;
      break;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  CloseFd(static_cast<int>(fd));
  if (result < 0) return result;
  buf[got] = '\0';
  return static_cast<long>(got);
}

long StatPath(const char* path, struct stat* st) {
  return raw::Syscall(SYS_newfstatat, AT_FDCWD, raw::Arg(path), raw::Arg(st), 0);
}

long StatFd(int fd, struct stat* st) {
  return raw::Syscall(SYS_newfstatat, fd, raw::Arg(""), raw::Arg(st), AT_EMPTY_PATH);
}

long ReadLink(const char* path, char* buf, size_t cap) {
  long n = raw::Syscall(SYS_readlinkat, AT_FDCWD, raw::Arg(path), raw::Arg(buf),
                        static_cast<long>(cap));
  if (raw::Failed(n)) return n;
  if (static_cast<size_t>(n) >= cap) return -ENAMETOOLONG;
  buf[n] = '\0';
  return n;
}

}  // namespace kite::shim
