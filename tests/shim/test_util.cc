// Test helpers for the shim tests (see test_util.h).
#include "tests/shim/test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace kite::shim::testing {

const char* ShimPath() { return KITE_TEST_SHIM_PATH; }
const char* ProbePath() { return KITE_TEST_PROBE_PATH; }

TempDir::TempDir() {
  char tmpl[] = "/tmp/kite-shim-test-XXXXXX";
  char* dir = ::mkdtemp(tmpl);
  EXPECT_NE(dir, nullptr) << strerror(errno);
  if (dir != nullptr) path_ = dir;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

TestCgroup::TestCgroup() {
  // Our own place in the pids hierarchy, from a "N:pids:/path" line of /proc/self/cgroup.
  std::ifstream in("/proc/self/cgroup");
  std::string line, ours;
  while (std::getline(in, line)) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a != std::string::npos && b != std::string::npos && line.substr(a + 1, b - a - 1) == "pids") {
      ours = line.substr(b + 1);
    }
  }
  if (ours.empty()) return;
  static int counter = 0;
  parent_ = "/sys/fs/cgroup/pids" + (ours == "/" ? "" : ours);
  std::string dir = parent_ + "/kite-shim-test-" + std::to_string(getpid()) + "-" +
                    std::to_string(counter++);
  if (::mkdir(dir.c_str(), 0755) == 0) dir_ = dir;
}

TestCgroup::~TestCgroup() {
  if (!ok()) return;
  Leave(getpid());
  EXPECT_EQ(::rmdir(dir_.c_str()), 0) << dir_ << ": " << strerror(errno);
}

namespace {
bool WritePid(const std::string& procs, pid_t pid) {
  std::ofstream out(procs);
  out << pid << std::flush;
  return out.good();
}
}  // namespace

bool TestCgroup::Join(pid_t pid) const { return WritePid(procs_path(), pid); }
bool TestCgroup::Leave(pid_t pid) const { return WritePid(parent_ + "/cgroup.procs", pid); }

Sleeper::Sleeper() {
  pid_ = ::fork();
  if (pid_ == 0) {
    for (;;) ::pause();
  }
  EXPECT_GT(pid_, 0) << strerror(errno);
}

Sleeper::~Sleeper() {
  if (pid_ <= 0 || reaped_) return;
  ::kill(pid_, SIGKILL);
  Wait();
}

int Sleeper::Wait() {
  // Bounded, so that a shim that failed to deliver a signal fails the test instead of hanging
  // it: after 5 s the sleeper is killed and reaped here, and -1 returned.
  int status = 0;
  bool timed_out = false;
  for (int ms = 0;;) {
    pid_t r = ::waitpid(pid_, &status, timed_out ? 0 : WNOHANG);
    if (r == pid_) break;
    if (r < 0 && errno != EINTR) return -1;
    if (r == 0 && ++ms > 5000) {
      ::kill(pid_, SIGKILL);
      timed_out = true;
    } else if (r == 0) {
      ::usleep(1000);
    }
  }
  reaped_ = true;
  return timed_out ? -1 : status;
}

pid_t UnusedPid() {
  // pid_max is at least 32768 and pids count up from low values, so high ones are rarely taken.
  for (pid_t p = 32000; p > 300; --p) {
    if (::kill(p, 0) < 0 && errno == ESRCH) return p;
  }
  ADD_FAILURE() << "no unused pid";
  return -1;
}

int ProbeResult::Int(const std::string& key) const {
  auto it = kv.find(key);
  EXPECT_NE(it, kv.end()) << "probe printed no " << key << "; output:\n" << out;
  return it == kv.end() ? -999999 : std::stoi(it->second);
}

namespace {

// Decimal digits of a non-negative number into `out`; returns the end. Async-signal-safe.
char* PutDecimal(char* out, long v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *out++ = digits[--n];
  return out;
}

}  // namespace

ProbeResult RunProbe(const std::vector<std::string>& args, const ProbeOptions& opts) {
  ProbeResult result;
  // Everything the child needs is prepared here: after fork() it may only make plain syscalls
  // (this test process has threads).
  std::vector<std::string> env = opts.env;
  if (opts.preload) env.insert(env.begin(), std::string("LD_PRELOAD=") + ShimPath());
  std::vector<std::string> prefix(env.size()), suffix(env.size());
  std::vector<std::vector<char>> bufs(env.size());
  std::vector<char*> envp;
  for (size_t i = 0; i < env.size(); ++i) {
    size_t at = env[i].find("{self}");
    bufs[i].assign(env[i].begin(), env[i].end());
    bufs[i].resize(env[i].size() + 32, '\0');
    if (at != std::string::npos) {
      prefix[i] = env[i].substr(0, at);
      suffix[i] = env[i].substr(at + 6);
    }
    envp.push_back(bufs[i].data());
  }
  envp.push_back(nullptr);
  std::vector<std::string> argv_s = {ProbePath()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << strerror(errno);
    return result;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    return result;
  }
  if (pid == 0) {
    pid_t self = ::getpid();
    for (size_t i = 0; i < env.size(); ++i) {
      if (prefix[i].empty()) continue;
      char* p = bufs[i].data();
      memcpy(p, prefix[i].data(), prefix[i].size());
      p = PutDecimal(p + prefix[i].size(), self);
      memcpy(p, suffix[i].data(), suffix[i].size());
      p[suffix[i].size()] = '\0';
    }
    if (opts.setsid && ::setsid() < 0) _exit(126);
    if (!opts.cgroup_procs.empty()) {
      int fd = ::open(opts.cgroup_procs.c_str(), O_WRONLY | O_CLOEXEC);
      char num[24];
      char* end = PutDecimal(num, self);
      if (fd < 0 || ::write(fd, num, static_cast<size_t>(end - num)) < 0) _exit(125);
      ::close(fd);
    }
    ::dup2(out[1], 1);
    ::execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  ::close(out[1]);
  // Read to end of file, for at most kProbeTimeoutMs: a probe (or a child it leaked) that hangs
  // is killed with its process group and fails the test rather than wedging the run.
  constexpr int kProbeTimeoutMs = 30000;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kProbeTimeoutMs);
  char buf[4096];
  for (;;) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now()).count());
    pollfd pfd{out[0], POLLIN, 0};
    int ready = left > 0 ? ::poll(&pfd, 1, left) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      ADD_FAILURE() << "probe " << args[0] << " hung; killed. Output so far:\n" << result.out;
      if (opts.setsid) ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      break;
    }
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.out.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  while (::waitpid(pid, &result.status, 0) < 0 && errno == EINTR) {
  }
  std::istringstream lines(result.out);
  std::string line;
  while (std::getline(lines, line)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) result.kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return result;
}

}  // namespace kite::shim::testing
