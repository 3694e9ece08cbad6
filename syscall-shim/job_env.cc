// Parsing of KITE_JOB / KITE_HOME / KITE_SOCK. Runs once, in the shim's constructor; written
// without libc number parsing so that every accepted string is exactly the documented format.
#include "syscall-shim/job_env.h"

#include <cstdint>
#include <cstring>

namespace kite::shim {
namespace {

// Parses one decimal field ending at ':' or NUL; advances *p past it. False for an empty
// field, a non-digit, more than 10 digits or a value above INT32_MAX.
bool ParseField(const char** p, int64_t* out) {
  const char* s = *p;
  int64_t v = 0;
  int digits = 0;
  for (; *s >= '0' && *s <= '9'; ++s) {
    if (++digits > 10) return false;
    v = v * 10 + (*s - '0');
  }
  if (digits == 0 || v > INT32_MAX) return false;
  *p = s;
  *out = v;
  return true;
}

bool CopyBounded(const char* s, size_t max, char* out) {
  size_t n = strnlen(s, max + 1);
  if (n == 0 || n > max) return false;
  memcpy(out, s, n);
  out[n] = '\0';
  return true;
}

}  // namespace

bool JobEnv::Parse(const char* job, const char* home, const char* sock) {
  if (job == nullptr || home == nullptr) return false;
  int64_t f[3];
  const char* p = job;
  for (int i = 0; i < 3; ++i) {
    if (!ParseField(&p, &f[i])) return false;
    if (*p != (i < 2 ? ':' : '\0')) return false;
    if (i < 2) ++p;
  }
  if (f[0] == 0 || f[2] == 0) return false;

  if (sock == nullptr || *sock == '\0') sock = kDefaultSock;
  if (sock[0] != '/') return false;

  JobEnv parsed;
  if (!CopyBounded(home, kMaxHomeLen, parsed.home_) ||
      !CopyBounded(sock, kMaxSockLen, parsed.sock_)) {
    return false;
  }
  for (const char* c = parsed.home_; *c != '\0'; ++c) {
    if (static_cast<unsigned char>(*c) <= ' ' || *c == 0x7f) return false;
  }
  parsed.vpid_ = static_cast<pid_t>(f[0]);
  parsed.home_ppid_ = static_cast<pid_t>(f[1]);
  parsed.real_root_pid_ = static_cast<pid_t>(f[2]);
  *this = parsed;
  return true;
}

}  // namespace kite::shim
