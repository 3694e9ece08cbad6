// End-to-end checkpoint test harness (see ckpt_harness.h).
#include "tests/checkpoint/ckpt_harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "syscall-shim/checkpoint/checkpoint_protocol.h"
#include "syscall-shim/restorer/restorer.h"

namespace kite::testing {
namespace {

using Clock = std::chrono::steady_clock;

bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// True once `pid` went through exec (it is no longer a forked copy of this test or of
// ckpt_nsinit) and kite-restore's window is gone (its tail unmapped it: the restored program
// is running).
bool Restored(pid_t pid) {
  std::string proc = "/proc/" + std::to_string(pid);
  std::error_code ec;
  auto exe = std::filesystem::read_symlink(proc + "/exe", ec);
  if (ec || exe == std::filesystem::read_symlink("/proc/self/exe", ec) ||
      exe == KITE_TEST_NSINIT_PATH) {
    return false;
  }
  std::ifstream maps(proc + "/maps");
  std::string line;
  bool any = false;
  while (std::getline(maps, line)) {
    any = true;
    uint64_t start = std::stoull(line.substr(0, line.find('-')), nullptr, 16);
    if (start >= KITE_RESTORER_BASE && start < KITE_RESTORER_BASE + KITE_RESTORER_WINDOW) return false;
  }
  return any;
}

// A child of `parent` (host pids), or -1.
pid_t FindChild(pid_t parent) {
  DIR* d = opendir("/proc");
  if (d == nullptr) return -1;
  pid_t found = -1;
  while (dirent* e = readdir(d)) {
    char* end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::string stat = ReadAll(std::string("/proc/") + e->d_name + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    int ppid = 0;
    char state;
    if (sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) {
      found = static_cast<pid_t>(pid);
      break;
    }
  }
  closedir(d);
  return found;
}

}  // namespace

std::string DescribeStatus(int status) {
  if (status == -1) return "still running (timeout)";
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

CkptHarness::CkptHarness() {
  char tmpl[] = "/tmp/kite-ckpt-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) abort();
  dir_ = tmpl;
  if (chown(dir_.c_str(), kNobody, kNobody) != 0 || chmod(dir_.c_str(), 0755) != 0) abort();
}

CkptHarness::~CkptHarness() {
  for (pid_t p : started_) {
    kill(p, SIGKILL);
    // The restored process may be a grandchild (PID namespace): killing the outer helper's
    // init tears its namespace down.
    pid_t init = FindChild(p);
    if (init > 0) kill(init, SIGKILL);
    waitpid(p, nullptr, 0);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

pid_t CkptHarness::Spawn(const std::vector<std::string>& argv, const std::string& out_name,
                         uid_t uid, bool vpid, bool subject, const char* fault) {
  std::string out = Path(out_name);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    // Only 0, 1, 2: the test runner's other descriptors (pipes) must not leak into subjects.
    int null_fd = open("/dev/null", O_RDONLY);
    int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (null_fd < 0 || out_fd < 0 || chdir(dir_.c_str()) != 0) _exit(120);
    if (fchown(out_fd, kNobody, kNobody) != 0) _exit(120);
    dup2(null_fd, 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    syscall(SYS_close_range, 3, ~0u, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    setsid();
    if (subject) {
      setenv(KITE_CKPT_DIR_VAR, dir_.c_str(), 1);
      setenv("LD_PRELOAD", KITE_TEST_SHIM_PATH, 1);
      if (fault != nullptr) setenv("KITE_CKPT_FAULT", fault, 1);
    }
    if (vpid) {
      std::string job = std::to_string(getpid()) + ":" + std::to_string(getppid()) + ":" +
                        std::to_string(getpid());
      setenv("KITE_JOB", job.c_str(), 1);
      setenv("KITE_HOME", "testhome", 1);
    }
    if (uid != 0 && (setgroups(0, nullptr) != 0 || setresgid(uid, uid, uid) != 0 ||
                     setresuid(uid, uid, uid) != 0)) {
      _exit(121);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  started_.push_back(pid);
  return pid;
}

pid_t CkptHarness::StartSubject(const std::vector<std::string>& pieces,
                                const SubjectOptions& options) {
  std::vector<std::string> argv = {KITE_TEST_PROG_PATH};
  argv.insert(argv.end(), pieces.begin(), pieces.end());
  pid_t pid = Spawn(argv, "out.txt", options.uid, options.vpid, true, options.fault);
  if (pid < 0) return -1;
  if (!WaitUntil([&] { return Exists("ready"); }, kTimeout)) return -1;
  return pid;
}

std::string CkptHarness::Checkpoint(pid_t pid, int mode) {
  std::string img = Path(std::to_string(pid) + ".img");
  std::string err = Path(std::to_string(pid) + ".err");
  unlink(img.c_str());
  unlink(err.c_str());
  union sigval v;
  v.sival_int = mode;
  if (sigqueue(pid, KITE_CKPT_SIGNAL, v) != 0) return "";
  std::string found;
  WaitUntil([&] {
    if (access(img.c_str(), F_OK) == 0) found = img;
    else if (access(err.c_str(), F_OK) == 0) found = err;
    return !found.empty();
  }, kTimeout);
  return found;
}

pid_t CkptHarness::Restore(const std::string& image, const RestoreOptions& options) {
  std::vector<std::string> argv;
  if (options.pid_namespace) argv.push_back(KITE_TEST_NSINIT_PATH);
  argv.push_back(KITE_TEST_RESTORE_PATH);
  if (options.allow_root) argv.push_back("--allow-root");
  if (!options.pages.empty()) argv.insert(argv.end(), {"--pages", options.pages});
  argv.push_back(image);
  return Spawn(argv, "restore.log", 0, false, false);
}

pid_t CkptHarness::RestoredPid(pid_t launched, bool pid_namespace) {
  pid_t target = -1;
  WaitUntil([&] {
    pid_t p = launched;
    if (pid_namespace) {
      pid_t init = FindChild(launched);
      p = init > 0 ? FindChild(init) : -1;
    }
    if (p <= 0 || !Restored(p)) return false;
    target = p;
    return true;
  }, kTimeout);
  return target;
}

void CkptHarness::Go() {
  int fd = open(Path("go").c_str(), O_WRONLY | O_CREAT, 0644);
  if (fd >= 0) close(fd);
}

int CkptHarness::Wait(pid_t pid) {
  int status = -1;
  bool done = WaitUntil([&] { return waitpid(pid, &status, WNOHANG) == pid; }, kTimeout);
  if (!done) return -1;
  std::erase(started_, pid);
  return status;
}

int CkptHarness::RunRestoreTool(const std::vector<std::string>& args, std::string* output) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    close(pipefd[1]);
    std::vector<char*> argv = {const_cast<char*>(KITE_TEST_RESTORE_PATH)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(pipefd[1]);
  output->clear();
  char buf[4096];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) output->append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  int status = -1;
  waitpid(pid, &status, 0);
  return status;
}

std::string CkptHarness::ReadFile(const std::string& name) const { return ReadAll(Path(name)); }

bool CkptHarness::Exists(const std::string& name) const {
  return access(Path(name).c_str(), F_OK) == 0;
}

}  // namespace kite::testing
