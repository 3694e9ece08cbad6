// Small async-signal-safe text helpers for the checkpoint handler: a bounded string builder
// (no snprintf: it may allocate) and number parsing for /proc files.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kite::shim {

// Appends into a fixed buffer, always NUL-terminated, silently truncating.
class TextBuf {
 public:
  TextBuf(char* buf, size_t cap) : buf_(buf), cap_(cap) { buf_[0] = '\0'; }
  TextBuf& Str(const char* s);
  TextBuf& Num(int64_t v);
  TextBuf& Hex(uint64_t v);
  const char* c_str() const { return buf_; }
  size_t size() const { return len_; }

 private:
  char* buf_;
  size_t cap_;
  size_t len_ = 0;
};

// Why a checkpoint failed: one line for the .err file. First error wins.
class DumpError {
 public:
  DumpError() = default;
  // Records "what: detail" (detail may be null) unless an error is already recorded;
  // returns false so callers can `return err->Set(...)`.
  bool Set(const char* what, const char* detail = nullptr);
  // "what: -errno (name)".
  bool SetErrno(const char* what, long neg_errno);
  bool failed() const { return msg_[0] != '\0'; }
  const char* msg() const { return msg_; }

 private:
  char msg_[512] = {};
};

// Parses an unsigned number in base 10 or 16 at *p, advancing it. False when none.
bool ParseUnsigned(const char** p, int base, uint64_t* out);
// Skips spaces and tabs.
void SkipBlanks(const char** p);

}  // namespace kite::shim
