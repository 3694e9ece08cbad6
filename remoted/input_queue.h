// InputQueue: stdin bytes on their way to a job, with write_input's offset semantics (IDL):
// offsets count bytes from the job's start, a retry of bytes already accepted is ignored, so
// a repeated call never duplicates input. Not thread-safe: JobManager guards it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kite {

class InputQueue {
 public:
  // At most this many accepted bytes wait for the job; past that write_input accepts less
  // and the home retries (stdin flow control).
  static constexpr size_t kMaxQueued = 1 << 20;

  // Accepts `data` starting at `offset`, as much as fits; returns the offset accepted up to.
  // `eof` counts only when every byte of `data` is accepted. INVALID_ARGUMENT: `offset` is
  // past the accepted offset (a gap), or new bytes follow an accepted EOF.
  StatusOr<int64_t> Offer(int64_t offset, std::string_view data, bool eof);
  // A restored job's stdin continues a checkpointed one's: bytes before `offset` were already
  // consumed. Only before the first Offer.
  void StartAt(int64_t offset) { accepted_ = offset; }

  // Bytes accepted but not yet written to the job.
  std::string_view pending() const { return std::string_view(buf_).substr(head_); }
  // `n` bytes of pending() reached the job.
  void Consume(size_t n);
  // EOF was accepted and every byte before it has been written: time to close stdin.
  bool eof_due() const { return eof_ && !eof_delivered_ && pending().empty(); }
  void MarkEofDelivered() { eof_delivered_ = true; }
  // The job's stdin is gone (it closed it or exited): drop what waits, and from now on
  // accept everything so the home stops sending.
  void Discard();

  int64_t accepted() const { return accepted_; }
  bool wants_write() const { return !discard_ && (!pending().empty() || eof_due()); }

 private:
  std::string buf_;
  size_t head_ = 0;
  int64_t accepted_ = 0;
  bool eof_ = false;
  bool eof_delivered_ = false;
  bool discard_ = false;
};

}  // namespace kite
