// Subprocess: fork/exec with a process group, pipes or a pty, and a reader thread.
// The child between fork and exec only makes async-signal-safe calls: the test binary has
// threads (this reader among them), so nothing may allocate or take a lock there.
#include "tests/support/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char** environ;

namespace kite::testing {
namespace {

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// The test's environment with `overrides` ("NAME=value") replacing or adding variables.
std::vector<std::string> MergeEnv(const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view var(*e);
    std::string_view name = var.substr(0, var.find('='));
    bool replaced = false;
    for (const auto& o : overrides) replaced |= o.substr(0, o.find('=')) == name;
    if (!replaced) env.emplace_back(var);
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// In the child: reports errno through `fd` and exits. Async-signal-safe.
[[noreturn]] void ChildFail(int fd) {
  int err = errno;
  ssize_t n = write(fd, &err, sizeof err);
  (void)n;
  _exit(127);
}

}  // namespace

bool ProcessResult::Succeeded() const {
  return WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0;
}

std::string ProcessResult::Describe() const {
  std::string s;
  if (WIFEXITED(exit_status)) {
    s = "exited with status " + std::to_string(WEXITSTATUS(exit_status));
  } else if (WIFSIGNALED(exit_status)) {
    s = "killed by signal " + std::to_string(WTERMSIG(exit_status)) + " (" +
        strsignal(WTERMSIG(exit_status)) + ")";
  } else {
    s = "wait status " + std::to_string(exit_status);
  }
  std::string_view err = stderr_data;
  if (err.size() > 2000) err = err.substr(err.size() - 2000);
  if (!err.empty()) s += "; stderr:\n" + std::string(err);
  return s;
}

StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(const std::vector<std::string>& argv,
                                                        const Options& options) {
  if (argv.empty() || argv[0].empty()) return InvalidArgument("Subprocess::Start: empty argv");
  std::unique_ptr<Subprocess> p(new Subprocess());
  p->pty_ = options.pty;

  // Everything the child needs is prepared here, before fork.
  std::vector<std::string> args = argv;
  std::vector<std::string> env = MergeEnv(options.env);
  std::vector<char*> c_argv = CStrings(args), c_env = CStrings(env);

  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  int master = -1, slave = -1;
  auto close_all = [&] {
    for (int* fd : {&in[0], &in[1], &out[0], &out[1], &err[0], &err[1], &report[0], &report[1],
                    &master, &slave})
      CloseFd(fd);
  };
  if (pipe2(report, O_CLOEXEC) != 0 || pipe2(p->wake_fd_, O_CLOEXEC) != 0) {
    Status s = PosixError("pipe2", errno);
    close_all();
    return s;
  }
  if (options.pty) {
    master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    char name[64];
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 ||
        ptsname_r(master, name, sizeof name) != 0) {
      Status s = PosixError("open a pty", errno);
      close_all();
      return s;
    }
    slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
      Status s = PosixError(std::string("open ") + name, errno);
      close_all();
      return s;
    }
    struct winsize ws = {};
    ws.ws_row = options.pty_rows;
    ws.ws_col = options.pty_cols;
    ioctl(master, TIOCSWINSZ, &ws);
  } else if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
             pipe2(err, O_CLOEXEC) != 0) {
    Status s = PosixError("pipe2", errno);
    close_all();
    return s;
  }

  pid_t pid = fork();
  if (pid < 0) {
    Status s = PosixError("fork", errno);
    close_all();
    return s;
  }
  if (pid == 0) {
    if (options.pty) {
      if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) != 0) ChildFail(report[1]);
      for (int fd = 0; fd < 3; ++fd)
        if (dup2(slave, fd) < 0) ChildFail(report[1]);
    } else {
      if (setpgid(0, 0) != 0) ChildFail(report[1]);
      if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) ChildFail(report[1]);
    }
    // The command starts as from a fresh shell: default dispositions, nothing blocked, no
    // descriptors but 0-2 (the report pipe closes on exec).
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    execvpe(c_argv[0], c_argv.data(), c_env.data());
    ChildFail(report[1]);
  }

  // Also set in the parent, so Kill() works even before the child has run.
  if (!options.pty) setpgid(pid, pid);
  p->pid_ = pid;
  CloseFd(&report[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(report[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  p->pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (n > 0) {
    int status;
    waitpid(pid, &status, 0);
    p->reaped_ = true;
    close_all();
    return PosixError("cannot run '" + argv[0] + "'", child_errno);
  }
  if (options.pty) {
    p->stdin_fd_ = fcntl(master, F_DUPFD_CLOEXEC, 0);
    p->out_fd_ = master;
    master = -1;
  } else {
    p->stdin_fd_ = in[1];
    p->out_fd_ = out[0];
    p->err_fd_ = err[0];
    in[1] = out[0] = err[0] = -1;
  }
  close_all();
  // Our end of stdin never blocks the test: WriteStdin polls with a deadline.
  fcntl(p->stdin_fd_, F_SETFL, fcntl(p->stdin_fd_, F_GETFL) | O_NONBLOCK);
  p->reader_ = std::thread([raw = p.get()] { raw->ReadLoop(); });
  return p;
}

void Subprocess::ReadLoop() {
  char buf[16384];
  while (out_fd_ >= 0 || err_fd_ >= 0) {
    struct pollfd fds[3] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}, {wake_fd_[0], POLLIN, 0}};
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents) {
      std::lock_guard<std::mutex> lock(mu_);
      output_complete_ = false;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (!fds[i].revents) continue;
      int* fd = i == 0 ? &out_fd_ : &err_fd_;
      ssize_t n = read(*fd, buf, sizeof buf);
      // A pty master shares its O_NONBLOCK with stdin_fd_ (a dup of it): EAGAIN is no EOF.
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {  // EOF; a pty master says EIO once every slave is closed
        CloseFd(fd);
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      (i == 0 ? stdout_ : stderr_).append(buf, static_cast<size_t>(n));
      output_cv_.notify_all();
    }
  }
  CloseFd(&out_fd_);
  CloseFd(&err_fd_);
  std::lock_guard<std::mutex> lock(mu_);
  output_done_ = true;
  output_cv_.notify_all();
}

Subprocess::~Subprocess() {
  if (!reaped_ && pid_ > 0) {
    Kill(SIGKILL).ok();
    Wait(std::chrono::minutes(1)).ok();
  }
  if (reader_.joinable()) {
    ssize_t n = write(wake_fd_[1], "x", 1);
    (void)n;
    reader_.join();
  }
  CloseFd(&stdin_fd_);
  CloseFd(&pidfd_);
  CloseFd(&wake_fd_[0]);
  CloseFd(&wake_fd_[1]);
}

Status Subprocess::Kill(int sig) {
  if (reaped_) return FailedPrecondition("process " + std::to_string(pid_) + " was already reaped");
  if (kill(-pid_, sig) == 0) return OkStatus();
  // The group can be gone while the leader is a zombie not yet reaped: nothing to signal.
  if (errno == ESRCH) return OkStatus();
  return PosixError("kill -" + std::to_string(sig) + " -" + std::to_string(pid_), errno);
}

Status Subprocess::WriteStdin(std::string_view data, std::chrono::milliseconds timeout) {
  if (stdin_fd_ < 0) return Unavailable("stdin is closed");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // A write to a closed pipe must fail with EPIPE, not kill the test with SIGPIPE: block the
  // signal in this thread and discard the one the write raised.
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  Status status;
  while (!data.empty()) {
    ssize_t n = write(stdin_fd_, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        status = Status(StatusCode::kDeadlineExceeded, "stdin: the process does not read");
        break;
      }
      struct pollfd pfd = {stdin_fd_, POLLOUT, 0};
      poll(&pfd, 1, static_cast<int>(left.count()));
      continue;
    }
    status = n < 0 && errno == EPIPE ? Unavailable("stdin: the process closed it")
                                     : PosixError("write to stdin", errno);
    break;
  }
  struct timespec zero = {0, 0};
  while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return status;
}

void Subprocess::CloseStdin() {
  if (stdin_fd_ < 0) return;
  if (pty_) {
    struct termios t;
    char eof = tcgetattr(stdin_fd_, &t) == 0 ? static_cast<char>(t.c_cc[VEOF]) : '\x04';
    WriteStdin(std::string_view(&eof, 1), std::chrono::seconds(5)).ok();
    return;  // the master stays open: closing it would hang up the terminal
  }
  CloseFd(&stdin_fd_);
}

std::string Subprocess::Stdout() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stdout_;
}

std::string Subprocess::Stderr() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stderr_;
}

bool Subprocess::WaitForStdout(std::string_view needle, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  output_cv_.wait_for(lock, timeout, [&] {
    return stdout_.find(needle) != std::string::npos || output_done_;
  });
  return stdout_.find(needle) != std::string::npos;
}

StatusOr<ProcessResult> Subprocess::Wait(std::chrono::milliseconds timeout) {
  if (!reaped_) {
    // Without a pidfd (pidfd_open failed) the wait below blocks without a deadline.
    struct pollfd pfd = {pidfd_, POLLIN, 0};
    int ready = 1;
    while (pidfd_ >= 0 && (ready = poll(&pfd, 1, static_cast<int>(timeout.count()))) < 0 &&
           errno == EINTR) {
    }
    if (ready == 0) {
      return Status(StatusCode::kDeadlineExceeded,
                    "process " + std::to_string(pid_) + " still runs after " +
                        std::to_string(timeout.count()) + " ms");
    }
    int status;
    pid_t r;
    do {
      r = waitpid(pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return PosixError("waitpid " + std::to_string(pid_), errno);
    reaped_ = true;
    wait_status_ = status;
    {
      std::unique_lock<std::mutex> lock(mu_);
      output_cv_.wait_for(lock, kOutputGrace, [&] { return output_done_; });
    }
    if (reader_.joinable()) {
      ssize_t n = write(wake_fd_[1], "x", 1);
      (void)n;
      reader_.join();
    }
  }
  ProcessResult result;
  result.exit_status = wait_status_;
  std::lock_guard<std::mutex> lock(mu_);
  result.stdout_data = stdout_;
  result.stderr_data = stderr_;
  result.output_complete = output_complete_;
  return result;
}

}  // namespace kite::testing
