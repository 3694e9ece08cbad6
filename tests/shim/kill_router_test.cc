// KillRouter and JobMembership in-process: which kills stay on this host and which go home.
#include "syscall-shim/signals/kill_router.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include <gtest/gtest.h>

#include "syscall-shim/pids/job_membership.h"
#include "syscall-shim/pids/pid_table.h"
#include "syscall-shim/signals/kill_forwarder.h"
#include "tests/shim/fake_homed.h"
#include "tests/shim/test_util.h"

namespace kite::shim {
namespace {

using testing::Sleeper;
using testing::UnusedPid;

TEST(JobMembershipTest, ReadParent) {
  EXPECT_EQ(JobMembership::ReadParent(::getpid()), ::getppid());
  Sleeper s;
  EXPECT_EQ(JobMembership::ReadParent(s.pid()), ::getpid());
  EXPECT_EQ(JobMembership::ReadParent(UnusedPid()), -1);
}

TEST(JobMembershipTest, DescendantsOfTheRootBelong) {
  // This test process plays the job's root; its child is a job member, its parent is not.
  JobMembership m;
  m.set_real_root(::getpid());
  Sleeper child;
  EXPECT_TRUE(m.DescendsFromRoot(::getpid()));
  EXPECT_TRUE(m.DescendsFromRoot(child.pid()));
  EXPECT_TRUE(m.Contains(child.pid()));
  EXPECT_FALSE(m.DescendsFromRoot(::getppid()));
  EXPECT_FALSE(m.DescendsFromRoot(1));
  EXPECT_FALSE(m.Contains(UnusedPid()));
  EXPECT_FALSE(m.Contains(0));
  EXPECT_FALSE(m.Contains(-5));
}

TEST(JobMembershipTest, SharedCgroupDoesNotCountWithoutOwnCgroup) {
  // The root and its sibling are children of this process, so all three share one cgroup and
  // the root's launcher is this process: the job has no cgroup of its own, and sharing ours
  // proves nothing about the sibling or the launcher.
  Sleeper root, sibling;
  JobMembership m;
  m.set_real_root(root.pid());
  EXPECT_TRUE(m.SharesOurCgroup(sibling.pid()));
  EXPECT_FALSE(m.JobHasOwnCgroup());
  EXPECT_FALSE(m.Contains(sibling.pid()));
  EXPECT_FALSE(m.Contains(::getpid()));
  EXPECT_TRUE(m.Contains(root.pid()));
}

TEST(JobMembershipTest, OwnCgroupCoversNonDescendants) {
  testing::TestCgroup cg;
  if (!cg.ok()) GTEST_SKIP() << "cannot create a cgroup here";
  // In the job's cgroup: the root, a process that does not descend from it (an orphan, say) and
  // the checker; outside it: the root's launcher (this process) and an outsider.
  Sleeper root, stranger, outsider;
  ASSERT_TRUE(cg.Join(root.pid()));
  ASSERT_TRUE(cg.Join(stranger.pid()));
  pid_t checker = ::fork();
  ASSERT_GE(checker, 0);
  if (checker == 0) {
    if (!cg.Join(::getpid())) _exit(100);
    JobMembership m;
    m.set_real_root(root.pid());
    _exit((m.JobHasOwnCgroup() ? 1 : 0) | (m.Contains(stranger.pid()) ? 2 : 0) |
          (m.Contains(outsider.pid()) ? 4 : 0) | (m.Contains(::getppid()) ? 8 : 0));
  }
  int status = 0;
  ASSERT_EQ(::waitpid(checker, &status, 0), checker);
  ASSERT_TRUE(WIFEXITED(status));
  int bits = WEXITSTATUS(status);
  ASSERT_NE(bits, 100) << "checker could not join the cgroup";
  EXPECT_TRUE(bits & 1) << "job has its own cgroup";
  EXPECT_TRUE(bits & 2) << "a process in the job's cgroup belongs to the job";
  EXPECT_FALSE(bits & 4) << "a process outside does not";
  EXPECT_FALSE(bits & 8) << "nor does the launcher";
}

class KillRouterTest : public ::testing::Test {
 protected:
  static constexpr pid_t kVpid = 4242;
  KillRouterTest() : homed_(dir_.path()), router_(&pids_, &members_, &forwarder_) {
    root_ = ::getpid();  // this test process plays the job's root
    pids_.Add(root_, kVpid, 4000);
    members_.set_real_root(root_);
    forwarder_.Configure(homed_.path().c_str(), "homebox", 1000);
  }
  testing::TempDir dir_;
  testing::FakeHomed homed_;
  pid_t root_;
  PidTable pids_;
  JobMembership members_;
  KillForwarder forwarder_;
  KillRouter router_;
};

TEST_F(KillRouterTest, Decide) {
  using A = KillRouter::Action;
  Sleeper child;
  pid_t away = UnusedPid();
  struct Case {
    pid_t in;
    A action;
    pid_t out;
  } cases[] = {
      {0, A::kLocal, 0},
      {-1, A::kLocal, -1},
      {INT_MIN, A::kLocal, INT_MIN},
      {kVpid, A::kLocal, root_},
      {-kVpid, A::kLocal, -root_},
      {child.pid(), A::kLocal, child.pid()},
      {-child.pid(), A::kLocal, -child.pid()},
      {root_, A::kLocal, root_},
      {away, A::kForward, away},
      {-away, A::kForward, -away},
      {::getppid(), A::kForward, ::getppid()},  // exists here, but is not the job's
  };
  for (const Case& c : cases) {
    KillRouter::Route r = router_.Decide(c.in);
    EXPECT_EQ(r.action, c.action) << c.in;
    EXPECT_EQ(r.pid, c.out) << c.in;
  }
  EXPECT_EQ(homed_.connections(), 0);  // deciding never talks to homed
}

TEST_F(KillRouterTest, KillVpidIsLocal) {
  EXPECT_EQ(router_.Kill(kVpid, 0), 0);
  EXPECT_EQ(homed_.connections(), 0);
}

TEST_F(KillRouterTest, KillChildIsLocal) {
  Sleeper child;
  EXPECT_EQ(router_.Kill(child.pid(), SIGKILL), 0);
  int status = child.Wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(homed_.connections(), 0);
}

TEST_F(KillRouterTest, KillElsewhereIsForwarded) {
  pid_t away = UnusedPid();
  homed_.set_reply_err(EPERM);
  EXPECT_EQ(router_.Kill(away, SIGHUP), EPERM);
  auto reqs = homed_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].pid, away);
  EXPECT_EQ(reqs[0].signo, SIGHUP);
  EXPECT_EQ(reqs[0].home, "homebox");
}

TEST_F(KillRouterTest, BadSignalIsEinvalEverywhere) {
  EXPECT_EQ(router_.Kill(kVpid, -1), EINVAL);
  EXPECT_EQ(router_.Kill(kVpid, 65), EINVAL);
  EXPECT_EQ(router_.Kill(UnusedPid(), 65), EINVAL);
  EXPECT_EQ(homed_.connections(), 0);
}

}  // namespace
}  // namespace kite::shim
