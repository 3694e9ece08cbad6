// Scratch memory for one checkpoint: a private anonymous mapping (reserved, not committed)
// handed out by a bump pointer, unmapped when the dump ends. The handler cannot use malloc:
// it may have interrupted malloc, and the heap is part of what it dumps. The dumper leaves
// this range out of the image.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kite::shim {

class DumpArena {
 public:
  static constexpr size_t kReserve = size_t{256} << 20;

  DumpArena() = default;
  ~DumpArena();
  DumpArena(const DumpArena&) = delete;
  DumpArena& operator=(const DumpArena&) = delete;

  // Maps the reservation; false (with -errno in *err) when mmap fails.
  bool Init(long* err);
  // `size` bytes aligned to `align` (a power of two <= 4096), or nullptr when exhausted.
  void* Alloc(size_t size, size_t align = 16);
  // Everything allocated after `mark` is given back (bump pointer reset).
  size_t mark() const { return used_; }
  void Release(size_t mark) { used_ = mark; }
  uintptr_t start() const { return reinterpret_cast<uintptr_t>(base_); }
  uintptr_t end() const { return start() + kReserve; }

 private:
  char* base_ = nullptr;
  size_t used_ = 0;
};

// An array of at most `capacity` T in an arena. The capacity is reserved up front; pages that
// are never written are never committed, so generous capacities cost address space only.
template <typename T>
class FixedVector {
 public:
  FixedVector() = default;
  bool Init(DumpArena* arena, size_t capacity) {
    data_ = static_cast<T*>(arena->Alloc(capacity * sizeof(T), 64));
    cap_ = data_ != nullptr ? capacity : 0;
    return data_ != nullptr;
  }
  // Appends a zeroed element; nullptr when full.
  T* Add() {
    if (size_ == cap_) return nullptr;
    T* v = &data_[size_++];
    *v = T{};
    return v;
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T& back() { return data_[size_ - 1]; }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
  size_t cap_ = 0;
};

}  // namespace kite::shim
