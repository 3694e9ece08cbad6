// `kite make` (the parent: -j, SHELL, the summary) and kite-shell (one recipe: at home for a
// sub-make, else as a kite job).
#include "cli/make_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cli/deputy.h"
#include "cli/make_flags.h"
#include "cli/make_summary.h"
#include "common/wire_io.h"

namespace kite {
namespace {

constexpr const char* kShellLink = "kite-shell.d/sh";

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string Basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The free guest slots of every idle host (this one included: a recipe that finds no remote
// slot runs here), or -1 with *error set.
int ClusterFreeSlots(const std::string& socket_path, std::string* error) {
  int fd = wire::ConnectUnix(socket_path.c_str());
  if (fd < 0) {
    *error = "cannot reach kite-homed at " + socket_path + ": " + strerror(-fd) + " (is kite-homed running?)";
    return -1;
  }
  wire::MsgType type;
  std::string body;
  int err = wire::Send(fd, wire::MsgType::kHostsQuery);
  if (!err) err = wire::RecvFrame(fd, &type, &body);
  close(fd);
  wire::HostsReply reply;
  if (err) {
    *error = std::string("asking kite-homed for the hosts: ") + strerror(err);
    return -1;
  }
  if (type != wire::MsgType::kHostsReply || wire::DecodeBody(body, &reply) != 0) {
    *error = "malformed reply from kite-homed";
    return -1;
  }
  int free = 0;
  for (const auto& h : reply.hosts)
    if (h.state == "idle" && h.free_slots > 0) free += h.free_slots;
  return free;
}

// SIGTERM and SIGHUP sent to `kite make` alone go on to make; SIGINT and SIGQUIT come from
// the terminal to the whole process group, make included, so this process ignores them.
volatile sig_atomic_t g_make_pid = 0;
void ForwardToMake(int sig) {
  if (g_make_pid > 0) kill(g_make_pid, sig);
}

std::string ReadAndRemove(const std::string& path) {
  std::string data;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) data.append(buf, static_cast<size_t>(n));
    close(fd);
  }
  unlink(path.c_str());
  return data;
}

bool FdIsPipe(int fd) {
  struct stat st;
  return fd >= 0 && fcntl(fd, F_GETFD) >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

// One short line, appended atomically (O_APPEND, one write below PIPE_BUF).
void AppendLine(const char* log, const std::string& line) {
  if (!log || !*log) return;
  int fd = open(log, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return;  // `kite make` is gone or the log was removed: the summary is lost, not the build
  (void)!write(fd, line.data(), line.size());
  close(fd);
}

}  // namespace

bool IsKiteShellName(const std::string& argv0) {
  const std::string base = Basename(argv0);
  return base == "kite-shell" || (base == "sh" && Basename(Dirname(argv0)) == "kite-shell.d");
}

int RunMake(const MakeOptions& o) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    fprintf(stderr, "kite make: cannot find the kite binary: %s\n", strerror(errno));
    return 255;
  }
  exe[n] = '\0';
  const std::string shell = Dirname(exe) + "/" + kShellLink;
  if (access(shell.c_str(), X_OK) != 0) {
    fprintf(stderr, "kite make: %s is missing (%s): kite is not installed completely\n", shell.c_str(), strerror(errno));
    return 255;
  }
  const char* make_env = getenv(kMakeProgramEnv);
  const std::string make = make_env && *make_env ? make_env : "make";

  std::vector<std::string> argv = {make, "SHELL=" + shell};
  const char* inherited = getenv("MAKEFLAGS");
  if (!MakeArgsSetJobs(o.args) && !MakeFlagsSetJobs(inherited ? inherited : "")) {
    std::string error;
    int slots = ClusterFreeSlots(o.socket_path, &error);
    if (slots < 0) {
      fprintf(stderr, "kite make: %s\n", error.c_str());
      return 255;
    }
    argv.push_back("-j" + std::to_string(slots > 0 ? slots : 1));
  }
  argv.insert(argv.end(), o.args.begin(), o.args.end());

  const char* tmp = getenv("TMPDIR");
  std::string log = std::string(tmp && *tmp ? tmp : "/tmp") + "/kite-make-XXXXXX";
  int log_fd = mkostemp(log.data(), O_CLOEXEC);
  if (log_fd < 0) {
    fprintf(stderr, "kite make: cannot make a log file in %s: %s\n", Dirname(log).c_str(), strerror(errno));
    return 255;
  }
  close(log_fd);
  setenv(kMakeLogEnv, log.c_str(), 1);
  setenv(kMakeSocketEnv, o.socket_path.c_str(), 1);
  setenv(kMakeProgramEnv, make.c_str(), 1);

  struct sigaction ignore{}, forward{}, old_int{}, old_quit{}, old_term{}, old_hup{};
  ignore.sa_handler = SIG_IGN;
  forward.sa_handler = ForwardToMake;
  sigaction(SIGINT, &ignore, &old_int);
  sigaction(SIGQUIT, &ignore, &old_quit);
  sigaction(SIGTERM, &forward, &old_term);
  sigaction(SIGHUP, &forward, &old_hup);

  const auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "kite make: fork: %s\n", strerror(errno));
    unlink(log.c_str());
    return 255;
  }
  if (pid == 0) {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGQUIT, &old_quit, nullptr);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execvp(args[0], args.data());
    fprintf(stderr, "kite make: cannot run %s: %s\n", make.c_str(), strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  g_make_pid = pid;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      fprintf(stderr, "kite make: waitpid: %s\n", strerror(errno));
      status = 255 << 8;
      break;
    }
  }
  g_make_pid = 0;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  MakeSummary summary;
  summary.AddLog(ReadAndRemove(log));
  if (!o.quiet && !WIFSIGNALED(status)) fputs(summary.Format(wall).c_str(), stderr);

  if (WIFSIGNALED(status)) {
    // Die as make did, so the caller's shell sees the interrupt.
    int sig = WTERMSIG(status);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, nullptr);
    raise(sig);
    return 128 + sig;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

void RunKiteShell(int argc, char** argv) {
  const char* shell_env = getenv(kMakeShellEnv);
  const std::string shell = shell_env && *shell_env ? shell_env : "/bin/sh";
  std::vector<std::string> job = {shell};
  for (int i = 1; i < argc; ++i) job.emplace_back(argv[i]);
  const char* log = getenv(kMakeLogEnv);
  const char* flags_env = getenv("MAKEFLAGS");
  const std::string makeflags = flags_env ? flags_env : "";

  // make 4.3 leaves its jobserver pipe open only in the children it runs as recursive makes
  // ($(MAKE) or a `+` line): that is how a sub-make is told from a recipe. A serial make has
  // no jobserver; then the recipe's text must run make.
  const Jobserver js = ParseJobserver(makeflags);
  bool sub_make;
  if (js.kind == Jobserver::Kind::kPipe) {
    sub_make = FdIsPipe(js.read_fd) && FdIsPipe(js.write_fd);
  } else {
    const char* make_env = getenv(kMakeProgramEnv);
    std::string text;
    for (int i = 1; i < argc; ++i) text += std::string(argv[i]) + " ";
    sub_make = CommandRunsMake(text, make_env && *make_env ? make_env : "make");
  }
  if (sub_make) {
    // At home, with the jobserver fds: its recipes come back here and go out one by one.
    AppendLine(log, MakeSummary::Record(MakeSummary::kHome, true));
    std::vector<char*> args;
    for (auto& a : job) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    fprintf(stderr, "kite-shell: cannot run %s: %s\n", shell.c_str(), strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }

  const std::string stripped = StripJobserver(makeflags);
  if (flags_env && stripped != makeflags) setenv("MAKEFLAGS", stripped.c_str(), 1);
  DeputyOptions d;
  const char* sock = getenv(kMakeSocketEnv);
  d.socket_path = sock && *sock ? sock : wire::kDefaultSocketPath;
  d.argv = std::move(job);
  d.line_buffered = true;
  d.terminal_stdin = false;
  d.requeue_ok = true;  // make sees only a recipe's exit status and files: a rerun is invisible
  d.on_start = [log](const std::string& where) {
    AppendLine(log, MakeSummary::Record(where.empty() ? MakeSummary::kHome : where, false));
  };
  d.on_move = [log](const std::string& to, bool requeued) { AppendLine(log, MakeSummary::MoveRecord(to, requeued)); };
  RunDeputy(d);
}

}  // namespace kite
