// LockTable: kite-fsd's POSIX (fcntl) and BSD (flock) locks, arbitrated for every client, so a
// lock taken on one host excludes the others (DESIGN §6; rules in fs/lock_set.h).
//
// Waiting is bounded: Set() waits for a conflicting lock to go at most until its deadline, then
// answers EAGAIN, so no server thread (and no client's FUSE request) waits for ever; a client
// waits longer by asking again (fs/lock_client.h), and stops when its process is interrupted.
//
// Locks live in memory. After a server restart the table starts in its grace period: clients
// reclaim the locks they held (Set with reclaim), and other lock requests and tests wait for the
// end of the grace period (within their deadline), else ENOLCK with code Unavailable — "ask
// again": before the reclaims are in, a grant or a "no conflict" could be wrong. A client the
// server expires (fs/open_table.h) loses its locks: ReleaseClient().
//
// Thread safety: all methods from any thread (one mutex, mu_; no other lock is taken under it).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>

#include "common/status.h"
#include "fs/lock_set.h"

namespace kite::fs {

class LockTable {
 public:
  using Clock = std::chrono::steady_clock;

  // The grace period runs for `grace` from now (0: none).
  explicit LockTable(std::chrono::milliseconds grace);

  // Sets (or, F_UNLCK, releases) lock `l` on `ino`. A conflicting lock of another owner: waits
  // until `deadline` for it to go, then EAGAIN. reclaim: a lock the client held before a
  // restart, granted at once when nothing conflicts (during the grace period or after).
  // ENOLCK/Unavailable: still in the grace period at the deadline. Cancelled (EINTR): Shutdown.
  Status Set(uint64_t ino, const HeldLock& l, Clock::time_point deadline, bool reclaim);
  // The first lock conflicting with `l`, if any (waits out the grace period as Set does).
  StatusOr<std::optional<HeldLock>> Test(uint64_t ino, const HeldLock& l, Clock::time_point deadline);
  // Releases every lock of `client_id` (the server expired it); returns how many.
  size_t ReleaseClient(uint64_t client_id);
  // Whether the grace period after a restart is still running.
  bool InGrace() const { return Clock::now() < grace_end_; }
  // Ends every wait (Cancelled); later calls fail at once.
  void Shutdown();

 private:
  // Waits (mu_ held in `lock`) until the grace period ends or `deadline`; OK or ENOLCK.
  Status WaitOutGrace(std::unique_lock<std::mutex>& lock, Clock::time_point deadline, const char* what);

  const Clock::time_point grace_end_;
  std::mutex mu_;
  std::condition_variable changed_;  // a lock went, or shutdown
  LockSet locks_;                    // GUARDED_BY(mu_)
  bool shutdown_ = false;            // GUARDED_BY(mu_)
};

}  // namespace kite::fs
