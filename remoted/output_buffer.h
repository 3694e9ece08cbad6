// OutputBuffer: the not yet acknowledged bytes of one output stream of a job (stdout or
// stderr), addressed by absolute offset from the job's start so a lost reply can be re-read.
// Not thread-safe: JobManager guards each buffer with its mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kite {

class OutputBuffer {
 public:
  // Above this many unacknowledged bytes the job's pipe is no longer read, so the job blocks
  // in write(2) until the home catches up: backpressure, nothing is dropped.
  static constexpr size_t kHighWater = 4 << 20;

  int64_t begin() const { return begin_; }  // offset of the oldest byte still held
  int64_t end() const { return begin_ + static_cast<int64_t>(size()); }
  size_t size() const { return data_.size() - head_; }
  bool full() const { return size() > kHighWater; }

  void Append(const char* data, size_t n);
  // A restored job's stream continues a checkpointed one's: its first byte is at `offset`.
  // Only before the first Append.
  void StartAt(int64_t offset) { begin_ = offset; }
  // The reader has every byte before `offset`: drop them. Offsets outside [begin, end] are
  // clamped (the caller validates them).
  void Acknowledge(int64_t offset);
  // Copies at most `max` bytes starting at max(from, begin()) into *out; returns the offset
  // of the first byte copied.
  int64_t Read(int64_t from, size_t max, std::string* out) const;

 private:
  std::string data_;    // bytes [begin_ - head_, ...); data_[head_] is at offset begin_
  size_t head_ = 0;     // acknowledged bytes not yet compacted away
  int64_t begin_ = 0;
};

}  // namespace kite
