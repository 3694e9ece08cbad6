// NegativeCache: the names a kitefs client knows do not exist, kept in the client, not in the
// kernel's dcache.
//
// Why not the kernel: a kernel negative entry is dropped with fuse_lowlevel_notify_inval_entry,
// which takes the directory's inode lock. A host creating a name in a directory holds that
// lock in its own kernel until its create returns, and its create waits (DESIGN §6) until the
// other holders of the directory have applied the invalidation. Two hosts creating names in one
// directory at once (two compilers writing objects side by side) then wait for each other:
// each one's poller is stuck on the lock the other's change needs released. Here, an
// invalidation is a hash-map erase: no kernel lock, acknowledged at once. The kernel is told
// nothing (it asks again at every path walk, answered here without a round trip).
//
// Races: a lookup's ENOENT reply can be overtaken by the invalidation of a create made right
// after the server answered. Each lookup takes Ticket() before it asks and Insert()s with it;
// the insert is dropped if any invalidation of that directory (of any directory hashing to the
// same bucket) came in between. A positive answer overtaken so (the invalidation applied
// before the kernel had the entry, so nothing was dropped) is handed to the kernel untrusted.
//
// Thread safety: every method may be called from any thread (one mutex).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

namespace kite::fs {

class NegativeCache {
 public:
  explicit NegativeCache(size_t capacity = 1 << 16) : capacity_(capacity) {}

  // Taken before asking the server about (parent, ...).
  uint64_t Ticket(uint64_t parent);
  // The server said (parent, name) does not exist, for a question asked with `ticket`.
  void Insert(uint64_t parent, std::string_view name, uint64_t ticket);
  bool Contains(uint64_t parent, std::string_view name);
  // (parent, name) may exist now (an invalidation, or this client made it).
  void Erase(uint64_t parent, std::string_view name);
  // Nothing is known any more (server restart, lost invalidations).
  void Clear();
  size_t size();

 private:
  static constexpr size_t kBuckets = 256;
  static std::string Key(uint64_t parent, std::string_view name);
  static size_t Bucket(uint64_t parent) { return (parent * 0x9E3779B97F4A7C15ull) >> 56; }

  const size_t capacity_;
  std::mutex mu_;
  std::unordered_set<std::string> names_;        // GUARDED_BY(mu_): 8 bytes of parent, then the name
  std::array<uint64_t, kBuckets> changes_{};     // GUARDED_BY(mu_): invalidations seen, by bucket
  uint64_t clears_ = 0;                          // GUARDED_BY(mu_)
};

}  // namespace kite::fs
