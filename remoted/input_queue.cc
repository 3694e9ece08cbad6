// InputQueue: offset bookkeeping for write_input.
#include "remoted/input_queue.h"

#include <algorithm>

namespace kite {

StatusOr<int64_t> InputQueue::Offer(int64_t offset, std::string_view data, bool eof) {
  if (offset < 0) return InvalidArgument("stdin offset " + std::to_string(offset) + " is negative");
  if (offset > accepted_)
    return InvalidArgument("stdin offset " + std::to_string(offset) + " is past the " +
                           std::to_string(accepted_) + " bytes accepted so far");
  const int64_t end = offset + static_cast<int64_t>(data.size());
  if (discard_) {
    accepted_ = std::max(accepted_, end);
    return accepted_;
  }
  if (eof_) {
    if (end > accepted_) return InvalidArgument("stdin is already closed (EOF was accepted)");
    return accepted_;
  }
  if (eof && end < accepted_)
    return InvalidArgument("stdin EOF at offset " + std::to_string(end) + " but " + std::to_string(accepted_) +
                           " bytes were already accepted");
  std::string_view fresh = data.substr(std::min(static_cast<size_t>(accepted_ - offset), data.size()));
  size_t room = kMaxQueued - std::min(kMaxQueued, pending().size());
  size_t take = std::min(fresh.size(), room);
  if (take > 0) {
    if (head_ > 0 && head_ >= buf_.size() / 2) {
      buf_.erase(0, head_);
      head_ = 0;
    }
    buf_.append(fresh.data(), take);
    accepted_ += static_cast<int64_t>(take);
  }
  if (eof && accepted_ == end) eof_ = true;
  return accepted_;
}

void InputQueue::Consume(size_t n) {
  head_ += std::min(n, pending().size());
  if (head_ == buf_.size()) {
    buf_.clear();
    head_ = 0;
  }
}

void InputQueue::Discard() {
  discard_ = true;
  buf_.clear();
  head_ = 0;
}

}  // namespace kite
