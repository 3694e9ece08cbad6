// Job membership of a host pid from /proc (see job_membership.h). Plain syscalls and stack
// buffers only: kill() may be called from a signal handler.
#include "syscall-shim/pids/job_membership.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kite::shim {
namespace {

// "/proc/<pid>/<leaf>", or "/proc/self/<leaf>" for pid 0.
void ProcPath(pid_t pid, const char* leaf, char out[64]) {
  char* p = out;
  memcpy(p, "/proc/", 6);
  p += 6;
  if (pid == 0) {
    memcpy(p, "self", 4);
    p += 4;
  } else {
    char digits[16];
    int n = 0;
    for (unsigned v = static_cast<unsigned>(pid); v != 0; v /= 10) digits[n++] = char('0' + v % 10);
    while (n > 0) *p++ = digits[--n];
  }
  *p++ = '/';
  memcpy(p, leaf, strlen(leaf) + 1);
}

int OpenProc(pid_t pid, const char* leaf) {
  char path[64];
  ProcPath(pid, leaf, path);
  int fd;
  do {
    fd = ::open(path, O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Reads until `n` bytes or end of file; returns the count or -1.
ssize_t ReadFull(int fd, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = ::read(fd, buf + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    if (k == 0) break;
    got += static_cast<size_t>(k);
  }
  return static_cast<ssize_t>(got);
}

// True when /proc/<a>/cgroup and /proc/<b>/cgroup (0: self) hold the same bytes. Compared in
// chunks so that a long file needs no large buffer.
bool SameCgroupFile(pid_t a, pid_t b) {
  int fa = OpenProc(a, "cgroup");
  if (fa < 0) return false;
  int fb = OpenProc(b, "cgroup");
  if (fb < 0) {
    ::close(fa);
    return false;
  }
  bool same = true;
  char ba[256], bb[256];
  for (;;) {
    ssize_t na = ReadFull(fa, ba, sizeof ba);
    ssize_t nb = ReadFull(fb, bb, sizeof bb);
    if (na < 0 || na != nb || memcmp(ba, bb, static_cast<size_t>(na)) != 0) {
      same = false;
      break;
    }
    if (na < static_cast<ssize_t>(sizeof ba)) break;  // both ended here
  }
  ::close(fa);
  ::close(fb);
  return same;
}

}  // namespace

pid_t JobMembership::ReadParent(pid_t pid) {
  int fd = OpenProc(pid, "stat");
  if (fd < 0) return -1;
  // "pid (comm) state ppid ...": comm is at most 64 bytes and may hold ')' or spaces, so the
  // field after the last ')' in the first bytes is the state; nothing after comm holds ')'.
  char buf[256];
  ssize_t n = ReadFull(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* p = strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ' || p[2] == '\0' || p[3] != ' ') return -1;
  p += 4;
  long v = 0;
  const char* start = p;
  for (; *p >= '0' && *p <= '9' && v <= 0x7fffffff; ++p) v = v * 10 + (*p - '0');
  if (p == start || *p != ' ' || v > 0x7fffffff) return -1;
  return static_cast<pid_t>(v);
}

bool JobMembership::DescendsFromRoot(pid_t pid) const {
  if (real_root_ <= 0) return false;
  for (int depth = 0; depth < kMaxDepth && pid > 0; ++depth) {
    if (pid == real_root_) return true;
    if (pid == 1) return false;
    pid = ReadParent(pid);
  }
  return false;
}

bool JobMembership::SharesOurCgroup(pid_t pid) const { return pid > 0 && SameCgroupFile(pid, 0); }

bool JobMembership::JobHasOwnCgroup() const {
  pid_t launcher = real_root_ > 0 ? ReadParent(real_root_) : -1;
  if (launcher <= 0) return true;
  return !SameCgroupFile(launcher, 0);
}

bool JobMembership::Contains(pid_t pid) const {
  if (pid <= 0) return false;
  if (DescendsFromRoot(pid)) return true;
  return SharesOurCgroup(pid) && JobHasOwnCgroup();
}

}  // namespace kite::shim
