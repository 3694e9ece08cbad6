// Forwards a kill(2) of a pid at home to the job's home: one kKill request to the local
// kite-homed over its Unix socket (common/wire.h), which relays it to the home's homed, where
// the signal is delivered for real; the kKillReply carries the errno that kill(2) gave there.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace kite::shim {

// Thread safety: configured once before other threads exist; Forward() is then const, uses one
// connection per call, stack buffers and plain syscalls only (no allocation), so it is safe in
// signal handlers and concurrent threads.
class KillForwarder {
 public:
  // How long one forwarded kill may wait for homed (connect, send, reply).
  static constexpr int kDefaultTimeoutMs = 10000;
  // Largest frame EncodeKillFrame writes: header, home (<= 64 bytes) with its length, pid, signo.
  static constexpr size_t kMaxFrameBytes = 12 + 4 + 64 + 4 + 4;

  constexpr KillForwarder() = default;

  // `sock_path` and `home` must outlive the forwarder (they point into the shim's JobEnv).
  void Configure(const char* sock_path, const char* home, int timeout_ms = kDefaultTimeoutMs);

  // Asks homed to deliver `signo` to `pid` at home (negative: a process group). Returns 0, the
  // errno kill(2) gave at home, or ESRCH when homed cannot be reached, does not answer within
  // the timeout or answers with anything but a well-formed kKillReply: the pid is then as good
  // as nonexistent to the caller, and ESRCH is an errno every kill() caller handles.
  int Forward(pid_t pid, int signo) const;

  // Writes the kKill frame for (home, pid, signo) into `out`: the same bytes as
  // wire::Frame(kKill, KillMsg{home, pid, signo}), built without allocating. Returns its length,
  // or 0 when `home` is longer than 64 bytes or `cap` is too small.
  static size_t EncodeKillFrame(const char* home, int32_t pid, int32_t signo, char* out, size_t cap);

 private:
  int Connect() const;  // fd or -errno

  const char* sock_path_ = nullptr;
  const char* home_ = nullptr;
  int timeout_ms_ = kDefaultTimeoutMs;
};

}  // namespace kite::shim
