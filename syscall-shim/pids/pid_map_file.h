// The pid map of a restored job: which real pid on this host each of the job's restored
// processes has now, keyed by the vpid the job knows it by (its pid before the first move).
//
// Written by kite-restore-tree before any restored process runs, at
//   <run dir>/pids/<session id>
// where <run dir> is the directory of the homed socket (KITE_SOCK, default /run/kite) and the
// session id is the restored root's new pid: every process of a job is in the root's session,
// so a process finds its job's map with one getsid(). The directory is kite-remoted's, mode
// 1733 (like /tmp): a user creates files there, only the owner may remove them; a reader
// trusts a map only when it is owned by its own uid. kite-remoted removes a job's map when the
// job ends, and reads it when it checkpoints the job again (the vpids of its processes).
//
// Text, at most kMaxBytes: a first line "kite-pids 1", then one line "<vpid> <real>" per
// process, decimal, both > 0, no vpid and no real pid twice, at most kMaxEntries lines.
//
// Header-only and allocation-free: the shim parses it in its constructor and in the first
// wrapper call after a restore (possibly in a signal handler), with raw system calls.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace kite::shim {

struct PidPair {
  pid_t vpid;
  pid_t real;
};

class PidMapFile {
 public:
  static constexpr int kMaxEntries = 64;  // PidTable::kCapacity
  static constexpr size_t kMaxBytes = 4096;
  static constexpr char kHeader[] = "kite-pids 1\n";
  static constexpr char kDirName[] = "pids";

  // Parses `len` bytes of `text` into out[0, *n). False (and *n unspecified) when malformed.
  static bool Parse(const char* text, size_t len, PidPair* out, int* n) {
    constexpr size_t hlen = sizeof kHeader - 1;
    if (len < hlen || len > kMaxBytes) return false;
    for (size_t i = 0; i < hlen; ++i) {
      if (text[i] != kHeader[i]) return false;
    }
    size_t pos = hlen;
    int count = 0;
    while (pos < len) {
      int64_t v[2];
      for (int k = 0; k < 2; ++k) {
        int digits = 0;
        v[k] = 0;
        while (pos < len && text[pos] >= '0' && text[pos] <= '9') {
          if (++digits > 10) return false;
          v[k] = v[k] * 10 + (text[pos++] - '0');
        }
        if (digits == 0 || v[k] <= 0 || v[k] > INT32_MAX) return false;
        if (pos >= len || text[pos] != (k == 0 ? ' ' : '\n')) return false;
        ++pos;
      }
      if (count == kMaxEntries) return false;
      for (int i = 0; i < count; ++i) {
        if (out[i].vpid == v[0] || out[i].real == v[1]) return false;
      }
      out[count++] = PidPair{static_cast<pid_t>(v[0]), static_cast<pid_t>(v[1])};
    }
    *n = count;
    return true;
  }

  // "<run_dir>/pids/<sid>" from the homed socket path `sock` (its directory is the run dir).
  // False when it does not fit in `cap`.
  static bool PathFor(const char* sock, pid_t sid, char* out, size_t cap) {
    size_t slash = 0, n = 0;
    for (; sock[n] != '\0'; ++n) {
      if (sock[n] == '/') slash = n;
    }
    char digits[12];
    int nd = 0;
    for (uint32_t s = static_cast<uint32_t>(sid); nd == 0 || s != 0; s /= 10) digits[nd++] = char('0' + s % 10);
    const size_t need = slash + 1 + (sizeof kDirName - 1) + 1 + static_cast<size_t>(nd) + 1;
    if (sid <= 0 || need > cap) return false;
    size_t o = 0;
    for (size_t i = 0; i <= slash; ++i) out[o++] = sock[i];
    for (size_t i = 0; i < sizeof kDirName - 1; ++i) out[o++] = kDirName[i];
    out[o++] = '/';
    while (nd > 0) out[o++] = digits[--nd];
    out[o] = '\0';
    return true;
  }
};

}  // namespace kite::shim
