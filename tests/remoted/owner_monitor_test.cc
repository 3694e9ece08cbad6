// OwnerMonitor: overrides, terminal activity (guest terminals excluded) and the non-guest
// CPU load, with measurements read from files the test writes.
#include "remoted/owner_monitor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

namespace kite {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/kite-owner-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf " + path_).c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

void SetAtimeMs(const std::string& path, int64_t ms) {
  struct timespec ts[2];
  ts[0].tv_sec = ms / 1000;
  ts[0].tv_nsec = (ms % 1000) * 1000000;
  ts[1].tv_nsec = UTIME_OMIT;
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, 0), 0);
}

TEST(OwnerMonitorTest, OverridesWithoutDetection) {
  Config config;
  config.owner_detect = "none";
  OwnerMonitor m(config);
  m.Update({});
  EXPECT_EQ(m.state(), rpc::HostState::IDLE);
  EXPECT_EQ(m.override_mode(), rpc::OwnerOverride::AUTO);

  ASSERT_TRUE(m.SetOverride(rpc::OwnerOverride::FORCE_ACTIVE).ok());
  EXPECT_EQ(m.state(), rpc::HostState::OWNER_ACTIVE);
  EXPECT_EQ(m.owner_idle_ms(), 0);
  ASSERT_TRUE(m.SetOverride(rpc::OwnerOverride::FORCE_IDLE).ok());
  EXPECT_EQ(m.state(), rpc::HostState::IDLE);
  ASSERT_TRUE(m.SetOverride(rpc::OwnerOverride::AUTO).ok());
  EXPECT_EQ(m.state(), rpc::HostState::IDLE);

  Status bad = m.SetOverride(static_cast<rpc::OwnerOverride::type>(7));
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.override_mode(), rpc::OwnerOverride::AUTO);

  m.BeginDrain();
  EXPECT_EQ(m.state(), rpc::HostState::DRAINING);
  ASSERT_TRUE(m.SetOverride(rpc::OwnerOverride::FORCE_IDLE).ok());
  EXPECT_EQ(m.state(), rpc::HostState::DRAINING);
}

TEST(OwnerMonitorTest, TerminalInputMakesTheOwnerActiveButNotGuestTerminals) {
  TempDir dir;
  Config config;
  config.owner_detect = "auto";
  config.idle_after_s = 60;
  config.owner_load_threshold = 0.5;
  OwnerMonitor::Sources sources;
  sources.tty_globs = {dir.path() + "/tty[0-9]*"};
  sources.proc_stat = dir.path() + "/no-stat";
  sources.proc_loadavg = dir.path() + "/no-loadavg";
  OwnerMonitor m(config, sources);

  const std::string owner_tty = dir.path() + "/tty1";
  const std::string guest_tty = dir.path() + "/tty2";
  WriteFile(owner_tty, "");
  WriteFile(guest_tty, "");
  const int64_t now = 1'700'000'000'000;
  SetAtimeMs(owner_tty, now - 120'000);
  SetAtimeMs(guest_tty, now - 1'000);

  OwnerMonitor::GuestSample guests;
  guests.ttys = {guest_tty};
  m.UpdateAt(guests, now);
  EXPECT_EQ(m.state(), rpc::HostState::IDLE);  // the recent terminal is a guest's
  EXPECT_NEAR(m.owner_idle_ms(), 120'000, 10);

  // The same terminal, not a guest's any more: input 1 s ago.
  m.UpdateAt({}, now);
  EXPECT_EQ(m.state(), rpc::HostState::OWNER_ACTIVE);
  EXPECT_EQ(m.owner_idle_ms(), 0);

  // Quiet for longer than idle_after_s.
  m.UpdateAt({}, now + 58'000);
  EXPECT_EQ(m.state(), rpc::HostState::OWNER_ACTIVE);
  m.UpdateAt({}, now + 61'000);
  EXPECT_EQ(m.state(), rpc::HostState::IDLE);
  EXPECT_NEAR(m.owner_idle_ms(), 62'000, 10);

  // FORCE_IDLE wins over a present owner; AUTO gives detection back.
  SetAtimeMs(owner_tty, now + 70'000);
  ASSERT_TRUE(m.SetOverride(rpc::OwnerOverride::FORCE_IDLE).ok());
  m.UpdateAt({}, now + 70'500);
  EXPECT_EQ(m.state(), rpc::HostState::IDLE);
  ASSERT_TRUE(m.SetOverride(rpc::OwnerOverride::AUTO).ok());
  EXPECT_EQ(m.state(), rpc::HostState::OWNER_ACTIVE);
}

TEST(OwnerMonitorTest, NonGuestLoadMakesTheOwnerActive) {
  TempDir dir;
  Config config;
  config.owner_detect = "auto";
  config.idle_after_s = 5;
  config.owner_load_threshold = 0.5;
  OwnerMonitor::Sources sources;
  sources.tty_globs = {};
  sources.proc_stat = dir.path() + "/stat";
  sources.proc_loadavg = dir.path() + "/loadavg";
  OwnerMonitor m(config, sources);
  WriteFile(sources.proc_loadavg, "0.00 0.00 0.00 1/100 1234\n");

  const long hz = ::sysconf(_SC_CLK_TCK);
  int64_t user_ticks = 0;
  int64_t guest_ns = 0;
  int64_t now = 1'700'000'000'000;
  auto step = [&](bool owner_busy, bool guest_busy) {
    // One second: one CPU busy, either the owner's or a guest's.
    if (owner_busy || guest_busy) user_ticks += hz;
    if (guest_busy) guest_ns += 1'000'000'000;
    now += 1000;
    WriteFile(sources.proc_stat, "cpu  " + std::to_string(user_ticks) + " 0 0 1000 0 0 0 0 0 0\ncpu0 0 0 0 0\n");
    OwnerMonitor::GuestSample g;
    g.cpu_ns = guest_ns;
    g.running = guest_busy ? 1 : 0;
    m.UpdateAt(g, now);
  };

  // A guest keeping a CPU busy for two minutes: not the owner.
  for (int i = 0; i < 120; ++i) step(false, true);
  EXPECT_EQ(m.state(), rpc::HostState::IDLE);
  EXPECT_LT(m.owner_load(), 0.05);

  // The owner keeps a CPU busy: the one-minute average passes 0.5 after about 42 s.
  int seconds = 0;
  while (m.state() == rpc::HostState::IDLE && seconds < 120) {
    step(true, false);
    ++seconds;
  }
  EXPECT_EQ(m.state(), rpc::HostState::OWNER_ACTIVE);
  EXPECT_GE(seconds, 35);
  EXPECT_LE(seconds, 50);

  // The owner stops: the average decays below the threshold, then idle_after_s later idle.
  seconds = 0;
  while (m.state() == rpc::HostState::OWNER_ACTIVE && seconds < 120) {
    step(false, true);
    ++seconds;
  }
  EXPECT_EQ(m.state(), rpc::HostState::IDLE);
  EXPECT_GE(seconds, 5);
  EXPECT_LT(seconds, 20);
}

}  // namespace
}  // namespace kite
