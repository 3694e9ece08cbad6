// InputQueue: write_input's offset semantics — retries never duplicate, gaps are refused.
#include "remoted/input_queue.h"

#include <gtest/gtest.h>

namespace kite {
namespace {

TEST(InputQueueTest, RetriesDoNotDuplicate) {
  InputQueue q;
  auto r = q.Offer(0, "hello ", false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 6);
  // A retry of the whole thing plus more: only the new part is taken.
  r = q.Offer(0, "hello world", false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 11);
  // The same call again: nothing new.
  r = q.Offer(6, "world", false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 11);
  EXPECT_EQ(q.pending(), "hello world");
  q.Consume(6);
  EXPECT_EQ(q.pending(), "world");
  EXPECT_TRUE(q.wants_write());
}

TEST(InputQueueTest, RefusesGapsAndNegativeOffsets) {
  InputQueue q;
  ASSERT_TRUE(q.Offer(0, "ab", false).ok());
  auto r = q.Offer(5, "x", false);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(q.Offer(-1, "x", false).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(q.accepted(), 2);
}

TEST(InputQueueTest, EofAfterEverythingAndOnlyThen) {
  InputQueue q;
  ASSERT_TRUE(q.Offer(0, "abc", true).ok());
  EXPECT_FALSE(q.eof_due());  // bytes before it are not written yet
  q.Consume(3);
  EXPECT_TRUE(q.eof_due());
  EXPECT_TRUE(q.wants_write());
  // Retrying the EOF call is harmless; new bytes after EOF are refused.
  auto r = q.Offer(0, "abc", true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 3);
  EXPECT_EQ(q.Offer(3, "d", false).status().code(), StatusCode::kInvalidArgument);
  q.MarkEofDelivered();
  EXPECT_FALSE(q.eof_due());
  EXPECT_FALSE(q.wants_write());
}

TEST(InputQueueTest, FlowControlAcceptsWhatFits) {
  InputQueue q;
  std::string big(InputQueue::kMaxQueued + 100, 'z');
  auto r = q.Offer(0, big, true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, static_cast<int64_t>(InputQueue::kMaxQueued));
  q.Consume(1000);
  EXPECT_FALSE(q.eof_due());  // EOF came with bytes that did not fit: not accepted
  r = q.Offer(*r, big.substr(InputQueue::kMaxQueued), true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, static_cast<int64_t>(big.size()));
  q.Consume(q.pending().size());
  EXPECT_TRUE(q.eof_due());
}

TEST(InputQueueTest, DiscardAcceptsEverything) {
  InputQueue q;
  ASSERT_TRUE(q.Offer(0, "abc", false).ok());
  q.Discard();
  EXPECT_TRUE(q.pending().empty());
  EXPECT_FALSE(q.wants_write());
  auto r = q.Offer(3, "defg", true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 7);
}

}  // namespace
}  // namespace kite
