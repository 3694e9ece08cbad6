// The image's string table (see string_table.h).
#include "syscall-shim/checkpoint/string_table.h"

#include <cstring>

namespace kite::shim {

bool StringTable::Init(DumpArena* arena) {
  if (!buf_.Init(arena, KITE_IMG_MAX_STRINGS)) return false;
  *buf_.Add() = '\0';
  return true;
}

bool StringTable::Add(const char* s, size_t len, kite_img_str* out) {
  if (len == 0 || len > KITE_IMG_MAX_PATH || memchr(s, '\0', len) != nullptr) return false;
  if (last_.len == len && memcmp(buf_.data() + last_.offset, s, len) == 0) {
    *out = last_;
    return true;
  }
  size_t at = buf_.size();
  for (size_t i = 0; i <= len; ++i) {
    char* c = buf_.Add();
    if (c == nullptr) return false;
    *c = i < len ? s[i] : '\0';
  }
  last_ = kite_img_str{static_cast<uint32_t>(at), static_cast<uint32_t>(len)};
  *out = last_;
  return true;
}

}  // namespace kite::shim
