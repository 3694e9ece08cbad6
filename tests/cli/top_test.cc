// RenderTop: the summary line, a row per host, guests under their host, widths respected.
#include "cli/top.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kite {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

wire::TopReply Sample() {
  wire::TopReply r;
  wire::TopHost a;
  a.info.host = "node1";
  a.info.state = "idle";
  a.info.override_mode = "auto";
  a.info.slots = 2;
  a.info.free_slots = 2;
  a.info.owner_idle_ms = 65000;
  wire::TopHost b = a;
  b.info.host = "node2";
  b.info.free_slots = 0;
  b.info.load1 = 1.5;
  b.info.guests = 2;
  b.guests.push_back({"node1", 4242, 0, 1500, "sh -c gcc -c a.c -o a.o"});
  b.guests.push_back({"node3", 77, 1000, 200, "sh -c ld"});
  wire::TopHost c;
  c.info.host = "node3";
  c.info.state = "unreachable";
  c.info.override_mode = "auto";
  r.hosts = {a, b, c};
  return r;
}

TEST(RenderTop, HostsWithTheirGuests) {
  auto lines = RenderTop(Sample(), 0);
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(lines[0], "3 hosts (2 idle), 2/4 guest slots free, 2 guest jobs");
  EXPECT_THAT(lines[1], StartsWith("HOST"));
  EXPECT_THAT(lines[2], StartsWith("node1  idle"));
  EXPECT_THAT(lines[2], HasSubstr("1m05s"));
  EXPECT_THAT(lines[3], StartsWith("node2"));
  EXPECT_THAT(lines[3], HasSubstr("2/2 used"));
  EXPECT_THAT(lines[4], HasSubstr("node1:4242"));
  EXPECT_THAT(lines[4], HasSubstr("sh -c gcc -c a.c -o a.o"));
  EXPECT_THAT(lines[5], HasSubstr("node3:77  uid 1000"));
  EXPECT_THAT(lines[6], StartsWith("node3  unreachable"));
}

TEST(RenderTop, LinesAreCutToTheWidth) {
  for (const auto& l : RenderTop(Sample(), 20)) EXPECT_LE(l.size(), 20u) << l;
}

TEST(TopReply, RoundTripsThroughTheWire) {
  wire::TopReply in = Sample();
  std::string frame = wire::Frame(wire::MsgType::kTopReply, in);
  wire::TopReply out;
  wire::Reader r(std::string_view(frame).substr(wire::kHeaderBytes));
  ASSERT_TRUE(out.Decode(r));
  ASSERT_EQ(out.hosts.size(), 3u);
  EXPECT_EQ(out.hosts[1].guests[1].command, "sh -c ld");
  EXPECT_EQ(out.hosts[1].guests[0].vpid, 4242);
  // Every truncation is refused, never over-read.
  std::string body = frame.substr(wire::kHeaderBytes);
  for (size_t n = 0; n < body.size(); ++n) {
    wire::Reader cut(std::string_view(body).substr(0, n));
    wire::TopReply junk;
    EXPECT_FALSE(junk.Decode(cut)) << n;
  }
}

}  // namespace
}  // namespace kite
