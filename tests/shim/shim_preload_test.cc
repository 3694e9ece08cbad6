// libkite-shim.so preloaded into a real program (shim_probe): what a job process sees, and
// that a process without a (valid) job environment sees exactly what it would without the shim.
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/shim/fake_homed.h"
#include "tests/shim/test_util.h"

namespace kite::shim {
namespace {

using testing::FakeHomed;
using testing::ProbeOptions;
using testing::ProbeResult;
using testing::RunProbe;
using testing::TempDir;

constexpr int kVpid = 4242;
constexpr int kHomePpid = 4000;
const char kRootJob[] = "KITE_JOB=4242:4000:{self}";  // the probe is the job's root
const char kHome[] = "KITE_HOME=homebox";

std::string RealNodename() {
  utsname u;
  EXPECT_EQ(::uname(&u), 0);
  return u.nodename;
}

std::string Hex(const std::string& s) {
  std::string out;
  char b[3];
  for (unsigned char c : s) {
    snprintf(b, sizeof b, "%02x", c);
    out += b;
  }
  return out;
}

ProbeOptions WithEnv(std::vector<std::string> env) {
  ProbeOptions opts;
  opts.env = std::move(env);
  return opts;
}

ProbeOptions NoPreload(ProbeOptions opts) {
  opts.preload = false;
  return opts;
}

ProbeOptions NoSetsid(ProbeOptions opts) {
  opts.setsid = false;
  return opts;
}

void ExpectExitedOk(const ProbeResult& r) {
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0)
      << "status " << r.status << ", output:\n" << r.out;
}

TEST(ShimPreloadTest, RootSeesItsVpidAndHome) {
  ProbeResult r = RunProbe({"ids"}, WithEnv({kRootJob, kHome}));
  ExpectExitedOk(r);
  EXPECT_EQ(r.Int("pid"), kVpid);
  EXPECT_EQ(r.Int("ppid"), kHomePpid);
  EXPECT_EQ(r.Int("pgrp"), kVpid);
  EXPECT_EQ(r.Int("pgid0"), kVpid);
  EXPECT_EQ(r.Int("sid0"), kVpid);
  EXPECT_EQ(r.kv["nodename"], "homebox");
  EXPECT_EQ(r.kv["hostname"], "homebox");
  utsname u;
  ASSERT_EQ(::uname(&u), 0);
  EXPECT_EQ(r.kv["sysname"], u.sysname);
  EXPECT_EQ(r.kv["release"], u.release);
  EXPECT_EQ(r.kv["machine"], u.machine);
}

TEST(ShimPreloadTest, VpidArgumentsTranslateBack) {
  ProbeResult r = RunProbe({"pgid", std::to_string(kVpid)}, WithEnv({kRootJob, kHome}));
  ExpectExitedOk(r);
  EXPECT_EQ(r.Int("getpgid"), kVpid);
  EXPECT_EQ(r.Int("getsid"), kVpid);
}

TEST(ShimPreloadTest, ChildOfRootSeesVpidAsParent) {
  ProbeResult r = RunProbe({"fork"}, WithEnv({kRootJob, kHome}));
  ExpectExitedOk(r);
  int child = r.Int("forked");
  EXPECT_EQ(r.Int("child_pid"), child);  // its real pid, as fork() told the parent
  EXPECT_NE(child, kVpid);
  EXPECT_EQ(r.Int("child_ppid"), kVpid);
  EXPECT_EQ(r.Int("child_pgrp"), kVpid);
  EXPECT_EQ(r.Int("child_setpgid"), 0);  // setpgid(0, vpid) joins the root's real group
  EXPECT_EQ(r.Int("child_status"), 0);
}

TEST(ShimPreloadTest, NonRootProcessSeesRealPidAndVirtualParent) {
  // The root is this test process: the probe is one of its children, not the root.
  std::string job = "KITE_JOB=4242:4000:" + std::to_string(::getpid());
  ProbeResult r = RunProbe({"ids"}, NoSetsid(WithEnv({job, kHome})));
  ExpectExitedOk(r);
  EXPECT_NE(r.Int("pid"), kVpid);
  EXPECT_EQ(r.Int("ppid"), kVpid);
  EXPECT_EQ(r.Int("pgrp"), ::getpgrp() == ::getpid() ? kVpid : ::getpgrp());
  EXPECT_EQ(r.kv["hostname"], "homebox");
}

// Without KITE_JOB, or with a malformed job environment, the shim changes nothing.
void ExpectNative(const std::vector<std::string>& env) {
  SCOPED_TRACE(::testing::PrintToString(env));
  ProbeResult r = RunProbe({"ids"}, WithEnv(env));
  ExpectExitedOk(r);
  int pid = r.Int("pid");
  EXPECT_NE(pid, kVpid);
  EXPECT_EQ(r.Int("ppid"), ::getpid());
  EXPECT_EQ(r.Int("pgrp"), pid);  // setsid() made it a leader
  EXPECT_EQ(r.Int("sid0"), pid);
  EXPECT_EQ(r.kv["nodename"], RealNodename());
  EXPECT_EQ(r.kv["hostname"], RealNodename());
}

TEST(ShimPreloadTest, WithoutJobIsNative) {
  ExpectNative({});
  ExpectNative({kHome});  // KITE_HOME alone does nothing
}

TEST(ShimPreloadTest, MalformedJobStaysInert) {
  for (const char* job : {"KITE_JOB=", "KITE_JOB=abc", "KITE_JOB=1:2", "KITE_JOB=4242:4000:{self}:1",
                          "KITE_JOB=99999999999999999999:1:{self}", "KITE_JOB=4242:4000:-{self}",
                          "KITE_JOB=-4242:4000:{self}", "KITE_JOB=0:4000:{self}",
                          "KITE_JOB=4242: 4000:{self}"}) {
    ExpectNative({job, kHome});
  }
  ExpectNative({kRootJob});                                        // no KITE_HOME
  ExpectNative({kRootJob, "KITE_HOME="});                          // empty
  ExpectNative({kRootJob, "KITE_HOME=" + std::string(65, 'h')});   // too long for utsname
  ExpectNative({kRootJob, kHome, "KITE_SOCK=relative.sock"});
}

TEST(ShimPreloadTest, WithoutPreloadIsNative) {
  ProbeResult r = RunProbe({"ids"}, NoPreload(WithEnv({kRootJob, kHome})));
  ExpectExitedOk(r);
  EXPECT_NE(r.Int("pid"), kVpid);
  EXPECT_EQ(r.kv["hostname"], RealNodename());
}

// gethostname with short buffers, through __gethostname_chk (the probe is built with
// _FORTIFY_SOURCE and passes a run-time length): glibc's semantics with the home's name.
TEST(ShimPreloadTest, GethostnameShortBuffer) {
  const std::string name = "homebox";
  struct Case {
    size_t len;
    int rc, err;
    std::string bytes;
  } cases[] = {
      {8, 0, 0, name + '\0'},
      {9, 0, 0, name + '\0' + 'X'},
      {7, -1, ENAMETOOLONG, name},
      {3, -1, ENAMETOOLONG, "hom"},
      {0, -1, ENAMETOOLONG, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.len);
    ProbeResult r = RunProbe({"hostname", std::to_string(c.len)}, WithEnv({kRootJob, kHome}));
    ExpectExitedOk(r);
    EXPECT_EQ(r.Int("rc"), c.rc);
    EXPECT_EQ(r.Int("errno"), c.err);
    EXPECT_EQ(r.kv["bytes"], Hex(c.bytes));
  }
  // Inert: the shim's own gethostname must match glibc's for the real name.
  std::string real = RealNodename();
  ProbeResult r = RunProbe({"hostname", std::to_string(real.size())}, WithEnv({}));
  EXPECT_EQ(r.Int("rc"), -1);
  EXPECT_EQ(r.Int("errno"), ENAMETOOLONG);
  EXPECT_EQ(r.kv["bytes"], Hex(real));
}

TEST(ShimPreloadTest, TerminalForegroundGroupIsVirtual) {
  ProbeResult r = RunProbe({"tty"}, WithEnv({kRootJob, kHome}));
  ExpectExitedOk(r);
  EXPECT_EQ(r.Int("tcgetpgrp"), kVpid);
  EXPECT_EQ(r.Int("tcsetpgrp"), 0) << "errno " << r.Int("tcsetpgrp_errno");
}

// ---- kill ---------------------------------------------------------------------------------

class ShimKillTest : public ::testing::Test {
 protected:
  ShimKillTest() : homed_(dir_.path()) {}
  ProbeOptions Root() const {
    return WithEnv({kRootJob, kHome, "KITE_SOCK=" + homed_.path()});
  }
  // A pid no process has here: a process at home.
  static pid_t HomePid() { return testing::UnusedPid(); }
  TempDir dir_;
  FakeHomed homed_;
};

TEST_F(ShimKillTest, KillVpidZeroIsLocal) {
  ProbeResult r = RunProbe({"kill", std::to_string(kVpid), "0"}, Root());
  ExpectExitedOk(r);
  EXPECT_EQ(r.Int("rc"), 0);
  EXPECT_EQ(r.Int("errno"), 1234);  // untouched on success
  r = RunProbe({"kill", std::to_string(-kVpid), "0"}, Root());
  EXPECT_EQ(r.Int("rc"), 0);
  r = RunProbe({"killpg", std::to_string(kVpid), "0"}, Root());
  EXPECT_EQ(r.Int("rc"), 0);
  EXPECT_EQ(homed_.connections(), 0);
}

TEST_F(ShimKillTest, KillOwnVpidDeliversToSelf) {
  ProbeResult r = RunProbe({"killself"}, Root());
  ExpectExitedOk(r);
  EXPECT_EQ(r.Int("rc"), 0);
  EXPECT_EQ(r.Int("got_usr1"), 1);
  EXPECT_EQ(homed_.connections(), 0);
}

TEST_F(ShimKillTest, KillChildIsLocal) {
  ProbeResult r = RunProbe({"killchild"}, Root());
  ExpectExitedOk(r);
  EXPECT_EQ(r.Int("rc"), 0);
  EXPECT_EQ(r.Int("signaled"), 1);
  EXPECT_EQ(r.Int("termsig"), SIGKILL);
  EXPECT_EQ(homed_.connections(), 0);
}

TEST_F(ShimKillTest, KillHomePidIsForwarded) {
  pid_t home_pid = HomePid();
  ProbeResult r = RunProbe({"kill", std::to_string(home_pid), std::to_string(SIGTERM)}, Root());
  ExpectExitedOk(r);
  EXPECT_EQ(r.Int("rc"), 0);
  EXPECT_EQ(r.Int("errno"), 1234);
  auto reqs = homed_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].home, "homebox");
  EXPECT_EQ(reqs[0].pid, home_pid);
  EXPECT_EQ(reqs[0].signo, SIGTERM);
}

TEST_F(ShimKillTest, KillHomeParentIsForwarded) {
  // The deputy's parent at home (what getppid() shows) is not on this host.
  ProbeResult r = RunProbe({"kill", std::to_string(kHomePpid), std::to_string(SIGCHLD)}, Root());
  ExpectExitedOk(r);
  auto reqs = homed_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].pid, kHomePpid);
  EXPECT_EQ(reqs[0].signo, SIGCHLD);
}

TEST_F(ShimKillTest, HomeErrnoPropagates) {
  homed_.set_reply_err(EPERM);
  ProbeResult r = RunProbe({"kill", std::to_string(HomePid()), std::to_string(SIGKILL)}, Root());
  ExpectExitedOk(r);
  EXPECT_EQ(r.Int("rc"), -1);
  EXPECT_EQ(r.Int("errno"), EPERM);
}

TEST_F(ShimKillTest, KillpgHomeGroupIsForwardedNegative) {
  pid_t home_pgrp = HomePid();
  ProbeResult r = RunProbe({"killpg", std::to_string(home_pgrp), std::to_string(SIGINT)}, Root());
  ExpectExitedOk(r);
  EXPECT_EQ(r.Int("rc"), 0);
  auto reqs = homed_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].pid, -home_pgrp);
  EXPECT_EQ(reqs[0].signo, SIGINT);
}

TEST_F(ShimKillTest, LocalProcessOutsideJobIsForwardedNotSignalled) {
  // This test process exists on this host but is not part of the job (the probe's launcher):
  // a kill of its pid means the process with that pid at home.
  ProbeResult r = RunProbe({"kill", std::to_string(::getpid()), "0"}, Root());
  ExpectExitedOk(r);
  auto reqs = homed_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].pid, ::getpid());
}

TEST_F(ShimKillTest, InJobCgroupNonDescendantIsLocal) {
  testing::TestCgroup cg;
  if (!cg.ok()) GTEST_SKIP() << "cannot create a cgroup here";
  // A process in the job's cgroup that does not descend from the root (as an orphan would not)
  // is the job's: signalled here.
  testing::Sleeper stranger;
  ASSERT_TRUE(cg.Join(stranger.pid()));
  ProbeOptions opts = Root();
  opts.cgroup_procs = cg.procs_path();
  ProbeResult r = RunProbe({"kill", std::to_string(stranger.pid()), std::to_string(SIGKILL)}, opts);
  ExpectExitedOk(r);
  EXPECT_EQ(r.Int("rc"), 0);
  int status = stranger.Wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(homed_.connections(), 0);
}

TEST_F(ShimKillTest, UnreachableHomedIsEsrch) {
  ProbeOptions opts = Root();
  opts.env[2] = "KITE_SOCK=" + dir_.path() + "/nobody.sock";
  ProbeResult r = RunProbe({"kill", std::to_string(HomePid()), std::to_string(SIGTERM)}, opts);
  ExpectExitedOk(r);
  EXPECT_EQ(r.Int("rc"), -1);
  EXPECT_EQ(r.Int("errno"), ESRCH);
}

TEST_F(ShimKillTest, BadSignalIsEinval) {
  ProbeResult r = RunProbe({"kill", std::to_string(HomePid()), "65"}, Root());
  ExpectExitedOk(r);
  EXPECT_EQ(r.Int("rc"), -1);
  EXPECT_EQ(r.Int("errno"), EINVAL);
  r = RunProbe({"killpg", "-5", "0"}, Root());
  EXPECT_EQ(r.Int("rc"), -1);
  EXPECT_EQ(r.Int("errno"), EINVAL);
  EXPECT_EQ(homed_.connections(), 0);
}

}  // namespace
}  // namespace kite::shim
