// Deputy: one poll loop over homed's socket, stdin and a signalfd. Single-threaded.
#include "cli/deputy.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/line_buffer.h"
#include "common/wire_io.h"

extern char** environ;

namespace kite {
namespace {

// Signals the deputy passes on to the job instead of acting on them itself.
constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                              SIGWINCH, SIGTSTP, SIGCONT, SIGALRM};

struct Terminal {
  bool raw = false;
  termios saved{};
};
Terminal g_term;

void RestoreTerminal() {
  if (g_term.raw) {
    tcsetattr(STDIN_FILENO, TCSADRAIN, &g_term.saved);
    g_term.raw = false;
  }
}

// The remote pty edits lines and echoes, so the local terminal passes keys through as they are
// typed. ISIG stays on: ^C, ^Z and ^\ become signals of the deputy, which forwards them, so
// the caller's shell sees the deputy stop on ^Z as it would a local command.
void MakeTerminalRaw() {
  if (g_term.raw || tcgetpgrp(STDIN_FILENO) != getpgrp()) return;
  if (tcgetattr(STDIN_FILENO, &g_term.saved) != 0) return;
  termios raw = g_term.saved;
  raw.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
  raw.c_oflag &= ~OPOST;
  raw.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0) g_term.raw = true;
}

[[noreturn]] void Fail(const std::string& message) {
  RestoreTerminal();
  std::string line = "kite: " + message + "\n";
  (void)!write(STDERR_FILENO, line.data(), line.size());
  _exit(255);
}

uint64_t SignalBit(int sig) { return uint64_t{1} << (sig - 1); }

// True when the job's stdin has nothing to give: a terminal the deputy does not forward, or
// /dev/null (make's recipes under CI, `< /dev/null`, nohup). The job then starts at EOF and no
// stdin is relayed: one call fewer per job.
bool StdinIsEmpty(const DeputyOptions& o) {
  if (!o.terminal_stdin && isatty(STDIN_FILENO)) return true;
  struct stat in, null;
  return fstat(STDIN_FILENO, &in) == 0 && S_ISCHR(in.st_mode) && stat("/dev/null", &null) == 0 &&
         in.st_rdev == null.st_rdev;
}

wire::RunRequest CollectContext(const DeputyOptions& o) {
  wire::RunRequest r;
  r.argv = o.argv;
  r.restart = o.restart;
  for (char** e = environ; *e; ++e) r.env.emplace_back(*e);
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) Fail(std::string("cannot get the working directory: ") + strerror(errno));
  r.cwd = cwd;
  mode_t m = umask(0);
  umask(m);
  r.umask = m;
  for (int res = 0; res < RLIM_NLIMITS; ++res) {
    rlimit l;
    if (getrlimit(res, &l) != 0) continue;
    wire::Rlimit w;
    w.resource = res;
    w.soft = l.rlim_cur == RLIM_INFINITY ? -1 : static_cast<int64_t>(l.rlim_cur);
    w.hard = l.rlim_max == RLIM_INFINITY ? -1 : static_cast<int64_t>(l.rlim_max);
    r.rlimits.push_back(w);
  }
  sigset_t mask;
  sigprocmask(SIG_BLOCK, nullptr, &mask);
  for (int sig = 1; sig < 65; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    if (sigismember(&mask, sig) == 1) r.blocked_signals |= SignalBit(sig);
    struct sigaction sa;
    if (sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler == SIG_IGN) r.ignored_signals |= SignalBit(sig);
  }
  // A remote pty carries stdout and whatever else is the terminal; stdin and stderr count as
  // terminals only together with stdout, so pty output always belongs on stdout.
  if (isatty(STDOUT_FILENO)) {
    r.tty_mask = wire::kTtyStdout;
    if (o.terminal_stdin && isatty(STDIN_FILENO)) r.tty_mask |= wire::kTtyStdin;
    if (isatty(STDERR_FILENO)) r.tty_mask |= wire::kTtyStderr;
    winsize ws{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
      r.winsize.rows = ws.ws_row;
      r.winsize.cols = ws.ws_col;
      r.winsize.xpixel = ws.ws_xpixel;
      r.winsize.ypixel = ws.ws_ypixel;
    }
  }
  r.host = o.host;
  r.flags = (o.allow_local ? wire::kRunAllowLocal : 0) | (o.requeue_ok ? wire::kRunRequeueOk : 0);
  if (StdinIsEmpty(o)) r.flags |= wire::kRunStdinEmpty;
  return r;
}

[[noreturn]] void ExecAtHome(const std::vector<std::string>& argv, const sigset_t& original_mask) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  sigprocmask(SIG_SETMASK, &original_mask, nullptr);
  execvp(args[0], args.data());
  int err = errno;
  std::string msg = "kite: " + argv[0] + ": " + strerror(err) + "\n";
  (void)!write(STDERR_FILENO, msg.data(), msg.size());
  _exit(err == ENOENT ? 127 : 126);
}

// Ends the deputy the way the job ended.
[[noreturn]] void ExitLike(int wait_status) {
  RestoreTerminal();
  if (WIFEXITED(wait_status)) _exit(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    int sig = WTERMSIG(wait_status);
    // The job's core (if any) was written where it ran; none is wanted here too.
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(sig, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    sigprocmask(SIG_UNBLOCK, &s, nullptr);
    raise(sig);
    _exit(128 + sig);  // a signal that does not kill (should not happen)
  }
  _exit(255);
}

class Relay {
 public:
  // empty_stdin: the job was started with its stdin at EOF (wire::kRunStdinEmpty).
  Relay(int sock, int sigfd, uint32_t tty_mask, bool line_buffered, bool empty_stdin, const DeputyOptions& options)
      : sock_(sock),
        sigfd_(sigfd),
        tty_mask_(tty_mask),
        line_buffered_(line_buffered),
        options_(options),
        stdin_done_(empty_stdin) {}

  [[noreturn]] void Run() {
    if (tty_mask_ & wire::kTtyStdin) MakeTerminalRaw();
    for (;;) {
      pollfd fds[3] = {{sock_, POLLIN, 0}, {sigfd_, POLLIN, 0}, {STDIN_FILENO, 0, 0}};
      const bool want_stdin = !stdin_done_ && stdin_sent_ - stdin_acked_ < wire::kStdinWindow;
      if (want_stdin) fds[2].events = POLLIN;
      int n = poll(fds, want_stdin ? 3 : 2, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        Die(std::string("poll: ") + strerror(errno));
      }
      if (fds[1].revents & POLLIN) OnSignal();
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) OnFrame();
      if (want_stdin && fds[2].revents) OnStdin(fds[2].revents);
    }
  }

 private:
  void Send(wire::MsgType type, const std::string& frame) {
    (void)type;
    if (wire::SendFrame(sock_, frame) != 0) Die("lost contact with kite-homed");
  }

  // The held-back partial lines go out before the deputy ends, however it ends.
  void FlushOutput() {
    for (int fd : {STDOUT_FILENO, STDERR_FILENO}) {
      for (std::string piece; !(piece = lines_[fd].Take(true)).empty();) Write(fd, piece);
    }
  }
  [[noreturn]] void Die(const std::string& message) {
    FlushOutput();
    Fail(message);
  }

  void OnFrame() {
    wire::MsgType type;
    std::string body;
    int err = wire::RecvFrame(sock_, &type, &body);
    if (err == ECONNRESET) Die("lost contact with kite-homed (the job's fate is unknown)");
    if (err != 0) Die(std::string("reading from kite-homed: ") + strerror(err));
    switch (type) {
      case wire::MsgType::kStdoutData:
      case wire::MsgType::kStderrData: {
        wire::Chunk c;
        if (wire::DecodeBody(body, &c) != 0) Die("malformed output frame from kite-homed");
        Output(type == wire::MsgType::kStdoutData ? STDOUT_FILENO : STDERR_FILENO, c.data);
        return;
      }
      case wire::MsgType::kStdinAck: {
        wire::Offset o;
        if (wire::DecodeBody(body, &o) != 0) Die("malformed frame from kite-homed");
        if (o.offset > stdin_acked_) stdin_acked_ = o.offset;
        return;
      }
      case wire::MsgType::kMoved: {
        wire::MoveReply m;
        if (wire::DecodeBody(body, &m) != 0) Die("malformed frame from kite-homed");
        if (options_.verbose)
          fprintf(stderr, "kite: the job %s from %s to %s\n", m.requeued ? "was requeued" : "moved", m.from.c_str(),
                  m.to.c_str());
        if (options_.on_move) options_.on_move(m.to, m.requeued != 0);
        return;
      }
      case wire::MsgType::kExit: {
        wire::ExitMsg e;
        if (wire::DecodeBody(body, &e) != 0) Die("malformed exit frame from kite-homed");
        FlushOutput();
        ExitLike(e.wait_status);
      }
      case wire::MsgType::kError: {
        wire::ErrorMsg e;
        if (wire::DecodeBody(body, &e) != 0) Die("malformed error frame from kite-homed");
        Die(e.message);
      }
      default:
        Die("unexpected frame type " + std::to_string(static_cast<int>(type)) + " from kite-homed");
    }
  }

  void Output(int fd, const std::string& data) {
    if (!line_buffered_) return Write(fd, data);
    lines_[fd].Append(data);
    for (std::string piece; !(piece = lines_[fd].Take()).empty();) Write(fd, piece);
  }

  void Write(int fd, const std::string& data) {
    if (fd == STDOUT_FILENO && stdout_broken_) return;
    size_t off = 0;
    while (off < data.size()) {
      ssize_t k = write(fd, data.data() + off, data.size() - off);
      if (k >= 0) {
        off += static_cast<size_t>(k);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        poll(&p, 1, -1);
        continue;
      }
      if (errno == EPIPE && fd == STDOUT_FILENO) {
        // Whoever read our stdout is gone: the job gets the SIGPIPE it would get at home.
        stdout_broken_ = true;
        ForwardSignal(SIGPIPE);
      }
      return;
    }
  }

  void OnStdin(short revents) {
    char buf[64 * 1024];
    size_t room = static_cast<size_t>(wire::kStdinWindow - (stdin_sent_ - stdin_acked_));
    ssize_t k = (revents & POLLNVAL) ? 0 : read(STDIN_FILENO, buf, std::min(sizeof buf, room));
    if (k < 0) {
      if (errno == EINTR || errno == EAGAIN) return;
      k = 0;  // an unreadable stdin ends like an empty one
    }
    if (k == 0) {
      stdin_done_ = true;
      Send(wire::MsgType::kStdinEof, wire::Frame(wire::MsgType::kStdinEof));
      return;
    }
    wire::Chunk c;
    c.data.assign(buf, static_cast<size_t>(k));
    stdin_sent_ += static_cast<uint64_t>(k);
    Send(wire::MsgType::kStdinData, wire::Frame(wire::MsgType::kStdinData, c));
  }

  void ForwardSignal(int sig) {
    wire::SignalMsg m;
    m.signo = sig;
    Send(wire::MsgType::kSignal, wire::Frame(wire::MsgType::kSignal, m));
  }

  void OnSignal() {
    signalfd_siginfo si;
    while (read(sigfd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      int sig = static_cast<int>(si.ssi_signo);
      if (sig == SIGWINCH) {
        winsize ws{};
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
          wire::Winsize w;
          w.rows = ws.ws_row;
          w.cols = ws.ws_col;
          w.xpixel = ws.ws_xpixel;
          w.ypixel = ws.ws_ypixel;
          Send(wire::MsgType::kWinsize, wire::Frame(wire::MsgType::kWinsize, w));
        }
        continue;
      }
      ForwardSignal(sig);
      if (sig == SIGTSTP) {
        // Stop as a local job would, so the shell's job control sees it; the job is stopped too.
        RestoreTerminal();
        raise(SIGSTOP);
      } else if (sig == SIGCONT && (tty_mask_ & wire::kTtyStdin)) {
        MakeTerminalRaw();
      }
    }
  }

  const int sock_;
  const int sigfd_;
  const uint32_t tty_mask_;
  const bool line_buffered_;
  const DeputyOptions& options_;  // RunDeputy's, which never returns
  LineBuffer lines_[3];  // by fd: [1] stdout, [2] stderr
  uint64_t stdin_sent_ = 0;
  uint64_t stdin_acked_ = 0;
  bool stdin_done_;
  bool stdout_broken_ = false;
};

}  // namespace

void RunDeputy(const DeputyOptions& o) {
  if (o.argv.empty()) Fail("no command given");
  sigset_t original_mask;
  sigprocmask(SIG_BLOCK, nullptr, &original_mask);
  wire::RunRequest req = CollectContext(o);

  // From here on the forwarded signals are read from a signalfd, never delivered.
  sigset_t fwd;
  sigemptyset(&fwd);
  for (int s : kForwarded) sigaddset(&fwd, s);
  sigprocmask(SIG_BLOCK, &fwd, nullptr);
  signal(SIGPIPE, SIG_IGN);

  int sock = wire::ConnectUnix(o.socket_path.c_str());
  if (sock < 0) Fail("cannot reach kite-homed at " + o.socket_path + ": " + strerror(-sock) + " (is kite-homed running?)");
  if (wire::Send(sock, wire::MsgType::kRunRequest, req) != 0) Fail("lost contact with kite-homed");

  wire::MsgType type;
  std::string body;
  int err = wire::RecvFrame(sock, &type, &body);
  if (err != 0) Fail(std::string("no answer from kite-homed: ") + strerror(err));
  switch (type) {
    case wire::MsgType::kRunLocal: {
      wire::Chunk why;
      wire::DecodeBody(body, &why);
      if (!o.restart.empty()) Fail("kite-homed offered to run a restart at home as a command; refused");
      if (o.verbose) fprintf(stderr, "kite: %s\n", why.data.empty() ? "running at home" : why.data.c_str());
      close(sock);
      if (o.on_start) o.on_start("");
      signal(SIGPIPE, SIG_DFL);
      ExecAtHome(o.argv, original_mask);
    }
    case wire::MsgType::kError: {
      wire::ErrorMsg e;
      if (wire::DecodeBody(body, &e) != 0) Fail("malformed error from kite-homed");
      Fail(e.message);
    }
    case wire::MsgType::kPlaced: {
      wire::Placed p;
      if (wire::DecodeBody(body, &p) != 0) Fail("malformed placement from kite-homed");
      if (o.verbose) fprintf(stderr, "kite: running on %s (job %lld)\n", p.host.c_str(), static_cast<long long>(p.job_id));
      if (o.on_start) o.on_start(p.host);
      break;
    }
    default:
      Fail("unexpected answer from kite-homed (type " + std::to_string(static_cast<int>(type)) + ")");
  }
  int sigfd = signalfd(-1, &fwd, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) Fail(std::string("signalfd: ") + strerror(errno));
  Relay(sock, sigfd, req.tty_mask, o.line_buffered, (req.flags & wire::kRunStdinEmpty) != 0, o).Run();
}

}  // namespace kite
