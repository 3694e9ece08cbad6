// OutputBuffer: absolute offsets, acknowledgement, clamping, the high-water mark.
#include "remoted/output_buffer.h"

#include <gtest/gtest.h>

namespace kite {
namespace {

TEST(OutputBufferTest, ReadsByAbsoluteOffsetAndDropsAcknowledged) {
  OutputBuffer b;
  b.Append("hello ", 6);
  b.Append("world", 5);
  EXPECT_EQ(b.begin(), 0);
  EXPECT_EQ(b.end(), 11);
  std::string out;
  EXPECT_EQ(b.Read(0, 100, &out), 0);
  EXPECT_EQ(out, "hello world");
  EXPECT_EQ(b.Read(6, 3, &out), 6);
  EXPECT_EQ(out, "wor");

  b.Acknowledge(6);
  EXPECT_EQ(b.begin(), 6);
  EXPECT_EQ(b.size(), 5u);
  // A reader behind the acknowledged point gets the oldest byte still held (it sees the gap).
  EXPECT_EQ(b.Read(2, 100, &out), 6);
  EXPECT_EQ(out, "world");
  b.Append("!", 1);
  EXPECT_EQ(b.Read(11, 100, &out), 11);
  EXPECT_EQ(out, "!");
  // Acknowledging backwards or past the end clamps.
  b.Acknowledge(3);
  EXPECT_EQ(b.begin(), 6);
  b.Acknowledge(100);
  EXPECT_EQ(b.begin(), 12);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.Read(12, 10, &out), 12);
  EXPECT_TRUE(out.empty());
}

TEST(OutputBufferTest, FullAboveHighWater) {
  OutputBuffer b;
  std::string chunk(1 << 20, 'x');
  for (int i = 0; i < 4; ++i) b.Append(chunk.data(), chunk.size());
  EXPECT_FALSE(b.full());  // exactly 4 MiB
  b.Append("y", 1);
  EXPECT_TRUE(b.full());
  b.Acknowledge(1 << 20);
  EXPECT_FALSE(b.full());
  std::string out;
  EXPECT_EQ(b.Read(b.end() - 1, 10, &out), (4 << 20));
  EXPECT_EQ(out, "y");
}

}  // namespace
}  // namespace kite
