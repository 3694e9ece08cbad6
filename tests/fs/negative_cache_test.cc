// NegativeCache: inserts with a ticket, invalidations that overtake an answer, clears.
#include "fs/negative_cache.h"

#include <gtest/gtest.h>

namespace kite::fs {
namespace {

TEST(NegativeCacheTest, RemembersWhatTheServerSaidIsMissing) {
  NegativeCache c;
  c.Insert(7, "missing.h", c.Ticket(7));
  EXPECT_TRUE(c.Contains(7, "missing.h"));
  EXPECT_FALSE(c.Contains(8, "missing.h"));
  EXPECT_FALSE(c.Contains(7, "missing"));
  c.Erase(7, "missing.h");
  EXPECT_FALSE(c.Contains(7, "missing.h"));
}

TEST(NegativeCacheTest, NamesAreBytesAndParentsDoNotMix) {
  NegativeCache c;
  const std::string odd("a\0b\xff", 4);
  c.Insert(1, odd, c.Ticket(1));
  EXPECT_TRUE(c.Contains(1, odd));
  EXPECT_FALSE(c.Contains(1, "a"));
  // Parent 1 with a name against parent 256 with the same bytes: keys differ.
  c.Insert(256, "x", c.Ticket(256));
  EXPECT_FALSE(c.Contains(1, "x"));
}

TEST(NegativeCacheTest, AnInvalidationThatOvertakesTheAnswerWins) {
  NegativeCache c;
  const uint64_t ticket = c.Ticket(5);
  c.Erase(5, "new.o");  // a create elsewhere, applied before the ENOENT answer is stored
  c.Insert(5, "new.o", ticket);
  EXPECT_FALSE(c.Contains(5, "new.o"));
  // An invalidation of another directory (one in another bucket) does not stop it.
  uint64_t t2 = 0;
  for (uint64_t other = 6;; ++other) {
    t2 = c.Ticket(5);
    c.Erase(other, "y");
    if (c.Ticket(5) == t2) break;  // not in 5's bucket
    ASSERT_LT(other, 1000u);
  }
  c.Insert(5, "later.o", t2);
  EXPECT_TRUE(c.Contains(5, "later.o"));
}

TEST(NegativeCacheTest, AClearForgetsAndVoidsEveryTicket) {
  NegativeCache c;
  c.Insert(3, "a", c.Ticket(3));
  const uint64_t ticket = c.Ticket(9);
  c.Clear();
  EXPECT_FALSE(c.Contains(3, "a"));
  c.Insert(9, "b", ticket);
  EXPECT_FALSE(c.Contains(9, "b"));
  EXPECT_EQ(c.size(), 0u);
}

TEST(NegativeCacheTest, StaysWithinItsCapacity) {
  NegativeCache c(100);
  for (int i = 0; i < 1000; ++i) c.Insert(2, "n" + std::to_string(i), c.Ticket(2));
  EXPECT_LE(c.size(), 100u);
  EXPECT_TRUE(c.Contains(2, "n999"));
}

}  // namespace
}  // namespace kite::fs
