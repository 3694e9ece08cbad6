// OutputBuffer: an append-only byte string with a moving front; the front is compacted
// lazily so acknowledging is O(1) amortised.
#include "remoted/output_buffer.h"

#include <algorithm>

namespace kite {

void OutputBuffer::Append(const char* data, size_t n) { data_.append(data, n); }

void OutputBuffer::Acknowledge(int64_t offset) {
  offset = std::clamp(offset, begin_, end());
  head_ += static_cast<size_t>(offset - begin_);
  begin_ = offset;
  // Compact once the dead front outweighs the live bytes: each byte is moved at most once
  // on average.
  if (head_ > 0 && head_ >= data_.size() / 2) {
    data_.erase(0, head_);
    head_ = 0;
  }
}

int64_t OutputBuffer::Read(int64_t from, size_t max, std::string* out) const {
  from = std::clamp(from, begin_, end());
  size_t pos = head_ + static_cast<size_t>(from - begin_);
  out->assign(data_, pos, std::min(max, data_.size() - pos));
  return from;
}

}  // namespace kite
