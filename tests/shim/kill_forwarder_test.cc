// KillForwarder: the kKill frame on the wire and the errno that comes back, against a fake homed.
#include "syscall-shim/signals/kill_forwarder.h"

#include <signal.h>

#include <cerrno>
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "common/wire.h"
#include "tests/shim/fake_homed.h"
#include "tests/shim/test_util.h"

namespace kite::shim {
namespace {

using testing::FakeHomed;
using testing::TempDir;

TEST(KillForwarderTest, FrameMatchesWireEncoder) {
  for (const char* home : {"h", "homebox", "a-rather-long-host-name.example.org"}) {
    for (int32_t pid : {1, 4242, -4242, 2147483647}) {
      wire::KillMsg msg;
      msg.home = home;
      msg.pid = pid;
      msg.signo = SIGTERM;
      std::string want = wire::Frame(wire::MsgType::kKill, msg);
      char buf[KillForwarder::kMaxFrameBytes];
      size_t n = KillForwarder::EncodeKillFrame(home, pid, SIGTERM, buf, sizeof buf);
      EXPECT_EQ(std::string(buf, n), want) << home << " " << pid;
    }
  }
  std::string longest(64, 'h');
  char buf[KillForwarder::kMaxFrameBytes];
  EXPECT_EQ(KillForwarder::EncodeKillFrame(longest.c_str(), 1, 9, buf, sizeof buf), sizeof buf);
}

TEST(KillForwarderTest, FrameRefusesWhatDoesNotFit) {
  char buf[KillForwarder::kMaxFrameBytes];
  EXPECT_EQ(KillForwarder::EncodeKillFrame(std::string(65, 'h').c_str(), 1, 9, buf, sizeof buf), 0u);
  EXPECT_EQ(KillForwarder::EncodeKillFrame("homebox", 1, 9, buf, 20), 0u);
}

class KillForwarderServerTest : public ::testing::Test {
 protected:
  KillForwarderServerTest() : homed_(dir_.path()) {
    forwarder_.Configure(homed_.path().c_str(), "homebox", /*timeout_ms=*/300);
  }
  TempDir dir_;
  FakeHomed homed_;
  KillForwarder forwarder_;
};

TEST_F(KillForwarderServerTest, DeliversRequestAndSuccess) {
  EXPECT_EQ(forwarder_.Forward(31337, SIGTERM), 0);
  auto reqs = homed_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].home, "homebox");
  EXPECT_EQ(reqs[0].pid, 31337);
  EXPECT_EQ(reqs[0].signo, SIGTERM);
}

TEST_F(KillForwarderServerTest, ProcessGroupStaysNegative) {
  EXPECT_EQ(forwarder_.Forward(-31337, SIGINT), 0);
  auto reqs = homed_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].pid, -31337);
  EXPECT_EQ(reqs[0].signo, SIGINT);
}

TEST_F(KillForwarderServerTest, PropagatesHomeErrno) {
  homed_.set_reply_err(EPERM);
  EXPECT_EQ(forwarder_.Forward(31337, SIGKILL), EPERM);
  homed_.set_reply_err(ESRCH);
  EXPECT_EQ(forwarder_.Forward(31337, 0), ESRCH);
  EXPECT_EQ(homed_.connections(), 2);
}

TEST_F(KillForwarderServerTest, ImplausibleErrnoIsEsrch) {
  homed_.set_reply_err(-5);
  EXPECT_EQ(forwarder_.Forward(31337, SIGTERM), ESRCH);
  homed_.set_reply_err(100000);
  EXPECT_EQ(forwarder_.Forward(31337, SIGTERM), ESRCH);
}

TEST_F(KillForwarderServerTest, GarbageReplyIsEsrch) {
  homed_.set_mode(FakeHomed::Mode::kGarbage);
  EXPECT_EQ(forwarder_.Forward(31337, SIGTERM), ESRCH);
  homed_.set_mode(FakeHomed::Mode::kWrongType);
  EXPECT_EQ(forwarder_.Forward(31337, SIGTERM), ESRCH);
  homed_.set_mode(FakeHomed::Mode::kHangUp);
  EXPECT_EQ(forwarder_.Forward(31337, SIGTERM), ESRCH);
  EXPECT_EQ(homed_.malformed(), 0);  // the requests themselves were fine
}

TEST_F(KillForwarderServerTest, SilentHomedTimesOut) {
  homed_.set_mode(FakeHomed::Mode::kSilent);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(forwarder_.Forward(31337, SIGTERM), ESRCH);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start).count();
  EXPECT_GE(ms, 250);
  EXPECT_LT(ms, 5000);
}

TEST(KillForwarderTest, NoHomedIsEsrch) {
  TempDir dir;
  std::string path = dir.path() + "/nobody.sock";
  KillForwarder f;
  f.Configure(path.c_str(), "homebox");
  EXPECT_EQ(f.Forward(31337, SIGTERM), ESRCH);
  KillForwarder unconfigured;
  EXPECT_EQ(unconfigured.Forward(31337, SIGTERM), ESRCH);
}

}  // namespace
}  // namespace kite::shim
