// The host name a job sees: its home's, in uname() and gethostname(). The other uname fields
// stay this host's (the hosts of a cluster run the same system, DESIGN.md §6).
#pragma once

#include <sys/utsname.h>

#include <cstddef>

namespace kite::shim {

// Thread safety: the name is set once before other threads exist; the calls are then
// read-only and async-signal-safe.
class HostIdentity {
 public:
  constexpr HostIdentity() = default;

  // Makes `name` (at most 64 characters; JobEnv checked it) the node name to report. Until it
  // is called the host's own name is reported.
  void SetNodename(const char* name);

  // uname(2) with nodename replaced. Returns 0 or the errno (EFAULT for a bad pointer).
  int Uname(struct utsname* buf) const;
  // gethostname(2) exactly as glibc does it: copies min(len, strlen(name) + 1) bytes and, when
  // the name and its NUL do not fit, returns ENAMETOOLONG (the copy is then not terminated).
  // Returns 0 or the errno.
  int Gethostname(char* name, size_t len) const;

 private:
  char nodename_[sizeof(utsname::nodename)] = {};  // empty: report the host's own name
};

}  // namespace kite::shim
