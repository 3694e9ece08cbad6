// The job environment contract between kite-remoted and the shim: the variables remoted sets
// on a guest job's root (inherited by its descendants) and their parsed, validated form.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace kite::shim {

// "<vpid>:<home_ppid>:<real_root_pid>": the root's vpid (its deputy's pid at home), the
// deputy's parent at home (what getppid() shows in the root), the root's pid on this host.
inline constexpr char kJobVar[] = "KITE_JOB";
// The home host's name: what uname().nodename and gethostname() return.
inline constexpr char kHomeVar[] = "KITE_HOME";
// The local kite-homed socket, for kills forwarded home. Optional: defaults to kDefaultSock.
inline constexpr char kSockVar[] = "KITE_SOCK";
inline constexpr char kDefaultSock[] = "/run/kite/homed.sock";

// Parsed job environment. Plain data, no allocation: it lives in the shim's static state.
class JobEnv {
 public:
  static constexpr size_t kMaxHomeLen = 64;   // utsname.nodename: 64 characters + NUL
  static constexpr size_t kMaxSockLen = 107;  // sockaddr_un.sun_path: 107 characters + NUL

  constexpr JobEnv() = default;

  // Parses the three variables' values (nullptr: unset). Returns false and leaves *this
  // unchanged when `job` is unset or any value is malformed: KITE_JOB not exactly three
  // decimal fields of at most 10 digits and at most INT32_MAX (no sign, no spaces), vpid or
  // real_root_pid 0; KITE_HOME unset, empty, longer than kMaxHomeLen or holding a space or
  // control character; KITE_SOCK set but not an absolute path of at most kMaxSockLen chars.
  // A process with a malformed environment is left alone rather than half virtualised.
  bool Parse(const char* job, const char* home, const char* sock);

  pid_t vpid() const { return vpid_; }
  pid_t home_ppid() const { return home_ppid_; }
  pid_t real_root_pid() const { return real_root_pid_; }
  const char* home() const { return home_; }
  const char* sock() const { return sock_; }

 private:
  pid_t vpid_ = 0;
  pid_t home_ppid_ = 0;
  pid_t real_root_pid_ = 0;
  char home_[kMaxHomeLen + 1] = {};
  char sock_[kMaxSockLen + 1] = {};
};

}  // namespace kite::shim
