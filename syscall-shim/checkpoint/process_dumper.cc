// Task state, descriptors and pending signals of a checkpoint (see process_dumper.h).
#include "syscall-shim/checkpoint/process_dumper.h"

#include <asm/prctl.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>

#include <cerrno>
#include <cstring>

#include "syscall-shim/checkpoint/checkpoint_protocol.h"
#include "syscall-shim/checkpoint/proc_files.h"
#include "syscall-shim/checkpoint/raw_syscall.h"

namespace kite::shim {
namespace {

constexpr uint32_t kRseqSig = 0x53053053;  // RSEQ_SIG on x86_64, what glibc registers with

// The value after "Name:\t" in /proc/self/status text, or nullptr.
const char* StatusField(const char* text, const char* name) {
  size_t n = strlen(name);
  for (const char* p = text; p != nullptr && *p != '\0';) {
    if (strncmp(p, name, n) == 0 && p[n] == ':') {
      p += n + 1;
      SkipBlanks(&p);
      return p;
    }
    p = strchr(p, '\n');
    if (p != nullptr) ++p;
  }
  return nullptr;
}

uint64_t ReadXcr0() {
  uint32_t a = 1, b, c, d;
  __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
  if (!((c >> 27) & 1)) return 3;  // no OSXSAVE: x87 + SSE only
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t{hi} << 32) | lo;
}

bool IsTerminalPath(const char* path) {
  return strncmp(path, "/dev/pts/", 9) == 0 || strncmp(path, "/dev/tty", 8) == 0 ||
         strcmp(path, "/dev/console") == 0 || strcmp(path, "/dev/ptmx") == 0;
}

// The lowest standard stream (0, 1, 2) open on the same terminal as `st`, or -1: the
// launcher's pty, which every process of a job with a terminal shares.
int StdStreamOf(const struct stat& st) {
  for (int s = 0; s <= 2; ++s) {
    struct stat o;
    if (raw::Failed(StatFd(s, &o))) continue;
    if (o.st_dev == st.st_dev && o.st_ino == st.st_ino && o.st_rdev == st.st_rdev) return s;
  }
  return -1;
}

bool IsDeleted(const char* path) {
  size_t n = strlen(path);
  return n >= 10 && strcmp(path + n - 10, " (deleted)") == 0;
}

}  // namespace

int ProcessDumper::HostPid() {
  char buf[4096];
  long n = ReadWholeFile("/proc/self/status", buf, sizeof buf);
  if (n > 0) {
    const char* p = StatusField(buf, "NSpid");
    uint64_t v;
    if (p != nullptr && ParseUnsigned(&p, 10, &v) && v > 0 && v < (1u << 31)) return int(v);
  }
  return static_cast<int>(raw::Syscall(SYS_getpid));
}

bool ProcessDumper::CheckSupported() {
  char buf[4096];
  long n = ReadWholeFile("/proc/self/status", buf, sizeof buf);
  if (raw::Failed(n)) return err_->SetErrno("reading /proc/self/status", n);
  const char* p = StatusField(buf, "Threads");
  uint64_t v;
  if (p == nullptr || !ParseUnsigned(&p, 10, &v)) return err_->Set("/proc/self/status", "no Threads field");
  if (v != 1) return err_->Set("more than one thread", "only single-threaded processes can be checkpointed yet");
  p = StatusField(buf, "Seccomp");
  if (p != nullptr && *p != '0') return err_->Set("seccomp filter active", "cannot be restored");
  n = ReadWholeFile("/proc/self/timers", buf, sizeof buf);
  if (n > 0) return err_->Set("POSIX timers (timer_create) in use", "not supported yet");
  // Children are the controller's business: it checkpoints every process of the job (see
  // checkpoint_protocol.h) and restores the tree in shape.
  return true;
}

bool ProcessDumper::DumpMm(kite_img_process* p) {
  char buf[2048];
  long n = ReadWholeFile("/proc/self/stat", buf, sizeof buf);
  if (raw::Failed(n)) return err_->SetErrno("reading /proc/self/stat", n);
  // Fields after the last ')' start with field 3 (state).
  const char* s = strrchr(buf, ')');
  if (s == nullptr) return err_->Set("parsing /proc/self/stat", "no comm");
  s += 2;
  uint64_t field[53] = {};
  for (int k = 3; k <= 52 && *s != '\0'; ++k) {
    const char* t = s;
    uint64_t v = 0;
    if (*t == '-') ++t;
    if (k > 3 && !ParseUnsigned(&t, 10, &v)) return err_->Set("parsing /proc/self/stat", "bad field");
    field[k] = v;
    const char* sp = strchr(s, ' ');
    if (sp == nullptr) break;
    s = sp + 1;
  }
  kite_img_mm& m = p->mm;
  m.start_code = field[26];
  m.end_code = field[27];
  m.start_stack = field[28];
  m.start_data = field[45];
  m.end_data = field[46];
  m.start_brk = field[47];
  m.arg_start = field[48];
  m.arg_end = field[49];
  m.env_start = field[50];
  m.env_end = field[51];
  m.brk = static_cast<uint64_t>(raw::Syscall(SYS_brk, 0));
  if (m.start_code == 0 || m.start_stack == 0) {
    return err_->Set("parsing /proc/self/stat", "memory layout fields hidden");
  }

  uint64_t auxv[KITE_IMG_AUXV_WORDS + 1];
  n = ReadWholeFile("/proc/self/auxv", reinterpret_cast<char*>(auxv), sizeof auxv);
  if (raw::Failed(n)) return err_->SetErrno("reading /proc/self/auxv", n);
  if (n % 16 != 0 || n < 16) return err_->Set("/proc/self/auxv", "malformed or too long");
  p->auxv_words = static_cast<uint32_t>(n / 8);
  memcpy(p->auxv, auxv, static_cast<size_t>(n));
  return true;
}

bool ProcessDumper::DumpThreadState(const TlsLayout& tls, kite_img_process* p) {
  raw::Syscall(SYS_arch_prctl, ARCH_GET_FS, raw::Arg(&p->fs_base));
  raw::Syscall(SYS_arch_prctl, ARCH_GET_GS, raw::Arg(&p->gs_base));
  if (tls.tid_offset < 0) return err_->Set("glibc's cached thread id was not found at start-up");
  p->tid_address = p->fs_base + static_cast<uint64_t>(tls.tid_offset);
  if (*reinterpret_cast<const int32_t*>(p->tid_address) != p->tid) {
    return err_->Set("glibc's cached thread id does not hold the thread id");
  }
  long head = 0;
  size_t len = 0;
  long r = raw::Syscall(SYS_get_robust_list, 0, raw::Arg(&head), raw::Arg(&len));
  if (r == 0 && head != 0) {
    p->robust_list = static_cast<uint64_t>(head);
    p->robust_list_len = len;
  }
  // rseq has no getter: a registration with the same area, length and signature as the
  // current one fails with EBUSY, any other with EINVAL/EPERM (0 would mean none existed).
  if (tls.rseq_size > 0) {
    uint64_t area = p->fs_base + static_cast<uint64_t>(tls.rseq_offset);
    uint32_t lens[2] = {32, (tls.rseq_size + 31) & ~31u};
    for (uint32_t l : lens) {
      long rr = raw::Syscall(SYS_rseq, static_cast<long>(area), l, 0, kRseqSig);
      if (rr == -EBUSY) {
        p->rseq_addr = area;
        p->rseq_len = l;
        p->rseq_sig = kRseqSig;
        break;
      }
      if (rr == 0) {  // it was not registered after all: undo ours
        raw::Syscall(SYS_rseq, static_cast<long>(area), l, 1 /* RSEQ_FLAG_UNREGISTER */, kRseqSig);
        break;
      }
    }
    if (p->rseq_addr == 0) {
      // Either unregistered (GLIBC_TUNABLES) or registered differently: only the first is fine.
      long rr = raw::Syscall(SYS_rseq, static_cast<long>(area), 32, 0, kRseqSig);
      if (rr == 0) {
        raw::Syscall(SYS_rseq, static_cast<long>(area), 32, 1, kRseqSig);
      } else {
        return err_->Set("rseq registration not understood", "cannot be restored");
      }
    }
  }
  return true;
}

bool ProcessDumper::DumpTask(const void* ucontext, const TlsLayout& tls, kite_img_process* p) {
  p->pid = static_cast<int32_t>(raw::Syscall(SYS_getpid));
  p->tid = static_cast<int32_t>(raw::Syscall(SYS_gettid));
  p->host_pid = HostPid();
  raw::Syscall(SYS_getresuid, raw::Arg(&p->uid[0]), raw::Arg(&p->uid[1]), raw::Arg(&p->uid[2]));
  raw::Syscall(SYS_getresgid, raw::Arg(&p->gid[0]), raw::Arg(&p->gid[1]), raw::Arg(&p->gid[2]));
  long ng = raw::Syscall(SYS_getgroups, KITE_IMG_MAX_GROUPS, raw::Arg(p->groups));
  if (raw::Failed(ng)) return err_->Set("more supplementary groups than an image holds");
  p->ngroups = static_cast<uint32_t>(ng);

  const ucontext_t* uc = static_cast<const ucontext_t*>(ucontext);
  p->sigframe = reinterpret_cast<uint64_t>(ucontext);
  memcpy(&p->sigmask, &uc->uc_sigmask, sizeof p->sigmask);
  p->xcr0 = ReadXcr0();
  if (!DumpThreadState(tls, p) || !DumpMm(p)) return false;
  p->personality = static_cast<uint32_t>(raw::Syscall(SYS_personality, 0xffffffffL));

  char path[KITE_IMG_MAX_PATH + 1];
  long n = ReadLink("/proc/self/exe", path, sizeof path);
  if (raw::Failed(n)) return err_->SetErrno("reading /proc/self/exe", n);
  if (IsDeleted(path)) return err_->Set("the executable was deleted", path);
  if (!strings_->Add(path, static_cast<size_t>(n), &p->exe_path)) return err_->Set("exe path too long");
  n = ReadLink("/proc/self/cwd", path, sizeof path);
  if (raw::Failed(n)) return err_->SetErrno("reading /proc/self/cwd", n);
  if (IsDeleted(path) || path[0] != '/') return err_->Set("the working directory is gone", path);
  if (!strings_->Add(path, static_cast<size_t>(n), &p->cwd)) return err_->Set("cwd path too long");

  long mask = raw::Syscall(SYS_umask, 0);
  raw::Syscall(SYS_umask, mask);
  p->umask = static_cast<uint32_t>(mask);
  p->dumpable = raw::Syscall(SYS_prctl, PR_GET_DUMPABLE) == 1 ? 1 : 0;
  // Session and group ids are pids: a leader gets the new pid's, as the shim expects.
  if (raw::Syscall(SYS_getsid, 0) == p->pid) {
    p->leader = KITE_LEADER_SESSION;
  } else if (raw::Syscall(SYS_getpgid, 0) == p->pid) {
    p->leader = KITE_LEADER_GROUP;
  }
  raw::Syscall(SYS_prctl, PR_GET_NAME, raw::Arg(p->comm));
  p->comm[15] = '\0';

  for (unsigned sig = 1; sig <= KITE_IMG_NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    long r = raw::Syscall(SYS_rt_sigaction, sig, 0, raw::Arg(&p->sigactions[sig - 1]), 8);
    if (raw::Failed(r)) return err_->SetErrno("reading a signal disposition", r);
  }
  for (unsigned i = 0; i < KITE_IMG_NRLIMIT; ++i) {
    long r = raw::Syscall(SYS_prlimit64, 0, i, 0, raw::Arg(&p->rlimits[i]));
    if (raw::Failed(r)) return err_->SetErrno("reading a resource limit", r);
  }
  for (int which = 0; which < 3; ++which) {
    struct itimerval v = {};
    long r = raw::Syscall(SYS_getitimer, which, raw::Arg(&v));
    if (raw::Failed(r)) return err_->SetErrno("reading an interval timer", r);
    p->itimers[which] = {v.it_interval.tv_sec, v.it_interval.tv_usec, v.it_value.tv_sec,
                         v.it_value.tv_usec};
  }
  struct timespec now = {};
  raw::Syscall(SYS_clock_gettime, CLOCK_REALTIME, raw::Arg(&now));
  p->dump_time_sec = now.tv_sec;
  p->dump_time_nsec = now.tv_nsec;
  return true;
}

bool ProcessDumper::DumpOneFd(int fd, FixedVector<kite_img_fd>* fds) {
  char what[64];
  TextBuf w(what, sizeof what);
  w.Str("fd ").Num(fd);
  char link[32];
  TextBuf l(link, sizeof link);
  l.Str("/proc/self/fd/").Num(fd);
  char path[KITE_IMG_MAX_PATH + 1];
  long n = ReadLink(link, path, sizeof path);
  if (raw::Failed(n)) return err_->SetErrno(what, n);
  struct stat st;
  long r = StatFd(fd, &st);
  if (raw::Failed(r)) return err_->SetErrno(what, r);

  char detail[KITE_IMG_MAX_PATH + 64];
  TextBuf d(detail, sizeof detail);
  d.Str(path);
  uint32_t kind;
  int stream = -1;
  if (S_ISCHR(st.st_mode) && IsTerminalPath(path)) stream = StdStreamOf(st);
  if (S_ISFIFO(st.st_mode)) {
    // Any pipe: its inode names it across the job's processes; the controller knows which
    // pipes are its own standard streams and which the job made, and drains the latter.
    kite_img_fd* f = AddFd(fds, fd, KITE_FD_PIPE, static_cast<int64_t>(st.st_ino));
    if (f == nullptr) return err_->Set("too many open descriptors");
    if ((f->open_flags & O_ACCMODE) == O_RDWR) {
      return err_->Set(what, d.Str(" is a FIFO open for reading and writing (not supported yet)").c_str());
    }
    return true;
  }
  if (stream >= 0) {
    // The launcher's pty: the restorer re-attaches its own descriptor `stream`.
    if (AddFd(fds, fd, KITE_FD_STDIO, stream) == nullptr) return err_->Set("too many open descriptors");
    return true;
  } else if (S_ISREG(st.st_mode) && path[0] == '/' && (IsDeleted(path) || st.st_nlink == 0)) {
    // Its contents travel beside the image (Checkpointer::CopyDeletedFiles).
    if (st.st_size > kMaxDeletedFileBytes) {
      return err_->Set(what, d.Str(" is a deleted file larger than 256 MiB (not supported)").c_str());
    }
    kind = KITE_FD_DELETED;
  } else if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
    if (path[0] != '/' || IsDeleted(path)) return err_->Set(what, d.Str(" is a deleted directory (not supported)").c_str());
    struct stat by_path;
    if (raw::Failed(StatPath(path, &by_path)) || by_path.st_ino != st.st_ino || by_path.st_dev != st.st_dev) {
      return err_->Set(what, d.Str(" was renamed or replaced since it was opened").c_str());
    }
    kind = S_ISREG(st.st_mode) ? KITE_FD_FILE : KITE_FD_DIR;
  } else if (S_ISCHR(st.st_mode)) {
    if (strcmp(path, "/dev/null") == 0 || strcmp(path, "/dev/zero") == 0 ||
        strcmp(path, "/dev/urandom") == 0) {
      kind = KITE_FD_DEV;
    } else if (IsTerminalPath(path)) {
      return err_->Set(what, d.Str(" is a terminal other than the standard streams (not supported yet)").c_str());
    } else {
      return err_->Set(what, d.Str(" is a device (only /dev/null, /dev/zero, /dev/urandom)").c_str());
    }
  } else if (S_ISSOCK(st.st_mode)) {
    return err_->Set(what, d.Str(" is a socket (not supported yet)").c_str());
  } else {
    return err_->Set(what, d.Str(" is a special file (not supported yet)").c_str());
  }

  long off = raw::Syscall(SYS_lseek, fd, 0, SEEK_CUR);
  kite_img_fd* f = AddFd(fds, fd, kind, raw::Failed(off) ? -1 : off);
  if (f == nullptr) return err_->Set("too many open descriptors");
  if (!strings_->Add(path, static_cast<size_t>(n), &f->path)) return err_->Set(what, "path too long");
  return true;
}

kite_img_fd* ProcessDumper::AddFd(FixedVector<kite_img_fd>* fds, int fd, uint32_t kind, int64_t offset) {
  kite_img_fd* f = fds->Add();
  if (f == nullptr) return nullptr;
  f->fd = fd;
  f->kind = kind;
  f->open_flags = static_cast<uint32_t>(raw::Syscall(SYS_fcntl, fd, F_GETFL));
  f->fd_flags = static_cast<uint32_t>(raw::Syscall(SYS_fcntl, fd, F_GETFD)) & FD_CLOEXEC;
  f->offset = offset;
  f->path = {0, 0};
  return f;
}

bool ProcessDumper::DumpFds(FixedVector<kite_img_fd>* fds) {
  if (!fds->Init(arena_, KITE_IMG_MAX_FDS)) return err_->Set("checkpoint arena exhausted");
  long dir = OpenFile("/proc/self/fd", O_RDONLY | O_DIRECTORY);
  if (raw::Failed(dir)) return err_->SetErrno("opening /proc/self/fd", dir);
  size_t mark = arena_->mark();
  char* buf = static_cast<char*>(arena_->Alloc(65536, 8));
  bool ok = buf != nullptr || err_->Set("checkpoint arena exhausted");
  // getdents64 returns entries in no particular order; collect, then sort (insertion: few).
  while (ok) {
    long n = raw::Syscall(SYS_getdents64, dir, raw::Arg(buf), 65536);
    if (raw::Failed(n)) {
      ok = err_->SetErrno("listing /proc/self/fd", n);
      break;
    }
    if (n == 0) break;
    for (long pos = 0; pos < n && ok;) {
      struct Dirent {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      const Dirent* e = reinterpret_cast<const Dirent*>(buf + pos);
      pos += e->reclen;
      const char* s = e->name;
      uint64_t fd;
      if (!ParseUnsigned(&s, 10, &fd) || *s != '\0') continue;  // "." and ".."
      if (static_cast<long>(fd) == dir) continue;
      ok = DumpOneFd(static_cast<int>(fd), fds);
    }
  }
  CloseFd(static_cast<int>(dir));
  arena_->Release(mark);
  if (!ok) return false;
  kite_img_fd* a = fds->data();
  for (size_t i = 1; i < fds->size(); ++i) {
    for (size_t j = i; j > 0 && a[j - 1].fd > a[j].fd; --j) {
      kite_img_fd t = a[j];
      a[j] = a[j - 1];
      a[j - 1] = t;
    }
  }
  return true;
}

bool PendingSignals::Collect(DumpArena* arena, DumpError* err) {
  if (!list_.Init(arena, KITE_IMG_MAX_PENDING)) return err->Set("checkpoint arena exhausted");
  uint64_t pending = 0;
  raw::Syscall(SYS_rt_sigpending, raw::Arg(&pending), 8);
  for (int sig = 1; sig <= 64; ++sig) {
    if (!(pending & (uint64_t{1} << (sig - 1))) || sig == kCheckpointSignal) continue;
    uint64_t set = uint64_t{1} << (sig - 1);
    for (;;) {
      struct timespec zero = {0, 0};
      kite_img_siginfo info;
      long r = raw::Syscall(SYS_rt_sigtimedwait, raw::Arg(&set), raw::Arg(info.bytes),
                            raw::Arg(&zero), 8);
      if (r != sig) break;  // -EAGAIN: none left
      kite_img_siginfo* slot = list_.Add();
      if (slot == nullptr) {
        raw::Syscall(SYS_rt_tgsigqueueinfo, raw::Syscall(SYS_getpid), raw::Syscall(SYS_gettid),
                     sig, raw::Arg(info.bytes));
        return err->Set("too many pending signals");
      }
      *slot = info;
      if (sig < 32) break;  // standard signals do not queue
    }
  }
  return true;
}

void PendingSignals::Requeue() {
  long pid = raw::Syscall(SYS_getpid), tid = raw::Syscall(SYS_gettid);
  for (size_t i = 0; i < list_.size(); ++i) {
    int sig;
    memcpy(&sig, list_[i].bytes, sizeof sig);
    raw::Syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, raw::Arg(list_[i].bytes));
  }
  list_ = FixedVector<kite_img_siginfo>();
}

}  // namespace kite::shim
