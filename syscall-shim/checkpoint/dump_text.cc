// Text helpers for the checkpoint handler (see dump_text.h).
#include "syscall-shim/checkpoint/dump_text.h"

#include <cstring>

namespace kite::shim {

TextBuf& TextBuf::Str(const char* s) {
  for (; *s != '\0' && len_ + 1 < cap_; ++s) buf_[len_++] = *s;
  buf_[len_] = '\0';
  return *this;
}

TextBuf& TextBuf::Num(int64_t v) {
  char tmp[24];
  int n = 0;
  uint64_t u = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  do {
    tmp[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) tmp[n++] = '-';
  char out[24];
  for (int i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  out[n] = '\0';
  return Str(out);
}

TextBuf& TextBuf::Hex(uint64_t v) {
  char out[20] = "0x";
  int n = 0;
  char tmp[16];
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  for (int i = 0; i < n; ++i) out[2 + i] = tmp[n - 1 - i];
  out[2 + n] = '\0';
  return Str(out);
}

bool DumpError::Set(const char* what, const char* detail) {
  if (failed()) return false;
  TextBuf b(msg_, sizeof msg_);
  b.Str(what);
  if (detail != nullptr) b.Str(": ").Str(detail);
  if (!failed()) b.Str("unknown error");
  return false;
}

bool DumpError::SetErrno(const char* what, long neg_errno) {
  if (failed()) return false;
  char detail[64];
  TextBuf d(detail, sizeof detail);
  d.Str("error ").Num(-neg_errno);
  const char* name = nullptr;
  switch (-neg_errno) {
    case 1: name = "EPERM"; break;
    case 2: name = "ENOENT"; break;
    case 13: name = "EACCES"; break;
    case 17: name = "EEXIST"; break;
    case 20: name = "ENOTDIR"; break;
    case 28: name = "ENOSPC"; break;
    case 30: name = "EROFS"; break;
    case 12: name = "ENOMEM"; break;
    case 5: name = "EIO"; break;
    default: break;
  }
  if (name != nullptr) d.Str(" (").Str(name).Str(")");
  return Set(what, detail);
}

bool ParseUnsigned(const char** p, int base, uint64_t* out) {
  const char* s = *p;
  uint64_t v = 0;
  int digits = 0;
  for (;; ++s) {
    int d;
    if (*s >= '0' && *s <= '9') d = *s - '0';
    else if (base == 16 && *s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
    else break;
    v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
    ++digits;
  }
  if (digits == 0 || digits > (base == 16 ? 16 : 20)) return false;
  *p = s;
  *out = v;
  return true;
}

void SkipBlanks(const char** p) {
  while (**p == ' ' || **p == '\t') ++*p;
}

}  // namespace kite::shim
