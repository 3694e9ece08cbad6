// JobLauncher: validation, the prepared exec arrays, and the child's code between fork and
// exec. Everything the child touches is built before fork; the child makes only system
// calls and plain memory writes (no malloc, no locks, no stdio), because another thread of
// remoted may have held a lock at the moment of fork.
#include "remoted/job_launcher.h"
#include "remoted/job_tree.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace kite {
namespace {

constexpr char kDefaultPath[] = "/bin:/usr/bin";  // glibc's execvp default
constexpr size_t kChildStack = 64 << 10;  // the spawned child's stack, up to its exec
constexpr int kTtyStdin = JobLauncher::kTtyStdin, kTtyStdout = JobLauncher::kTtyStdout,
              kTtyStderr = JobLauncher::kTtyStderr;

// What the child reports through the status pipe when it fails before exec.
enum class Stage : int32_t { kStdio = 1, kSetsid, kCtty, kRlimit, kSetgroups, kSetgid, kSetuid, kChdir, kSigmask, kOomScoreAdj };
struct ChildError {
  int32_t stage;
  int32_t err;
};

// Everything RunChild needs, by pointer into the launcher and the parent's stack.
struct ChildArgs {
  int go_fd;
  int status_fd;
  int stdio[3];
  int slave;  // -1 without a pty
  char* pid_digits;
  const std::pair<int, struct rlimit>* rlimits;
  size_t n_rlimits;
  bool set_creds;
  uid_t uid;
  gid_t gid;
  const gid_t* groups;
  size_t n_groups;
  const char* cwd;
  mode_t umask;
  const sigset_t* blocked;
  uint64_t ignored;
  char* const* argv;
  char* const* envp;
  char* const* candidates;
  size_t n_candidates;
  bool path_search;
  char** sh_argv;
  const char* oom_score_adj;  // null: leave it
};

// --- async-signal-safe helpers for the child -------------------------------------------

[[noreturn]] void FailChild(const ChildArgs& a, Stage stage, int err) {
  ChildError e{static_cast<int32_t>(stage), err};
  ssize_t ignored = ::write(a.status_fd, &e, sizeof e);
  (void)ignored;
  ::_exit(127);
}

void WriteAll(int fd, const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    ssize_t w = ::write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void FormatPid(char* out, pid_t pid) {
  char digits[16];
  int n = 0;
  unsigned long v = static_cast<unsigned long>(pid);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0) *out++ = digits[--n];
  *out = '\0';
}

[[noreturn]] void RunChild(const ChildArgs& a);

// clone3 with a stack of the child's own, for CLONE_VM: the child starts on `args->stack` and
// runs fn(arg), which must not return. Returns the system call's raw result in the parent: the
// child's pid, or -errno (errno is not set).
extern "C" long kite_clone3_run(struct clone_args* args, size_t size, void (*fn)(void*), void* arg);
#if defined(__x86_64__)
#define KITE_HAVE_CLONE3_RUN 1
asm(R"(
    .text
    .globl kite_clone3_run
    .type kite_clone3_run, @function
kite_clone3_run:
    mov %rdx, %r8
    mov %rcx, %r9
    mov $435, %eax
    syscall
    test %rax, %rax
    jnz 1f
    xor %ebp, %ebp
    mov %r9, %rdi
    call *%r8
    mov $231, %eax
    mov $127, %edi
    syscall
    hlt
1:  ret
    .size kite_clone3_run, .-kite_clone3_run
)");
#elif defined(__aarch64__)
#define KITE_HAVE_CLONE3_RUN 1
asm(R"(
    .text
    .globl kite_clone3_run
    .type kite_clone3_run, %function
kite_clone3_run:
    mov x9, x2
    mov x10, x3
    mov x8, #435
    svc #0
    cbnz x0, 1f
    mov x29, xzr
    mov x0, x10
    blr x9
    mov x8, #94
    mov x0, #127
    svc #0
1:  ret
    .size kite_clone3_run, .-kite_clone3_run
)");
#else
#define KITE_HAVE_CLONE3_RUN 0
#endif

void RunChildEntry(void* args) { RunChild(*static_cast<const ChildArgs*>(args)); }

[[noreturn]] void RunChild(const ChildArgs& a) {
  // Dispositions first, while every signal is still blocked (inherited from Launch): SIG_IGN
  // survives exec, so remoted's own ignored signals (SIGPIPE) must not leak into the job.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = (sig <= 64 && ((a.ignored >> (sig - 1)) & 1)) ? SIG_IGN : SIG_DFL;
    ::sigaction(sig, &sa, nullptr);  // EINVAL for libc-reserved signals: nothing to do
  }
  char go;
  if (a.go_fd >= 0 && ::read(a.go_fd, &go, 1) != 1) ::_exit(127);  // the parent gave up on us

  if (::setsid() < 0) FailChild(a, Stage::kSetsid, errno);
  // Move the std fds out of the way first so no source is clobbered by an earlier dup2.
  int tmp[3];
  for (int i = 0; i < 3; ++i) {
    tmp[i] = ::fcntl(a.stdio[i], F_DUPFD_CLOEXEC, 3);
    if (tmp[i] < 0) FailChild(a, Stage::kStdio, errno);
  }
  for (int i = 0; i < 3; ++i) {
    if (::dup2(tmp[i], i) < 0) FailChild(a, Stage::kStdio, errno);
  }
  if (a.slave >= 0 && ::ioctl(a.slave, TIOCSCTTY, 0) < 0) FailChild(a, Stage::kCtty, errno);
  FormatPid(a.pid_digits, ::getpid());
  if (a.oom_score_adj != nullptr) {  // raising it back needs no privilege
    int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0) FailChild(a, Stage::kOomScoreAdj, errno);
    size_t n = std::strlen(a.oom_score_adj);
    if (::write(fd, a.oom_score_adj, n) != static_cast<ssize_t>(n)) FailChild(a, Stage::kOomScoreAdj, errno);
    ::close(fd);
  }

  // Limits while still privileged (raising a hard limit needs it), then drop privileges.
  for (size_t i = 0; i < a.n_rlimits; ++i) {
    if (::setrlimit(static_cast<__rlimit_resource_t>(a.rlimits[i].first), &a.rlimits[i].second) < 0)
      FailChild(a, Stage::kRlimit, errno);
  }
  // Raw system calls, not libc's: after a raw clone3 libc still believes the process has
  // remoted's other threads, and its setuid() would try to signal them all (SIGSETXID) under
  // a lock one of them may have held at the clone. The child has one thread: the kernel's
  // per-thread credentials are the process's.
  if (a.set_creds) {
    if (::syscall(SYS_setgroups, a.n_groups, a.groups) < 0) FailChild(a, Stage::kSetgroups, errno);
    if (::syscall(SYS_setgid, a.gid) < 0) FailChild(a, Stage::kSetgid, errno);
    if (::syscall(SYS_setuid, a.uid) < 0) FailChild(a, Stage::kSetuid, errno);
  }
  // As the job's user, so directory permissions are checked as at home.
  if (::chdir(a.cwd) < 0) FailChild(a, Stage::kChdir, errno);
  ::umask(a.umask);
  // remoted's own fds (sockets, other jobs' pipes) must not reach the job. The status pipe
  // is close-on-exec already and has to stay open until exec.
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    struct rlimit nofile;
    int max = ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536 ? static_cast<int>(nofile.rlim_cur) : 65536;
    for (int fd = 3; fd < max; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (::sigprocmask(SIG_SETMASK, a.blocked, nullptr) < 0) FailChild(a, Stage::kSigmask, errno);

  // execvpe, by hand: the lookup uses the job's PATH, not remoted's.
  bool saw_eacces = false;
  int err = ENOENT;
  for (size_t i = 0; i < a.n_candidates; ++i) {
    ::execve(a.candidates[i], a.argv, a.envp);
    err = errno;
    if (err == ENOEXEC) {  // no #! line: a shell script, as execvp runs it
      a.sh_argv[1] = a.candidates[i];
      ::execve("/bin/sh", a.sh_argv, a.envp);
      err = errno;
    }
    if (!a.path_search) break;
    if (err == EACCES) {
      saw_eacces = true;
      continue;
    }
    if (err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV || err == ETIMEDOUT || err == ENAMETOOLONG)
      continue;
    break;
  }
  if (saw_eacces && a.path_search) err = EACCES;
  const char* what = ::strerrordesc_np(err);
  WriteAll(2, "kite: ");
  WriteAll(2, a.argv[0]);
  WriteAll(2, ": ");
  WriteAll(2, what ? what : "cannot execute");
  WriteAll(2, "\n");
  ::_exit(err == EACCES ? 126 : 127);
}

// --- validation ----------------------------------------------------------------------------

bool HasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

Status ValidateHome(const std::string& home) {
  if (home.empty() || home.size() > JobLauncher::kMaxHomeLen)
    return InvalidArgument("home_host must be 1.." + std::to_string(JobLauncher::kMaxHomeLen) + " characters");
  for (unsigned char c : home) {
    if (c <= ' ' || c == 0x7f) return InvalidArgument("home_host '" + home + "' holds a space or control character");
  }
  return OkStatus();
}

Status ChildFailure(Stage stage, int err, const std::string& cwd) {
  switch (stage) {
    case Stage::kChdir:
      if (err == ENOENT || err == ENOTDIR)
        return FailedPrecondition("working directory " + cwd + " does not exist on this host: " + std::strerror(err));
      return PosixError("chdir " + cwd, err);
    case Stage::kStdio: return PosixError("job set-up: standard fds", err);
    case Stage::kSetsid: return PosixError("job set-up: setsid", err);
    case Stage::kCtty: return PosixError("job set-up: controlling terminal", err);
    case Stage::kRlimit: return PosixError("job set-up: setrlimit", err);
    case Stage::kSetgroups: return PosixError("job set-up: setgroups", err);
    case Stage::kSetgid: return PosixError("job set-up: setgid", err);
    case Stage::kSetuid: return PosixError("job set-up: setuid", err);
    case Stage::kSigmask: return PosixError("job set-up: signal mask", err);
    case Stage::kOomScoreAdj: return PosixError("job set-up: oom_score_adj", err);
  }
  return Internal("job set-up failed (stage " + std::to_string(static_cast<int>(stage)) + ")");
}

StatusOr<std::pair<UniqueFd, UniqueFd>> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) return PosixError("pipe", errno);
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

Status SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return PosixError("fcntl O_NONBLOCK", errno);
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<JobLauncher>> JobLauncher::Prepare(const rpc::ExecSpec& spec, const LaunchOptions& options) {
  std::unique_ptr<JobLauncher> l(new JobLauncher());
  if (spec.argv.empty()) return InvalidArgument("argv is empty");
  if (spec.argv[0].empty()) return InvalidArgument("argv[0] is empty");
  size_t bytes = 0;
  for (const std::string& a : spec.argv) {
    if (HasNul(a)) return InvalidArgument("an argument holds a NUL byte");
    bytes += a.size() + 1;
  }
  for (const std::string& e : spec.env) {
    if (HasNul(e)) return InvalidArgument("an environment entry holds a NUL byte");
    size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) return InvalidArgument("environment entry '" + e.substr(0, 64) + "' is not NAME=value");
    bytes += e.size() + 1;
  }
  if (bytes > kMaxArgBytes)
    return InvalidArgument("argv and env total " + std::to_string(bytes) + " bytes (at most " + std::to_string(kMaxArgBytes) + ")");
  if (spec.cwd.empty() || spec.cwd[0] != '/') return InvalidArgument("cwd '" + spec.cwd + "' is not an absolute path");
  if (HasNul(spec.cwd) || spec.cwd.size() >= PATH_MAX) return InvalidArgument("cwd is malformed or too long");
  if (spec.umask < 0 || spec.umask > 0777) return InvalidArgument("umask " + std::to_string(spec.umask) + " is not 0..0777");
  if (spec.rlimits.size() > kMaxRlimits) return InvalidArgument("too many rlimits");
  for (const rpc::Rlimit& r : spec.rlimits) {
    if (r.resource < 0 || r.resource >= RLIM_NLIMITS) return InvalidArgument("rlimit resource " + std::to_string(r.resource) + " is unknown");
    if (r.soft < -1 || r.hard < -1) return InvalidArgument("rlimit values must be >= -1 (-1: unlimited)");
    if (r.hard != -1 && (r.soft == -1 || r.soft > r.hard))
      return InvalidArgument("rlimit " + std::to_string(r.resource) + ": soft limit above the hard limit");
    struct rlimit lim;
    lim.rlim_cur = r.soft == -1 ? RLIM_INFINITY : static_cast<rlim_t>(r.soft);
    lim.rlim_max = r.hard == -1 ? RLIM_INFINITY : static_cast<rlim_t>(r.hard);
    l->rlimits_.emplace_back(r.resource, lim);
  }
  const rpc::Credentials& c = spec.creds;
  if (c.uid < 0 || c.gid < 0) return InvalidArgument("uid and gid must be >= 0");
  if (c.groups.size() > kMaxGroups) return InvalidArgument("too many supplementary groups");
  for (int32_t g : c.groups) {
    if (g < 0) return InvalidArgument("supplementary group ids must be >= 0");
  }
  if (c.uid == 0 && !options.allow_root)
    return PermissionDenied("jobs may not run as root on this cluster ([cluster] allow_root is off)");
  if (::geteuid() == 0) {
    l->set_creds_ = true;
    l->uid_ = static_cast<uid_t>(c.uid);
    l->gid_ = static_cast<gid_t>(c.gid);
    l->groups_.assign(c.groups.begin(), c.groups.end());
  } else if (static_cast<uid_t>(c.uid) != ::geteuid()) {
    return PermissionDenied("kite-remoted runs as uid " + std::to_string(::geteuid()) + " and cannot run jobs as uid " +
                            std::to_string(c.uid));
  }
  if (spec.tty_mask < 0 || spec.tty_mask > (kTtyStdin | kTtyStdout | kTtyStderr))
    return InvalidArgument("tty_mask " + std::to_string(spec.tty_mask) + " has unknown bits");
  if (spec.__isset.winsize) {
    const rpc::WinSize& w = spec.winsize;
    if (w.rows < 0 || w.cols < 0 || w.xpixel < 0 || w.ypixel < 0) return InvalidArgument("window size must not be negative");
    l->winsize_ = w;
  }
  KITE_RETURN_IF_ERROR(ValidateHome(spec.home_host));
  if (spec.vpid <= 0) return InvalidArgument("vpid " + std::to_string(spec.vpid) + " is not a pid");
  if (spec.home_ppid < 0) return InvalidArgument("home_ppid " + std::to_string(spec.home_ppid) + " is negative");

  l->argv_.assign(spec.argv.begin(), spec.argv.end());
  l->cwd_ = spec.cwd;
  l->umask_ = static_cast<mode_t>(spec.umask);
  l->tty_mask_ = spec.tty_mask;
  l->ignored_ = static_cast<uint64_t>(spec.ignored_signals);
  sigemptyset(&l->blocked_);
  for (int sig = 1; sig <= 64 && sig < NSIG; ++sig) {
    if (((static_cast<uint64_t>(spec.blocked_signals) >> (sig - 1)) & 1) && sig != SIGKILL && sig != SIGSTOP)
      sigaddset(&l->blocked_, sig);
  }
  KITE_RETURN_IF_ERROR(l->BuildEnv(spec, options));

  for (const std::string& a : l->argv_) {
    if (!l->command_.empty()) l->command_ += ' ';
    l->command_ += a;
    if (l->command_.size() > 256) {
      l->command_.resize(253);
      l->command_ += "...";
      break;
    }
  }
  for (std::string& a : l->argv_) l->argv_ptrs_.push_back(a.data());
  l->argv_ptrs_.push_back(nullptr);
  for (std::string& e : l->env_) l->envp_ptrs_.push_back(e.data());
  l->envp_ptrs_.push_back(nullptr);
  l->sh_argv_ptrs_.push_back(const_cast<char*>("/bin/sh"));
  l->sh_argv_ptrs_.push_back(nullptr);  // the script, filled in by the child
  for (size_t i = 1; i < l->argv_.size(); ++i) l->sh_argv_ptrs_.push_back(l->argv_[i].data());
  l->sh_argv_ptrs_.push_back(nullptr);
  if (options.oom_score_adj) l->oom_score_adj_ = std::to_string(*options.oom_score_adj);
  return l;
}

Status JobLauncher::BuildEnv(const rpc::ExecSpec& spec, const LaunchOptions& options) {
  std::string preload;
  bool have_preload = false;
  std::string path = kDefaultPath;
  bool have_path = false;
  for (const std::string& e : spec.env) {
    std::string name = e.substr(0, e.find('='));
    std::string value = e.substr(name.size() + 1);
    // Ours to set: a home must not be able to forge another job's identity.
    if (name == "KITE_JOB" || name == "KITE_HOME" || name == "KITE_SOCK" || name == "KITE_CKPT_DIR") continue;
    // The default temporary directory is the host's own /tmp, which a migrated job would not
    // find on its next host: replaced by the home's one in the shared tree. A TMPDIR of the
    // user's own choosing stays.
    if (name == "TMPDIR" && !options.tmp_dir.empty() && (value == "/tmp" || value == "/tmp/" || value.empty())) continue;
    if (name == "LD_PRELOAD") {
      if (!have_preload) preload = value, have_preload = true;
      continue;
    }
    if (name == "PATH" && !have_path) path = value, have_path = true;
    env_.push_back(e);
  }
  if (!options.shim_path.empty()) {
    // Prepend the shim unless the home's process already preloads this very file.
    if (!JobTree::PreloadListHas(preload, options.shim_path)) preload = preload.empty() ? options.shim_path : options.shim_path + ":" + preload;
    have_preload = true;
  }
  if (have_preload) env_.push_back("LD_PRELOAD=" + preload);
  env_.push_back("KITE_HOME=" + spec.home_host);
  env_.push_back("KITE_SOCK=" + options.sock_path);
  if (!options.ckpt_dir.empty()) env_.push_back("KITE_CKPT_DIR=" + options.ckpt_dir);
  if (!options.tmp_dir.empty() &&
      std::none_of(env_.begin(), env_.end(), [](const std::string& e) { return e.rfind("TMPDIR=", 0) == 0; })) {
    env_.push_back("TMPDIR=" + options.tmp_dir);
  }
  std::string job = "KITE_JOB=" + std::to_string(spec.vpid) + ":" + std::to_string(spec.home_ppid) + ":";
  kite_job_pid_pos_ = job.size();
  job.append(12, '\0');  // the child writes its pid and a NUL here
  kite_job_env_ = env_.size();
  env_.push_back(std::move(job));

  BuildCandidates(path);
  return OkStatus();
}

void JobLauncher::BuildCandidates(const std::string& path) {
  const std::string& file = argv_[0];
  if (file.find('/') != std::string::npos) {
    candidates_.push_back(file);
  } else {
    size_t start = 0;
    for (;;) {
      size_t end = path.find(':', start);
      std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
      // An empty element is the current directory, as in execvp.
      candidates_.push_back(dir.empty() ? file : dir + (dir.back() == '/' ? "" : "/") + file);
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  for (std::string& c : candidates_) candidate_ptrs_.push_back(c.data());
}

StatusOr<LaunchedJob> JobLauncher::Launch(const std::function<void(pid_t)>& on_forked, int cgroup_fd) {
  LaunchedJob job;
  UniqueFd slave;
  UniqueFd child_stdio[3];
  if (tty_mask_ != 0) {
    int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return PosixError("posix_openpt", errno);
    job.master.reset(master);
    char name[64];
    if (::grantpt(master) < 0 || ::unlockpt(master) < 0 || ::ptsname_r(master, name, sizeof name) != 0)
      return PosixError("pty set-up", errno);
    job.pty_slave = name;
    // Opened here, not in the child, so the slave is held from birth: the master never
    // sees "no slave open" (EIO, our EOF) before the job has started.
    slave.reset(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!slave.valid()) return PosixError(std::string("open ") + name, errno);
    if (winsize_) {
      struct winsize ws{};
      ws.ws_row = static_cast<unsigned short>(winsize_->rows);
      ws.ws_col = static_cast<unsigned short>(winsize_->cols);
      ws.ws_xpixel = static_cast<unsigned short>(winsize_->xpixel);
      ws.ws_ypixel = static_cast<unsigned short>(winsize_->ypixel);
      if (::ioctl(master, TIOCSWINSZ, &ws) < 0) return PosixError("TIOCSWINSZ", errno);
    }
    KITE_RETURN_IF_ERROR(SetNonBlocking(master));
  }
  const int bits[3] = {kTtyStdin, kTtyStdout, kTtyStderr};
  UniqueFd* parent_end[3] = {&job.stdin_pipe, &job.stdout_pipe, &job.stderr_pipe};
  for (int i = 0; i < 3; ++i) {
    if (tty_mask_ & bits[i]) continue;
    KITE_ASSIGN_OR_RETURN(auto p, MakePipe());
    // stdin: the job reads p.first; stdout/stderr: the job writes p.second.
    child_stdio[i] = std::move(i == 0 ? p.first : p.second);
    *parent_end[i] = std::move(i == 0 ? p.second : p.first);
    KITE_RETURN_IF_ERROR(SetNonBlocking(parent_end[i]->get()));
  }
  KITE_ASSIGN_OR_RETURN(auto status_pipe, MakePipe());
  // With a cgroup the child is spawned like posix_spawn: it shares this address space
  // (CLONE_VM) on a stack of its own, and this thread waits until it has exec'd or exited
  // (CLONE_VFORK): no page table is copied, none torn down at exec. It then cannot wait for a
  // go from us, so on_forked runs after exec; the caller makes sure the exit of a job that
  // quick is not reaped before on_forked registers it.
  const bool spawn = cgroup_fd >= 0 && KITE_HAVE_CLONE3_RUN;
  std::pair<UniqueFd, UniqueFd> go_pipe;
  if (!spawn) {
    KITE_ASSIGN_OR_RETURN(go_pipe, MakePipe());
  }

  ChildArgs a{};
  a.go_fd = spawn ? -1 : go_pipe.first.get();
  a.status_fd = status_pipe.second.get();
  for (int i = 0; i < 3; ++i) a.stdio[i] = (tty_mask_ & bits[i]) ? slave.get() : child_stdio[i].get();
  a.slave = slave.get();
  a.pid_digits = env_[kite_job_env_].data() + kite_job_pid_pos_;
  a.rlimits = rlimits_.data();
  a.n_rlimits = rlimits_.size();
  a.set_creds = set_creds_;
  a.uid = uid_;
  a.gid = gid_;
  a.groups = groups_.data();
  a.n_groups = groups_.size();
  a.cwd = cwd_.c_str();
  a.umask = umask_;
  a.blocked = &blocked_;
  a.ignored = ignored_;
  a.argv = argv_ptrs_.data();
  a.envp = envp_ptrs_.data();
  a.candidates = candidate_ptrs_.data();
  a.n_candidates = candidate_ptrs_.size();
  a.path_search = argv_[0].find('/') == std::string::npos;
  a.sh_argv = sh_argv_ptrs_.data();
  a.oom_score_adj = oom_score_adj_.empty() ? nullptr : oom_score_adj_.c_str();

  // No handler of remoted's may run in the child before its dispositions are reset.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid;
  int pidfd = -1;
  std::unique_ptr<char[]> stack;
  if (cgroup_fd >= 0) {
    // Born in the job's cgroup, with its pidfd, SIGCHLD at exit. The child runs no libc code
    // that depends on fork's bookkeeping (see RunChild).
    struct clone_args args;
    std::memset(&args, 0, sizeof args);
    args.flags = CLONE_INTO_CGROUP | CLONE_PIDFD;
    args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
    if (spawn) {
      stack.reset(new char[kChildStack]);
      args.flags |= CLONE_VM | CLONE_VFORK;
      args.stack = reinterpret_cast<uint64_t>(stack.get());
      args.stack_size = kChildStack;
      long r = kite_clone3_run(&args, sizeof args, RunChildEntry, &a);  // -errno on failure
      if (r < 0) errno = static_cast<int>(-r);
      pid = r < 0 ? -1 : static_cast<pid_t>(r);
    } else {
      pid = static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
    }
  } else {
    pid = ::fork();
  }
  if (pid == 0) RunChild(a);
  int fork_err = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return PosixError(cgroup_fd >= 0 ? "clone3" : "fork", fork_err);

  slave.reset();
  for (UniqueFd& fd : child_stdio) fd.reset();
  status_pipe.second.reset();
  go_pipe.first.reset();
  stack.reset();  // the child has exec'd or exited (CLONE_VFORK)
  job.pid = pid;
  // Before the child may run on: it cannot exit (and be reaped) before it is registered.
  job.pidfd.reset(pidfd >= 0 ? pidfd : static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  on_forked(pid);
  if (go_pipe.second.valid()) {
    char go = 1;
    while (::write(go_pipe.second.get(), &go, 1) < 0 && errno == EINTR) {
    }
    go_pipe.second.reset();
  }

  // EOF without a record: exec happened (the pipe is close-on-exec) or exec failed and the
  // child exits 127 as the job's own result.
  ChildError e{};
  size_t got = 0;
  while (got < sizeof e) {
    ssize_t n = ::read(status_pipe.first.get(), reinterpret_cast<char*>(&e) + got, sizeof e - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got == sizeof e) {
    int status;
    // ECHILD if the manager's reaper got it first: fine, nothing else to do.
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return ChildFailure(static_cast<Stage>(e.stage), e.err, cwd_);
  }
  return job;
}

}  // namespace kite
