// LockSet: the byte-range lock rules of fcntl(2) and the whole-file rules of flock(2), over a
// set of held locks — kite-fsd's lock table (fs/lock_table.h) and each kitefs client's record
// of the locks it holds (fs/lock_client.h, for reclaiming them after a server restart) use it.
//
// A lock belongs to an owner: (client_id, owner) — the client that took it and the kernel's
// lock owner on that client. POSIX locks of one owner on one inode never overlap: setting a
// range replaces what the owner held there (upgrade, downgrade, unlock split a held range) and
// adjacent ranges of the same type merge, as fcntl's do. A flock lock is one whole-file lock
// per owner. POSIX and flock locks never conflict with each other (Linux keeps them apart).
// Two locks conflict when they have different owners, the same kind, overlapping ranges, and
// one of them is a write lock.
//
// Not thread-safe: its user locks.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace kite::fs {

struct LockOwner {
  uint64_t client_id = 0;
  uint64_t owner = 0;
  auto operator<=>(const LockOwner&) const = default;
};

struct HeldLock {
  int kind = 0;        // fsrpc LOCK_POSIX or LOCK_FLOCK
  int type = 0;        // F_RDLCK or F_WRLCK (F_UNLCK only in requests)
  int64_t start = 0;
  int64_t end = 0;     // inclusive; kLockToEof: to the end of file
  LockOwner owner;
  int32_t pid = 0;
};

inline constexpr int64_t kLockToEof = INT64_MAX;
inline constexpr int kLockPosix = 0;
inline constexpr int kLockFlock = 1;

class LockSet {
 public:
  // The first held lock on `ino` that conflicts with request `l` (its type F_RDLCK/F_WRLCK).
  std::optional<HeldLock> Conflict(uint64_t ino, const HeldLock& l) const;
  // Applies request `l` (F_UNLCK releases) for l.owner on `ino`. The caller checked conflicts.
  void Apply(uint64_t ino, const HeldLock& l);
  // Releases every lock of `kind` that `owner` holds on `ino`; returns whether there were any.
  bool ReleaseOwner(uint64_t ino, int kind, const LockOwner& owner);
  // Releases every lock of `client_id`; returns how many.
  size_t ReleaseClient(uint64_t client_id);
  // Whether `owner` holds a lock of `kind` on `ino`.
  bool Holds(uint64_t ino, int kind, const LockOwner& owner) const;
  // Every lock held, by inode.
  std::vector<std::pair<uint64_t, HeldLock>> All() const;
  bool empty() const { return locks_.empty(); }

 private:
  // ino → its locks (few per inode: a vector).
  std::map<uint64_t, std::vector<HeldLock>> locks_;
};

}  // namespace kite::fs
