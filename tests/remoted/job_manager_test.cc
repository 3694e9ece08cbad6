// JobManager with real processes: exit statuses, stdio (large, separate, with backpressure),
// stdin offsets, environment and credentials, ptys, signals, release and cgroups, slots,
// owner state, exec failures, garbage collection. Runs as root (jobs switch uid); the
// cgroup parent is kite-test-<pid> and is removed again by the manager.
#include "remoted/job_manager.h"

#include "kite/rpc/kite_constants.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace kite {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

bool ProcessExists(pid_t pid) { return ::access(("/proc/" + std::to_string(pid)).c_str(), F_OK) == 0; }

// The state letter from /proc/<pid>/stat (R, S, T, Z, ...), or 0 if there is no such process.
char ProcessState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = all.rfind(')');
  return paren == std::string::npos || paren + 2 >= all.size() ? 0 : all[paren + 2];
}

bool WaitGone(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (ProcessExists(pid)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/kite-jobs-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
    ::chmod(path_.c_str(), 0755);
  }
  ~TempDir() { std::system(("rm -rf " + path_).c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Result {
  std::string out, err;
  int status = -1;
  bool exited = false;
  rpc::Rusage rusage;
};

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "JobManager tests run jobs as other users: run them as root";
    config_.host_name = "testhost";
    config_.slots = 3;
    config_.allow_root = true;
    config_.cgroup_parent = "kite-test-" + std::to_string(::getpid());
    config_.owner_detect = "none";
    config_.shim_path = "";  // no shim: nothing preloaded
    config_.run_dir = "/tmp/kite-test-run";
    // Never the machine's real /kite: checkpoint directories are made below the shared path.
    config_.shared_paths = {"/tmp/kite-test-shared"};
    config_.checkpoint_dir = "/tmp/kite-test-run/checkpoints";  // never the machine's own
    Recreate();
  }

  void TearDown() override {
    JobCgroups::TEST_DisableCloneIntoCgroup(false);
    if (!jobs_) return;
    // <...>/kite-test-<pid>/testhost[/job-1] -> <...>/kite-test-<pid>
    std::vector<std::string> parents;
    std::string cpu_host = jobs_->cgroups().HostDir("cpu");
    if (!cpu_host.empty()) parents.push_back(cpu_host.substr(0, cpu_host.rfind('/')));
    std::string v2_job = jobs_->cgroups().UnifiedJobDir(1);
    if (!v2_job.empty()) {
      v2_job = v2_job.substr(0, v2_job.rfind('/'));
      parents.push_back(v2_job.substr(0, v2_job.rfind('/')));
    }
    jobs_.reset();
    owner_.reset();
    for (const std::string& parent : parents)
      EXPECT_FALSE(::access(parent.c_str(), F_OK) == 0) << parent << " was left behind";
    // The manager took this process back out of the guests' groups.
    EXPECT_THAT(ReadFile("/proc/self/cgroup"), ::testing::Not(HasSubstr(config_.cgroup_parent)));
  }

  void Recreate() {
    jobs_.reset();
    owner_ = std::make_unique<OwnerMonitor>(config_);
    auto m = JobManager::Create(config_, owner_.get());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    jobs_ = std::move(m).value();
  }

  static rpc::ExecSpec Spec(std::vector<std::string> argv) {
    rpc::ExecSpec s;
    s.argv = std::move(argv);
    s.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "LANG=C"};
    s.cwd = "/";
    s.umask = 022;
    s.creds.uid = 0;
    s.creds.gid = 0;
    s.home_host = "home1";
    s.vpid = 4242;
    s.home_ppid = 17;
    return s;
  }

  int64_t StartOk(const rpc::ExecSpec& spec) {
    auto id = jobs_->Start(spec);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : -1;
  }

  // Reads until the job has exited, checking the offsets as a home does; releases it.
  Result Collect(int64_t id, std::chrono::seconds timeout = 60s) {
    Result r;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto o = jobs_->ReadOutput(id, r.out.size(), r.err.size(), 1000);
      if (!o.ok()) {
        ADD_FAILURE() << o.status().ToString();
        return r;
      }
      EXPECT_EQ(o->stdout_offset, static_cast<int64_t>(r.out.size()));
      EXPECT_EQ(o->stderr_offset, static_cast<int64_t>(r.err.size()));
      EXPECT_LE(o->stdout_data.size(), JobManager::kMaxReadBytes);
      EXPECT_LE(o->stderr_data.size(), JobManager::kMaxReadBytes);
      r.out += o->stdout_data;
      r.err += o->stderr_data;
      if (o->exited) {
        r.exited = true;
        r.status = o->wait_status;
        r.rusage = o->rusage;
        break;
      }
    }
    EXPECT_TRUE(r.exited) << "job " << id << " did not exit in time";
    EXPECT_TRUE(jobs_->Release(id).ok());
    return r;
  }

  // Reads stdout until it holds `want` (the job keeps running).
  std::string ReadUntil(int64_t id, const std::string& want, std::chrono::seconds timeout = 20s) {
    std::string out;
    int64_t err_off = 0;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.find(want) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      auto o = jobs_->ReadOutput(id, out.size(), err_off, 500);
      if (!o.ok()) break;
      out += o->stdout_data;
      err_off = o->stderr_offset + o->stderr_data.size();
    }
    return out;
  }

  Config config_;
  std::unique_ptr<OwnerMonitor> owner_;
  std::unique_ptr<JobManager> jobs_;
};

TEST(JobLauncherTest, TtyBitsAreTheIdls) {
  EXPECT_EQ(JobLauncher::kTtyStdin, rpc::g_kite_constants.TTY_STDIN);
  EXPECT_EQ(JobLauncher::kTtyStdout, rpc::g_kite_constants.TTY_STDOUT);
  EXPECT_EQ(JobLauncher::kTtyStderr, rpc::g_kite_constants.TTY_STDERR);
}

// The root sets the oom_score_adj it is given (here raised, which needs no privilege) before
// exec, whether it was forked or cloned into a v2 group.
TEST(JobLauncherTest, RootGetsTheOomScoreAdjItIsGiven) {
  int own = std::atoi(ReadFile("/proc/self/oom_score_adj").c_str());
  TempDir dir;
  for (bool clone_into_group : {false, true}) {
    rpc::ExecSpec s;
    std::string out = dir.path() + "/adj";
    s.argv = {"/bin/sh", "-c", "cat /proc/self/oom_score_adj > " + out};
    s.env = {"PATH=/usr/bin:/bin"};
    s.cwd = "/";
    s.umask = 022;
    s.creds.uid = static_cast<int32_t>(::geteuid());
    s.creds.gid = static_cast<int32_t>(::getegid());
    s.home_host = "home1";
    s.vpid = 1;
    LaunchOptions o;
    o.allow_root = true;
    o.oom_score_adj = std::min(own + 100, 1000);
    auto l = JobLauncher::Prepare(s, o);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    UniqueFd group;
    std::string group_dir;
    if (clone_into_group) {
      std::string unified = "/sys/fs/cgroup/unified";  // the hybrid layout of the test machine
      if (::access((unified + "/cgroup.procs").c_str(), F_OK) != 0) unified = "/sys/fs/cgroup";
      group_dir = unified + "/kite-launcher-test-" + std::to_string(::getpid());
      if (::mkdir(group_dir.c_str(), 0755) != 0) continue;  // no writable v2 hierarchy: fork only
      group.reset(::open(group_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    }
    auto job = (*l)->Launch([](pid_t) {}, group.get());
    ASSERT_TRUE(job.ok()) << job.status().ToString();
    int status = 0;
    ASSERT_EQ(::waitpid(job->pid, &status, 0), job->pid);
    EXPECT_EQ(status, 0);
    EXPECT_EQ(ReadFile(out), std::to_string(*o.oom_score_adj) + "\n") << "clone into group: " << clone_into_group;
    if (!group_dir.empty()) {
      EXPECT_EQ(::rmdir(group_dir.c_str()), 0) << group_dir;
    }
  }
}

// A cgroup fd that is not one of a v2 group: the spawn fails with the kernel's reason, and
// nothing is started.
TEST(JobLauncherTest, SpawnIntoANonCgroupFailsCleanly) {
  rpc::ExecSpec s;
  s.argv = {"/bin/true"};
  s.env = {"PATH=/usr/bin:/bin"};
  s.cwd = "/";
  s.umask = 022;
  s.creds.uid = static_cast<int32_t>(::geteuid());
  s.creds.gid = static_cast<int32_t>(::getegid());
  s.home_host = "home1";
  s.vpid = 1;
  LaunchOptions o;
  o.allow_root = true;
  auto l = JobLauncher::Prepare(s, o);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  UniqueFd not_a_cgroup(::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(not_a_cgroup.valid());
  bool forked = false;
  auto job = (*l)->Launch([&](pid_t) { forked = true; }, not_a_cgroup.get());
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(job.status().ToString(), HasSubstr("clone3"));
  EXPECT_THAT(job.status().ToString(), ::testing::Not(HasSubstr("Success"))) << job.status().ToString();
  EXPECT_FALSE(forked);
}

TEST_F(JobManagerTest, ExitCodesRoundTrip) {
  for (int code : {0, 1, 37, 128, 255}) {
    int64_t id = StartOk(Spec({"sh", "-c", "exit " + std::to_string(code)}));
    Result r = Collect(id);
    ASSERT_TRUE(WIFEXITED(r.status)) << std::hex << r.status;
    EXPECT_EQ(WEXITSTATUS(r.status), code);
  }
}

TEST_F(JobManagerTest, DeathBySignalIsReported) {
  Result r = Collect(StartOk(Spec({"sh", "-c", "kill -SEGV $$"})));
  ASSERT_TRUE(WIFSIGNALED(r.status)) << std::hex << r.status;
  EXPECT_EQ(WTERMSIG(r.status), SIGSEGV);
}

TEST_F(JobManagerTest, RusageIsReported) {
  Result r = Collect(StartOk(Spec({"sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"})));
  EXPECT_EQ(r.status, 0);
  EXPECT_GT(r.rusage.utime_us + r.rusage.stime_us, 10000);
  EXPECT_GT(r.rusage.maxrss_kb, 0);
}

TEST_F(JobManagerTest, LargeStdoutAndStderrAreSeparateAndComplete) {
  TempDir dir;
  std::string data(5'000'000, '\0');
  std::mt19937 rng(7);
  for (char& c : data) c = static_cast<char>(rng());
  std::string file = dir.path() + "/data";
  std::ofstream(file, std::ios::binary) << data;
  Result r = Collect(StartOk(Spec({"sh", "-c", "cat " + file + " & cat " + file + " >&2; wait"})));
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.size(), data.size());
  EXPECT_EQ(r.err.size(), data.size());
  EXPECT_TRUE(r.out == data) << "stdout differs";
  EXPECT_TRUE(r.err == data) << "stderr differs";
}

TEST_F(JobManagerTest, UnreadOutputBlocksTheJobInsteadOfBeingDropped) {
  const size_t total = 12'000'000;
  int64_t id = StartOk(Spec({"head", "-c", std::to_string(total), "/dev/zero"}));
  std::this_thread::sleep_for(1500ms);
  // Nothing was acknowledged: remoted stopped reading at its high-water mark, so head is
  // still blocked in write(2).
  auto guests = jobs_->Guests();
  ASSERT_EQ(guests.size(), 1u);
  pid_t pid = guests[0].local_pid;
  char state = ProcessState(pid);
  EXPECT_TRUE(state == 'S' || state == 'R') << "head is in state " << state;
  auto o = jobs_->ReadOutput(id, 0, 0, 0);
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(o->exited);
  Result r = Collect(id);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.size(), total);
  EXPECT_EQ(r.out.find_first_not_of('\0'), std::string::npos);
}

TEST_F(JobManagerTest, StdinOffsetsMakeRetriesHarmless) {
  int64_t id = StartOk(Spec({"cat"}));
  auto a = jobs_->WriteInput(id, 0, "hello ", false);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(*a, 6);
  // The home lost the reply and sends the same bytes again, plus more.
  a = jobs_->WriteInput(id, 0, "hello world\n", false);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 12);
  a = jobs_->WriteInput(id, 6, "world\n", false);  // a duplicated retry
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 12);
  EXPECT_EQ(jobs_->WriteInput(id, 20, "gap", false).status().code(), StatusCode::kInvalidArgument);
  // Acknowledging nothing (ReadUntil would, if cat echoes "hello " and "world\n" apart).
  std::string seen;
  for (int i = 0; i < 400 && seen != "hello world\n"; ++i) {
    auto o = jobs_->ReadOutput(id, 0, 0, 500);
    ASSERT_TRUE(o.ok());
    seen = o->stdout_data;
    if (seen != "hello world\n") std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(seen, "hello world\n");
  a = jobs_->WriteInput(id, 12, "bye\n", true);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 16);
  a = jobs_->WriteInput(id, 12, "bye\n", true);  // the EOF call retried
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 16);
  Result r = Collect(id);
  // Collect starts at offset 0 again: nothing was acknowledged, so nothing was dropped.
  EXPECT_EQ(r.out, "hello world\nbye\n");
  EXPECT_EQ(r.status, 0);
}

TEST_F(JobManagerTest, EnvCwdUmaskAndRlimitsArrive) {
  TempDir dir;
  rpc::ExecSpec s = Spec({"sh", "-c", "echo $FOO; pwd; umask; ulimit -n; ulimit -Hn"});
  s.env.push_back("FOO=bar baz");
  s.cwd = dir.path();
  s.umask = 027;
  rpc::Rlimit nofile;
  nofile.resource = RLIMIT_NOFILE;
  nofile.soft = 123;
  nofile.hard = 456;
  s.rlimits.push_back(nofile);
  Result r = Collect(StartOk(s));
  EXPECT_EQ(r.out, "bar baz\n" + dir.path() + "\n0027\n123\n456\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.status, 0);
}

TEST_F(JobManagerTest, KiteVariablesAreSetAndCannotBeForged) {
  rpc::ExecSpec s = Spec({"sh", "-c", "echo $KITE_JOB; echo $KITE_HOME; echo $KITE_SOCK; echo $$; echo ${LD_PRELOAD-unset}"});
  s.env.push_back("KITE_JOB=1:2:3");
  s.env.push_back("KITE_HOME=forged");
  Result r = Collect(StartOk(s));
  std::istringstream lines(r.out);
  std::string job, home, sock, pid, preload;
  std::getline(lines, job);
  std::getline(lines, home);
  std::getline(lines, sock);
  std::getline(lines, pid);
  std::getline(lines, preload);
  EXPECT_EQ(job, "4242:17:" + pid);
  EXPECT_EQ(home, "home1");
  EXPECT_EQ(sock, "/tmp/kite-test-run/homed.sock");
  EXPECT_EQ(preload, "unset");  // no shim configured
}

TEST_F(JobManagerTest, ShimIsPrependedToLdPreload) {
  TempDir dir;
  // Any readable file stands for the shim here; the loader's complaints go to stderr.
  config_.shim_path = dir.path() + "/libfake-shim.so";
  std::ofstream(config_.shim_path) << "";
  Recreate();
  rpc::ExecSpec s = Spec({"sh", "-c", "echo $LD_PRELOAD"});
  s.env.push_back("LD_PRELOAD=/other/lib.so");
  Result r = Collect(StartOk(s));
  EXPECT_EQ(r.out, config_.shim_path + ":/other/lib.so\n");
}

TEST_F(JobManagerTest, RunsAsTheRequestedUser) {
  rpc::ExecSpec s = Spec({"sh", "-c", "id -u; id -g; id -G"});
  s.creds.uid = 65534;
  s.creds.gid = 65534;
  s.creds.groups = {65534};
  Result r = Collect(StartOk(s));
  EXPECT_EQ(r.out, "65534\n65534\n65534\n");
  EXPECT_EQ(r.status, 0);
}

TEST_F(JobManagerTest, RootIsRefusedUnlessAllowed) {
  config_.allow_root = false;
  Recreate();
  auto id = jobs_->Start(Spec({"true"}));
  EXPECT_EQ(id.status().code(), StatusCode::kPermissionDenied) << id.status().ToString();
  EXPECT_EQ(jobs_->free_slots(), config_.slots);
}

TEST_F(JobManagerTest, MalformedRequestsAreRefusedWithoutTakingASlot) {
  std::vector<rpc::ExecSpec> bad;
  bad.push_back(Spec({}));
  bad.push_back(Spec({""}));
  rpc::ExecSpec s = Spec({"true"});
  s.cwd = "relative/dir";
  bad.push_back(s);
  s = Spec({"true"});
  s.umask = 01000;
  bad.push_back(s);
  s = Spec({"true"});
  s.tty_mask = 8;
  bad.push_back(s);
  s = Spec({"true"});
  rpc::Rlimit lim;
  lim.resource = RLIMIT_NOFILE;
  lim.soft = 10;
  lim.hard = 5;
  s.rlimits.push_back(lim);
  bad.push_back(s);
  s = Spec({"true"});
  s.rlimits.push_back(lim);
  s.rlimits.back().resource = 999;
  bad.push_back(s);
  s = Spec({"true"});
  s.home_host = "";
  bad.push_back(s);
  s = Spec({"true"});
  s.vpid = 0;
  bad.push_back(s);
  s = Spec({"true"});
  s.env.push_back("NOEQUALS");
  bad.push_back(s);
  s = Spec({"true"});
  s.creds.uid = -5;
  bad.push_back(s);
  s = Spec({std::string("a\0b", 3)});
  bad.push_back(s);
  for (size_t i = 0; i < bad.size(); ++i) {
    auto id = jobs_->Start(bad[i]);
    EXPECT_EQ(id.status().code(), StatusCode::kInvalidArgument) << "case " << i << ": " << id.status().ToString();
  }
  EXPECT_EQ(jobs_->free_slots(), config_.slots);
}

TEST_F(JobManagerTest, MissingCwdIsAFailedPrecondition) {
  rpc::ExecSpec s = Spec({"true"});
  s.cwd = "/nonexistent-kite-test-dir";
  auto id = jobs_->Start(s);
  EXPECT_EQ(id.status().code(), StatusCode::kFailedPrecondition) << id.status().ToString();
  EXPECT_EQ(jobs_->free_slots(), config_.slots);
  EXPECT_TRUE(jobs_->Guests().empty());
}

TEST_F(JobManagerTest, PtyJobSeesATerminal) {
  rpc::ExecSpec s = Spec({"python3", "-c",
                          "import os\n"
                          "print(os.isatty(0), os.isatty(1), os.isatty(2))\n"
                          "sz = os.get_terminal_size(1)\n"
                          "print(sz.lines, sz.columns)\n"
                          "print(os.getsid(0) == os.getpid(), os.tcgetpgrp(1) == os.getpgrp())\n"});
  s.tty_mask = JobLauncher::kTtyStdout;  // only stdout was a terminal at home
  rpc::WinSize ws;
  ws.rows = 33;
  ws.cols = 101;
  s.__set_winsize(ws);
  Result r = Collect(StartOk(s));
  EXPECT_EQ(r.out, "False True False\r\n33 101\r\nTrue True\r\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.status, 0);
}

TEST_F(JobManagerTest, PtyStdinEofEndsAnUnterminatedLine) {
  rpc::ExecSpec s = Spec({"cat"});
  s.tty_mask = JobLauncher::kTtyStdin | JobLauncher::kTtyStdout;
  int64_t id = StartOk(s);
  auto a = jobs_->WriteInput(id, 0, "abc", true);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 3);
  Result r = Collect(id, 20s);
  // The terminal echoes "abc", then cat copies the line ended by the first ^D; the second
  // ^D, on an empty line, is cat's EOF.
  EXPECT_EQ(r.out, "abcabc") << r.err;
  EXPECT_EQ(r.status, 0) << r.err;
}

TEST_F(JobManagerTest, ResizeReachesThePty) {
  rpc::ExecSpec s = Spec({"python3", "-c",
                          "import os, signal\n"
                          "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGWINCH})\n"
                          "print('ready', flush=True)\n"
                          "signal.sigwait({signal.SIGWINCH})\n"
                          "sz = os.get_terminal_size(1)\n"
                          "print('size', sz.lines, sz.columns)\n"});
  s.tty_mask = JobLauncher::kTtyStdout;
  int64_t id = StartOk(s);
  ASSERT_THAT(ReadUntil(id, "ready"), HasSubstr("ready"));
  rpc::WinSize ws;
  ws.rows = 50;
  ws.cols = 120;
  ASSERT_TRUE(jobs_->Resize(id, ws).ok());
  Result r = Collect(id, 20s);
  EXPECT_THAT(r.out, HasSubstr("size 50 120")) << r.err;
  EXPECT_EQ(r.status, 0);
}

TEST_F(JobManagerTest, SignalsReachTheJob) {
  int64_t id = StartOk(Spec({"sleep", "100"}));
  pid_t pid = jobs_->Guests().at(0).local_pid;
  EXPECT_EQ(jobs_->Signal(id, 65).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs_->Signal(id, -1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs_->Signal(12345, SIGTERM).code(), StatusCode::kNotFound);
  ASSERT_TRUE(jobs_->Signal(id, SIGSTOP).ok());
  for (int i = 0; i < 100 && ProcessState(pid) != 'T'; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(ProcessState(pid), 'T');
  ASSERT_TRUE(jobs_->Signal(id, SIGCONT).ok());
  for (int i = 0; i < 100 && ProcessState(pid) == 'T'; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_NE(ProcessState(pid), 'T');
  ASSERT_TRUE(jobs_->Signal(id, SIGTERM).ok());
  Result r = Collect(id, 20s);
  ASSERT_TRUE(WIFSIGNALED(r.status)) << std::hex << r.status;
  EXPECT_EQ(WTERMSIG(r.status), SIGTERM);
}

// One background child in the job's process group; one that left it with setsid; and a
// setsid'd grandchild whose parent has exited (an orphan, reparented to the manager). Only the
// job's cgroup still knows the last two.
void ExpectReleaseKillsEverything(JobManager& jobs, int64_t id) {
  pid_t root = jobs.Guests().at(0).local_pid;
  std::string out;
  for (int i = 0; i < 100 && std::count(out.begin(), out.end(), '\n') < 3; ++i) {
    auto o = jobs.ReadOutput(id, out.size(), 0, 200);
    ASSERT_TRUE(o.ok());
    out += o->stdout_data;
  }
  std::istringstream lines(out);
  pid_t bg = 0, escaped = 0, orphan = 0;
  lines >> bg >> escaped >> orphan;
  ASSERT_GT(bg, 0) << out;
  ASSERT_GT(escaped, 0) << out;
  ASSERT_GT(orphan, 0) << out;
  ASSERT_TRUE(ProcessExists(bg));
  ASSERT_TRUE(ProcessExists(orphan));
  std::vector<pid_t> members = jobs.cgroups().Processes(id);
  for (pid_t p : {root, bg, escaped, orphan})
    EXPECT_NE(std::find(members.begin(), members.end(), p), members.end()) << p << " is not in the job's cgroup";
  ASSERT_TRUE(jobs.Release(id).ok());
  EXPECT_TRUE(WaitGone(root, 2s)) << "root " << root;
  EXPECT_TRUE(WaitGone(bg, 2s)) << "background child " << bg;
  EXPECT_TRUE(WaitGone(escaped, 2s)) << "setsid child " << escaped;
  EXPECT_TRUE(WaitGone(orphan, 2s)) << "setsid grandchild " << orphan;
  EXPECT_EQ(jobs.Release(id).code(), StatusCode::kNotFound);
  EXPECT_EQ(jobs.ReadOutput(id, 0, 0, 0).status().code(), StatusCode::kNotFound);
}

const char kEscapingJob[] =
    "sleep 1000 & echo $!; setsid sleep 1000 & echo $!; "
    "sh -c 'setsid sleep 1000 & echo $!' </dev/null; sleep 1000";

TEST_F(JobManagerTest, ReleaseKillsEverythingTheJobStarted) {
  if (!jobs_->cgroups().contains_jobs()) GTEST_SKIP() << "no cgroups here: setsid escapes the process group";
  EXPECT_EQ(jobs_->cgroups().mode(), JobCgroups::Mode::kUnified) << "this kernel has clone3(CLONE_INTO_CGROUP)";
  int64_t id = StartOk(Spec({"sh", "-c", kEscapingJob}));
  ExpectReleaseKillsEverything(*jobs_, id);
  EXPECT_EQ(jobs_->free_slots(), config_.slots);
}

// The group of v1 `controller`, or the v2 group for "", in /proc/<pid>/cgroup text.
std::string GroupIn(const std::string& proc_cgroup, const std::string& controller) {
  std::istringstream in(proc_cgroup);
  for (std::string line; std::getline(in, line);) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string names = line.substr(a + 1, b - a - 1);
    if (controller.empty() ? names.empty() && line.compare(0, a, "0") == 0
                           : ("," + names + ",").find("," + controller + ",") != std::string::npos)
      return line.substr(b + 1);
  }
  return "";
}

// Whether `dir` (absolute) names the group `group` (relative to its hierarchy's mount).
bool SameGroup(const std::string& dir, const std::string& group) {
  return !group.empty() && dir.size() >= group.size() && dir.compare(dir.size() - group.size(), group.size(), group) == 0 &&
         (group == "/" || dir[dir.size() - group.size() - 1] != '/');
}

// Unified mode: no cgroup attach on the start path. The root is born in its own v2 group, and
// its v1 groups are the ones it inherited from the manager's process: the host's guest-level
// groups, with no job group of its own.
TEST_F(JobManagerTest, JobsStartInTheirGroupsWithoutAnAttach) {
  const JobCgroups& cg = jobs_->cgroups();
  if (cg.mode() != JobCgroups::Mode::kUnified) GTEST_SKIP() << "no cgroup v2 / clone3 here (attach mode)";
  std::string own = ReadFile("/proc/self/cgroup");
  int64_t id = StartOk(Spec({"sleep", "100"}));
  pid_t pid = jobs_->Guests().at(0).local_pid;
  std::string job = ReadFile("/proc/" + std::to_string(pid) + "/cgroup");
  EXPECT_THAT(ReadFile(cg.UnifiedJobDir(id) + "/cgroup.procs"), HasSubstr(std::to_string(pid)));
  EXPECT_TRUE(SameGroup(cg.UnifiedJobDir(id), GroupIn(job, ""))) << job << " vs " << cg.UnifiedJobDir(id);
  for (const std::string& c : cg.controllers()) {
    EXPECT_EQ(GroupIn(job, c), GroupIn(own, c)) << c << ": the job's group is not the manager's";
    EXPECT_TRUE(SameGroup(cg.HostDir(c), GroupIn(own, c))) << c << ": " << GroupIn(own, c) << " vs " << cg.HostDir(c);
    EXPECT_EQ(cg.JobDir(c, id), "");
  }
  std::string cpu = cg.HostDir("cpu");
  if (!cpu.empty()) {
    EXPECT_EQ(ReadFile(cpu + "/cpu.shares"), std::to_string(config_.guest_cpu_shares) + "\n");
  }
  ASSERT_TRUE(jobs_->Release(id).ok());
  EXPECT_NE(::access(cg.UnifiedJobDir(id).c_str(), F_OK), 0) << "v2 job group left behind";
}

// With a memory limit the manager shares the guests' memory group: it lowers its own
// oom_score_adj (the OOM killer picks a guest at the limit, not it) and its jobs get the
// original value back.
TEST_F(JobManagerTest, MemoryLimitMakesGuestsNotTheManagerTheOomVictims) {
  std::string original = ReadFile("/proc/self/oom_score_adj");
  config_.guest_memory_limit_mb = 512;
  Recreate();
  const JobCgroups& cg = jobs_->cgroups();
  if (cg.mode() != JobCgroups::Mode::kUnified || cg.HostDir("memory").empty())
    GTEST_SKIP() << "no v2 job groups or no v1 memory controller";
  EXPECT_EQ(ReadFile(cg.HostDir("memory") + "/memory.limit_in_bytes"), std::to_string(512 << 20) + "\n");
  if (!cg.oom_score_adj()) {
    // Lowering it needs CAP_SYS_RESOURCE, which a container may withhold even from root.
    int adj = std::atoi(original.c_str());
    std::ofstream lower("/proc/self/oom_score_adj");
    lower << adj - 1 << std::flush;
    ASSERT_FALSE(lower.good()) << "oom_score_adj can be lowered here, but the manager did not";
    GTEST_SKIP() << "this process may not lower its oom_score_adj (no CAP_SYS_RESOURCE)";
  }
  EXPECT_EQ(*cg.oom_score_adj(), std::atoi(original.c_str()));
  EXPECT_EQ(ReadFile("/proc/self/oom_score_adj"), "-500\n");
  int64_t id = StartOk(Spec({"sleep", "100"}));
  pid_t pid = jobs_->Guests().at(0).local_pid;
  EXPECT_EQ(ReadFile("/proc/" + std::to_string(pid) + "/oom_score_adj"), original);
  ASSERT_TRUE(jobs_->Release(id).ok());
  jobs_.reset();
  EXPECT_EQ(ReadFile("/proc/self/oom_score_adj"), original);
}

// The fallback when clone3(CLONE_INTO_CGROUP) is unusable: a v1 group per job and controller,
// the root attached after fork, killed with the freezer's help.
TEST_F(JobManagerTest, AttachModeStillContainsJobs) {
  JobCgroups::TEST_DisableCloneIntoCgroup(true);
  Recreate();
  const JobCgroups& cg = jobs_->cgroups();
  ASSERT_EQ(cg.mode(), JobCgroups::Mode::kAttach);
  if (!cg.contains_jobs()) GTEST_SKIP() << "no usable cgroup v1 controller";
  EXPECT_EQ(cg.UnifiedJobDir(1), "");
  int64_t id = StartOk(Spec({"sleep", "100"}));
  pid_t pid = jobs_->Guests().at(0).local_pid;
  std::string job = ReadFile("/proc/" + std::to_string(pid) + "/cgroup");
  for (const std::string& c : cg.controllers()) {
    std::string dir = cg.JobDir(c, id);
    EXPECT_THAT(ReadFile(dir + "/cgroup.procs"), HasSubstr(std::to_string(pid))) << dir;
    EXPECT_TRUE(SameGroup(dir, GroupIn(job, c))) << c << ": " << job;
  }
  ASSERT_TRUE(jobs_->Release(id).ok());
  for (const std::string& c : cg.controllers())
    EXPECT_NE(::access(cg.JobDir(c, id).c_str(), F_OK), 0) << c << " group left behind";
  ExpectReleaseKillsEverything(*jobs_, StartOk(Spec({"sh", "-c", kEscapingJob})));
  EXPECT_EQ(Collect(StartOk(Spec({"sh", "-c", "exit 3"}))).status, 3 << 8);
}

// A job group left by a crashed manager (here: made by hand, with a process in it) is killed
// and removed by the next one.
TEST_F(JobManagerTest, StaleJobGroupsAreKilledAndRemoved) {
  if (jobs_->cgroups().mode() != JobCgroups::Mode::kUnified) GTEST_SKIP() << "attach mode";
  std::string stale = jobs_->cgroups().UnifiedJobDir(7);
  ASSERT_EQ(::mkdir(stale.c_str(), 0755), 0) << stale;
  pid_t child = ::fork();
  if (child == 0) {
    ::execlp("sleep", "sleep", "1000", nullptr);
    ::_exit(127);
  }
  ASSERT_GT(child, 0);
  std::ofstream(stale + "/cgroup.procs") << child << std::flush;
  ASSERT_THAT(ReadFile(stale + "/cgroup.procs"), HasSubstr(std::to_string(child)));
  Recreate();  // the old manager cannot remove its host group (job-7 is in it); the new one cleans up
  // Reaped by the new manager (a subreaper reaping every child, possibly while we look), or a
  // zombie of ours.
  auto dead = [&] {
    char buf[512];
    int fd = ::open(("/proc/" + std::to_string(child) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return true;
    std::string stat(buf, static_cast<size_t>(n));
    size_t paren = stat.rfind(')');
    return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] == 'Z' || stat[paren + 2] == 'X';
  };
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!dead() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(dead()) << "pid " << child << " survived";
  ::waitpid(child, nullptr, WNOHANG);
  EXPECT_NE(::access(stale.c_str(), F_OK), 0) << stale << " left behind";
}

TEST_F(JobManagerTest, SlotsRunOut) {
  std::vector<int64_t> ids;
  for (int i = 0; i < config_.slots; ++i) ids.push_back(StartOk(Spec({"sleep", "100"})));
  EXPECT_EQ(jobs_->free_slots(), 0);
  auto full = jobs_->Start(Spec({"true"}));
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted) << full.status().ToString();
  ASSERT_TRUE(jobs_->Release(ids[0]).ok());
  EXPECT_EQ(jobs_->free_slots(), 1);
  Result r = Collect(StartOk(Spec({"true"})));
  EXPECT_EQ(r.status, 0);
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_TRUE(jobs_->Release(ids[i]).ok());
  EXPECT_EQ(jobs_->free_slots(), config_.slots);
}

TEST_F(JobManagerTest, ActiveOwnerRefusesGuests) {
  ASSERT_TRUE(owner_->SetOverride(rpc::OwnerOverride::FORCE_ACTIVE).ok());
  auto id = jobs_->Start(Spec({"true"}));
  EXPECT_EQ(id.status().code(), StatusCode::kFailedPrecondition) << id.status().ToString();
  EXPECT_EQ(jobs_->free_slots(), config_.slots);
  ASSERT_TRUE(owner_->SetOverride(rpc::OwnerOverride::AUTO).ok());
  EXPECT_EQ(Collect(StartOk(Spec({"true"}))).status, 0);
}

TEST_F(JobManagerTest, ExecFailuresExitLikeAShell) {
  Result r = Collect(StartOk(Spec({"no-such-command-kite"})));
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 127);
  EXPECT_EQ(r.err, "kite: no-such-command-kite: No such file or directory\n");

  TempDir dir;
  std::string script = dir.path() + "/not-executable";
  std::ofstream(script) << "#!/bin/sh\necho hi\n";
  ::chmod(script.c_str(), 0644);
  r = Collect(StartOk(Spec({script})));
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 126);
  EXPECT_EQ(r.err, "kite: " + script + ": Permission denied\n");

  // No #! line: run by /bin/sh, as execvp does.
  std::string plain = dir.path() + "/plain-script";
  std::ofstream(plain) << "echo from-sh \"$1\"\n";
  ::chmod(plain.c_str(), 0755);
  r = Collect(StartOk(Spec({plain, "arg1"})));
  EXPECT_EQ(r.out, "from-sh arg1\n");
  EXPECT_EQ(r.status, 0);
}

TEST_F(JobManagerTest, PathComesFromTheJobsEnvironment) {
  TempDir dir;
  std::string tool = dir.path() + "/kite-test-tool";
  std::ofstream(tool) << "#!/bin/sh\necho found-me\n";
  ::chmod(tool.c_str(), 0755);
  rpc::ExecSpec s = Spec({"kite-test-tool"});
  s.env = {"PATH=/nonexistent:" + dir.path()};
  Result r = Collect(StartOk(s));
  EXPECT_EQ(r.out, "found-me\n");
  EXPECT_EQ(r.status, 0);
}

TEST_F(JobManagerTest, ReadOutputLongPollsAndValidates) {
  EXPECT_EQ(jobs_->ReadOutput(999, 0, 0, 0).status().code(), StatusCode::kNotFound);
  int64_t id = StartOk(Spec({"sh", "-c", "sleep 0.3; echo hi"}));
  EXPECT_EQ(jobs_->ReadOutput(id, 0, 0, -1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(jobs_->ReadOutput(id, 5, 0, 0).status().code(), StatusCode::kInvalidArgument);  // ack past the end
  auto start = std::chrono::steady_clock::now();
  auto o = jobs_->ReadOutput(id, 0, 0, 5000);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->stdout_data, "hi\n");
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 3s);
  EXPECT_EQ(Collect(id).status, 0);
}

TEST_F(JobManagerTest, UncollectedJobsAreGarbageCollected) {
  jobs_->TEST_SetGcAfter(300ms);
  int64_t id = StartOk(Spec({"true"}));
  // Wait for the exit without collecting the output of the final reply.
  for (int i = 0; i < 100; ++i) {
    auto o = jobs_->ReadOutput(id, 0, 0, 100);
    ASSERT_TRUE(o.ok());
    if (o->exited) break;
  }
  // The slot came back at the exit (a build's next recipe may take it at once); the job itself
  // waits for its home's release, or for the GC.
  EXPECT_EQ(jobs_->free_slots(), config_.slots);
  EXPECT_TRUE(jobs_->ReadOutput(id, 0, 0, 0).ok());
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(jobs_->ReadOutput(id, 0, 0, 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(jobs_->free_slots(), config_.slots);
}

TEST_F(JobManagerTest, DestroyingTheManagerKillsEveryJob) {
  int64_t id = StartOk(Spec({"sh", "-c", "sleep 1000 & echo $!; sleep 1000"}));
  pid_t root = jobs_->Guests().at(0).local_pid;
  std::string out = ReadUntil(id, "\n");
  pid_t bg = std::atoi(out.c_str());
  ASSERT_GT(bg, 0);
  jobs_.reset();
  EXPECT_TRUE(WaitGone(root, 2s)) << "root " << root;
  EXPECT_TRUE(WaitGone(bg, 2s)) << "background child " << bg;
}

}  // namespace
}  // namespace kite
