// LineBuffer: holds back a stream's partial last line, so that what is written out is whole
// lines (a recipe's output must not be cut into by another recipe's mid-line). Not thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace kite {

class LineBuffer {
 public:
  // Longest piece written out at once: PIPE_BUF, so one write(2) to a pipe is atomic. A line
  // longer than this is passed on in pieces of this size rather than held without bound.
  static constexpr size_t kMaxPiece = 4096;

  // Adds `data` to what is pending.
  void Append(std::string_view data);
  // The next piece to write (whole lines, at most kMaxPiece bytes unless one line is longer,
  // then kMaxPiece bytes of it), removed from the buffer; empty when only a partial line
  // shorter than kMaxPiece is left. With `flush`, the partial line too (at end of stream).
  std::string Take(bool flush = false);
  bool empty() const { return head_ == pending_.size(); }

 private:
  std::string pending_;
  size_t head_ = 0;  // pending_[0, head_) was taken already
};

}  // namespace kite
