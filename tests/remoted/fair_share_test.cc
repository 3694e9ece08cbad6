// FairShare: work-conserving for a lone home, ceil(slots / competing homes) each while homes
// compete, demand expiring after the window.
#include "remoted/fair_share.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kite {
namespace {

using namespace std::chrono_literals;

TEST(FairShare, LoneHomeMayTakeEverySlot) {
  FairShare f(4);
  auto t = FairShare::Clock::now();
  std::string why;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(f.Admit("a", t, &why));
    f.Acquired("a");
  }
  EXPECT_EQ(f.held("a"), 4);
}

TEST(FairShare, CompetingHomesGetCeilOfAnEvenSplit) {
  FairShare f(4);
  auto t = FairShare::Clock::now();
  std::string why;
  ASSERT_TRUE(f.Admit("a", t, &why));
  f.Acquired("a");
  ASSERT_TRUE(f.Admit("a", t, &why));
  f.Acquired("a");
  ASSERT_TRUE(f.Admit("b", t + 10ms, &why));  // b competes now: share is 2 each
  f.Acquired("b");
  EXPECT_FALSE(f.Admit("a", t + 20ms, &why));
  EXPECT_THAT(why, ::testing::HasSubstr("fair share"));
  EXPECT_TRUE(f.Admit("b", t + 30ms, &why));
  f.Acquired("b");
  EXPECT_FALSE(f.Admit("b", t + 40ms, &why));
  // A third home: share ceil(4/3) = 2; a and b hold 2 each, c gets in.
  EXPECT_TRUE(f.Admit("c", t + 50ms, &why));
  EXPECT_EQ(f.Competing(t + 50ms), 3);
}

TEST(FairShare, ARefusedRequestIsDemandAndDemandExpires) {
  FairShare f(2);
  auto t = FairShare::Clock::now();
  std::string why;
  ASSERT_TRUE(f.Admit("a", t, &why));
  f.Acquired("a");
  ASSERT_TRUE(f.Admit("a", t, &why));
  f.Acquired("a");
  // b asks (it would be refused for want of a slot, but it counts as demand).
  ASSERT_TRUE(f.Admit("b", t + 1ms, &why));
  f.Released("a");
  EXPECT_FALSE(f.Admit("a", t + 2ms, &why));  // a holds its share of 1 while b waits
  // b stops asking: after the window a has the host to itself again.
  EXPECT_TRUE(f.Admit("a", t + 1ms + FairShare::kDemandWindow + 1ms, &why));
  EXPECT_EQ(f.Competing(t + 1ms + FairShare::kDemandWindow + 1ms), 1);
}

TEST(FairShare, ReleaseNeverGoesNegative) {
  FairShare f(1);
  f.Released("nobody");
  f.Acquired("a");
  f.Released("a");
  f.Released("a");
  EXPECT_EQ(f.held("a"), 0);
}

}  // namespace
}  // namespace kite
