// LineBuffer: whole lines out, partial lines held until the end, pieces of at most PIPE_BUF.
#include "cli/line_buffer.h"

#include <gtest/gtest.h>

namespace kite {
namespace {

std::string Drain(LineBuffer& b, bool flush = false) {
  std::string out;
  for (std::string p; !(p = b.Take(flush)).empty();) {
    EXPECT_LE(p.size(), LineBuffer::kMaxPiece);
    out += p;
  }
  return out;
}

TEST(LineBuffer, HoldsThePartialLine) {
  LineBuffer b;
  b.Append("one\ntw");
  EXPECT_EQ(Drain(b), "one\n");
  b.Append("o\nthr");
  EXPECT_EQ(Drain(b), "two\n");
  EXPECT_FALSE(b.empty());
  EXPECT_EQ(Drain(b, true), "thr");
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.Take(true), "");
}

TEST(LineBuffer, PiecesEndAtNewlinesAndFitInPipeBuf) {
  LineBuffer b;
  std::string in;
  for (int i = 0; i < 2000; ++i) in += "line " + std::to_string(i) + "\n";
  b.Append(in);
  std::string out;
  for (std::string p; !(p = b.Take()).empty();) {
    ASSERT_LE(p.size(), LineBuffer::kMaxPiece);
    ASSERT_EQ(p.back(), '\n');
    out += p;
  }
  EXPECT_EQ(out, in);
}

TEST(LineBuffer, AnOverlongLineGoesOutInPieces) {
  LineBuffer b;
  std::string line(3 * LineBuffer::kMaxPiece + 10, 'x');
  b.Append(line);
  std::string out = Drain(b);
  EXPECT_EQ(out.size(), 3 * LineBuffer::kMaxPiece);  // the 10-byte rest waits for its newline
  b.Append("\n");
  out += Drain(b);
  EXPECT_EQ(out, line + "\n");
}

TEST(LineBuffer, ByteByByteEqualsAllAtOnce) {
  std::string in = "a\nbb\n\nccc\ndddd";
  LineBuffer b;
  std::string out;
  for (char c : in) {
    b.Append(std::string(1, c));
    out += Drain(b);
  }
  out += Drain(b, true);
  EXPECT_EQ(out, in);
}

}  // namespace
}  // namespace kite
