// LockTable: a LockSet under a mutex, with bounded waits (one condition variable: every
// release wakes every waiter, which checks again — lock waits are few).
#include "fs/lock_table.h"

#include <fcntl.h>

#include <string>

#include <fmt/format.h>

#include "fs/fs_errors.h"

namespace kite::fs {

LockTable::LockTable(std::chrono::milliseconds grace) : grace_end_(Clock::now() + grace) {}

Status LockTable::WaitOutGrace(std::unique_lock<std::mutex>& lock, Clock::time_point deadline, const char* what) {
  while (!shutdown_ && Clock::now() < grace_end_) {
    if (Clock::now() >= deadline) {
      // Not EAGAIN (that would say "held by another"): ask again once the grace period is over.
      return Status(StatusCode::kUnavailable,
                    FsError(ENOLCK, std::string(what) + ": the server restarted and its clients are still "
                                                        "reclaiming their locks (grace period)")
                        .message());
    }
    changed_.wait_until(lock, std::min(deadline, grace_end_));
  }
  if (shutdown_) return Status(StatusCode::kCancelled, FsError(EINTR, std::string(what) + ": server stopping").message());
  return OkStatus();
}

Status LockTable::Set(uint64_t ino, const HeldLock& l, Clock::time_point deadline, bool reclaim) {
  std::string what = "lock inode " + std::to_string(ino);
  std::unique_lock<std::mutex> lock(mu_);
  if (l.type == F_UNLCK) {
    locks_.Apply(ino, l);
    changed_.notify_all();
    return OkStatus();
  }
  if (!reclaim) KITE_RETURN_IF_ERROR(WaitOutGrace(lock, deadline, what.c_str()));
  // flock(2) converts by dropping the old lock first (two shared holders upgrading at once would
  // otherwise wait for each other for ever); Linux does the same.
  if (l.kind == kLockFlock && locks_.ReleaseOwner(ino, kLockFlock, l.owner)) changed_.notify_all();
  for (;;) {
    if (shutdown_) return Status(StatusCode::kCancelled, FsError(EINTR, what + ": server stopping").message());
    std::optional<HeldLock> c = locks_.Conflict(ino, l);
    if (!c) break;
    if (Clock::now() >= deadline) {
      return FsError(EAGAIN, what + ": held by client " + fmt::format("{:016x}", c->owner.client_id) + " (" +
                                 (c->type == F_WRLCK ? "write" : "read") + " lock)");
    }
    changed_.wait_until(lock, deadline);
  }
  locks_.Apply(ino, l);
  // A downgrade or a narrowed range frees bytes others may wait for.
  changed_.notify_all();
  return OkStatus();
}

StatusOr<std::optional<HeldLock>> LockTable::Test(uint64_t ino, const HeldLock& l, Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  KITE_RETURN_IF_ERROR(WaitOutGrace(lock, deadline, ("test lock on inode " + std::to_string(ino)).c_str()));
  return locks_.Conflict(ino, l);
}

size_t LockTable::ReleaseClient(uint64_t client_id) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = locks_.ReleaseClient(client_id);
  if (n > 0) changed_.notify_all();
  return n;
}

void LockTable::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  changed_.notify_all();
}

}  // namespace kite::fs
