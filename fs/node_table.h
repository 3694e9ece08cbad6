// NodeTable: what a kitefs client knows about each inode the kernel holds — enough to keep
// the kernel's caches correct at open (close-to-open, DESIGN §6) without asking the server more
// than once per open.
//
// For each inode: the kernel's lookup count (entries handed to the kernel, minus forgets), the
// ctime of the attributes the kernel was last given, and the data version its page cache
// holds. At open, the server's current attributes decide: the page cache is kept only if it
// holds the current data version (else FOPEN_KEEP_CACHE is off and the kernel drops it), and
// the kernel's attributes are invalidated if their ctime is not the current one (so stat, and
// a read past a stale end of file, ask the server).
//
// Thread safety: all methods may be called from any FUSE worker thread (one mutex).
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace kite::fs {

class NodeTable {
 public:
  // The kernel got an entry for `ino` (lookup, create, mkdir, ...): one more lookup reference.
  void Entered(uint64_t ino, int64_t ctime_ns);
  // The kernel got fresh attributes for `ino` (getattr, setattr).
  void AttrGiven(uint64_t ino, int64_t ctime_ns);
  // The kernel dropped `n` lookup references.
  void Forget(uint64_t ino, uint64_t n);

  struct OpenDecision {
    bool keep_cache = false;
    bool invalidate_attr = false;
  };
  // An open (or create) of `ino` whose current data version and ctime are these.
  OpenDecision Opened(uint64_t ino, int64_t data_version, int64_t ctime_ns);
  // This client changed the data (write, truncate, fallocate): the server's version before the
  // change must have been the one our page cache holds for the cache to stay valid.
  void Changed(uint64_t ino, int64_t new_data_version, int64_t versions_added = 1);
  // The page cache of `ino` may hold stale data: the next open drops it.
  void Distrust(uint64_t ino);
  // Whether the page cache of `ino` holds what the server has, as far as this client was told
  // (an open gave its version and no data invalidation came since).
  bool Trusted(uint64_t ino);

  // Whether the kernel may hold `ino` (it was given it and has not forgotten it; the root
  // always).
  bool Known(uint64_t ino);
  // Every inode the kernel may hold.
  std::vector<uint64_t> Inodes();
  size_t size();

 private:
  struct Node {
    uint64_t nlookup = 0;
    int64_t kernel_ctime_ns = -1;   // -1: unknown
    int64_t cache_version = -1;     // -1: the page cache is not trusted
  };
  std::mutex mu_;
  std::unordered_map<uint64_t, Node> nodes_;  // GUARDED_BY(mu_)
};

}  // namespace kite::fs
