// LineBuffer: cuts at the last newline that fits in one piece. Taken bytes are dropped from
// the front lazily (head_), so draining a large chunk piece by piece stays linear.
#include "cli/line_buffer.h"

namespace kite {

void LineBuffer::Append(std::string_view data) {
  if (head_ > 0 && head_ * 2 >= pending_.size()) {
    pending_.erase(0, head_);
    head_ = 0;
  }
  pending_.append(data.data(), data.size());
}

std::string LineBuffer::Take(bool flush) {
  const size_t left = pending_.size() - head_;
  if (left == 0) return {};
  const size_t window = left < kMaxPiece ? left : kMaxPiece;
  size_t cut;
  size_t nl = pending_.rfind('\n', head_ + window - 1);
  if (nl != std::string::npos && nl >= head_) cut = nl + 1 - head_;  // whole lines that fit
  else if (left >= kMaxPiece) cut = kMaxPiece;                      // a piece of one over-long line
  else if (flush) cut = left;                                       // the last, unterminated line
  else return {};
  std::string out = pending_.substr(head_, cut);
  head_ += cut;
  if (head_ == pending_.size()) {
    pending_.clear();
    head_ = 0;
  }
  return out;
}

}  // namespace kite
