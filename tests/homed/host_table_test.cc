// HostTable: placement candidates are idle, fresh, with free slots, least loaded first.
#include "homed/host_table.h"

#include <gtest/gtest.h>

namespace kite {
namespace {

rpc::HostStatus Host(const std::string& name, rpc::HostState::type state, int slots, int free, double load) {
  rpc::HostStatus s;
  s.host = name;
  s.state = state;
  s.slots = slots;
  s.free_slots = free;
  s.load1 = load;
  return s;
}

TEST(HostTableTest, OnlyIdleHostsWithFreeSlotsAreCandidates) {
  HostTable t;
  t.Update(Host("busy", rpc::HostState::IDLE, 2, 0, 0));
  t.Update(Host("owner", rpc::HostState::OWNER_ACTIVE, 2, 2, 0));
  t.Update(Host("draining", rpc::HostState::DRAINING, 2, 2, 0));
  t.Update(Host("free", rpc::HostState::IDLE, 2, 2, 0));
  t.Update(Host("self", rpc::HostState::IDLE, 2, 2, 0));
  EXPECT_EQ(t.Candidates("self"), std::vector<std::string>{"free"});
}

TEST(HostTableTest, LeastLoadedComesFirst) {
  HostTable t;
  t.Update(Host("heavy", rpc::HostState::IDLE, 4, 1, 3.0));
  t.Update(Host("light", rpc::HostState::IDLE, 4, 4, 0.0));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(t.Candidates("")[0], "light");
}

TEST(HostTableTest, OwnClaimsCountUntilReleased) {
  HostTable t;
  t.Update(Host("a", rpc::HostState::IDLE, 1, 1, 0));
  t.NoteClaimed("a");
  EXPECT_TRUE(t.Candidates("self").empty());
  // A report sent before the claim reached the host: our job is not in it, the slot still is ours.
  t.Update(Host("a", rpc::HostState::IDLE, 1, 1, 0));
  EXPECT_TRUE(t.Candidates("self").empty());
  // The report that lists our job.
  rpc::HostStatus with_ours = Host("a", rpc::HostState::IDLE, 1, 0, 0);
  rpc::GuestJob g;
  g.home_host = "self";
  with_ours.guests.push_back(g);
  t.Update(with_ours);
  EXPECT_TRUE(t.Candidates("self").empty());
  // Released: free again at once, though the last report still shows our job.
  t.NoteReleased("a");
  EXPECT_EQ(t.Candidates("self"), std::vector<std::string>{"a"});
  // Another home's job in a report is not ours to discount.
  g.home_host = "other";
  rpc::HostStatus theirs = Host("a", rpc::HostState::IDLE, 1, 0, 0);
  theirs.guests.push_back(g);
  t.Update(theirs);
  EXPECT_TRUE(t.Candidates("self").empty());
}

TEST(HostTableTest, RandomnessSpreadsEqualHosts) {
  HostTable t;
  t.Update(Host("a", rpc::HostState::IDLE, 2, 2, 0));
  t.Update(Host("b", rpc::HostState::IDLE, 2, 2, 0));
  int a_first = 0;
  for (int i = 0; i < 200; ++i) a_first += t.Candidates("")[0] == "a";
  EXPECT_GT(a_first, 40);
  EXPECT_LT(a_first, 160);
}

}  // namespace
}  // namespace kite
