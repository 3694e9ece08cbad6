// The image's KITE_SEC_STRINGS section under construction: NUL-terminated strings appended
// to a fixed buffer, the last one reused when the same string comes again (consecutive
// mappings of one library). Offset 0 holds a lone NUL so that no real string is "absent".
#pragma once

#include <cstddef>
#include <cstdint>

#include "syscall-shim/checkpoint/dump_arena.h"
#include "syscall-shim/image/image_format.h"

namespace kite::shim {

class StringTable {
 public:
  bool Init(DumpArena* arena);
  // Adds `len` bytes of `s` (no NUL inside); false when the table is full or len is 0 or
  // above KITE_IMG_MAX_PATH.
  bool Add(const char* s, size_t len, kite_img_str* out);
  const char* data() const { return buf_.data(); }
  size_t size() const { return buf_.size(); }
  // The string `s` refers to (valid until the next Add).
  const char* Get(kite_img_str s) const { return buf_.data() + s.offset; }

 private:
  FixedVector<char> buf_;
  kite_img_str last_ = {};
};

}  // namespace kite::shim
