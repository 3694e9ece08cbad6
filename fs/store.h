// Store: one kitefs namespace (a domain) in RocksDB — inodes, directory entries and file data —
// with POSIX semantics. kite-fsd serves it (FileHandler); tests use it directly.
//
// Column families (docs/kitefs.md, "Store format"): "inodes" (ino → InodeRecord), "dentries"
// ((parent, name) → child), "dirlist" ((parent, seq) → name, the listing order readdir's
// cookies point into), "chunks" ((ino, index) → up to kChunkSize bytes of data; large values go
// to blob files) and "xattrs" ((ino, name) → value); the default family holds counters and the
// orphan list.
//
// Contract:
// - Inode numbers are never reused; ROOT (1) is the root directory, made on first open.
// - Times come from the store's clock: wall-clock nanoseconds, but never less than or equal to
//   the last time it gave (so a later change always has a later time), also across restarts.
// - Every change is one atomic RocksDB WriteBatch, in the WAL (written to the kernel) when the
//   call returns: it survives kill -9 of the process. A machine crash loses at most the changes
//   of the last StoreOptions::sync_interval_ms (a background thread syncs the WAL when something
//   was written), as a local file system's journal commit interval does; with sync_metadata
//   every namespace or attribute change syncs the WAL before it returns. Sync() makes everything
//   so far survive a machine crash (fsync).
// - An inode whose last name is removed while it is open (Open/Create pinned it) stays, data
//   and all, until its last Release(); one nobody has open stays unlinked_grace_ms (it can still
//   be opened by number), until PurgeUnlinked(). Both are on the orphan list meanwhile, and an
//   orphan left by a crash is removed when the store is next opened.
// - Exactly-once changes: a change given a RequestId (client, seq) that succeeds records its
//   outcome in the same WriteBatch as the change ("replies" family), so the outcome survives a
//   crash exactly when the change does. The same request again (the client resent it: the
//   reply was lost) returns that outcome and changes nothing — a replayed MakeDir the inode it
//   made, not EEXIST; a replayed Unlink OK, not ENOENT — also after the store is reopened. A
//   change that failed changed nothing and is not recorded (it is done again). A client's
//   outcomes below its RequestId::acked_below are dropped with its next recorded change (a
//   request below it is a stale copy: EALREADY); at most kMaxRepliesPerClient are kept per
//   client; ForgetRequests() drops a client's (kite-fsd: when it expires the client).
// - Errors are FsError() statuses (fs/fs_errors.h): ErrnoOf() gives what the kernel should see.
//   ESTALE: the inode does not exist (any more). Bad input (names with '/' or NUL, longer than
//   kMaxNameBytes, offsets or sizes out of range) is refused with EINVAL/ENAMETOOLONG/EFBIG and
//   changes nothing. A record that does not decode is DataLoss (EIO), never a crash.
//
// Thread safety: every method may be called from any thread. Changes are serialised by one
// mutex; reads run without it on a RocksDB snapshot.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
struct ReadOptions;
}  // namespace rocksdb

namespace kite::fs {

struct InodeRecord;

inline constexpr uint64_t kRootIno = 1;
inline constexpr size_t kMaxNameBytes = 255;
inline constexpr size_t kMaxSymlinkBytes = 4095;
inline constexpr uint64_t kChunkSize = 64 * 1024;
inline constexpr int64_t kMaxFileSize = int64_t{1} << 44;  // 16 TiB
inline constexpr size_t kMaxIoBytes = 4 << 20;             // one Read or Write
inline constexpr size_t kMaxXattrNameBytes = 255;
inline constexpr size_t kMaxXattrValueBytes = 64 * 1024;
inline constexpr uint32_t kMaxLinks = 65000;
// Recorded outcomes kept per client (more than a client can have outstanding: one per FUSE
// worker thread); past it the oldest go, with a warning.
inline constexpr size_t kMaxRepliesPerClient = 1024;

struct StoreOptions {
  std::string path;            // the RocksDB directory; made if missing
  bool sync_metadata = true;   // sync the WAL on every namespace/attribute change
  // Without sync_metadata: how often the WAL is synced when something was written (0: only by
  // Sync()).
  int64_t sync_interval_ms = 100;
  // How long an inode whose last name went while nobody had it open stays openable (by
  // number): a client that looked the name up just before the unlink or rename still gets
  // the file it found, not ESTALE. 0: removed at once.
  int64_t unlinked_grace_ms = 0;
  // An unlinked file that was open when the server stopped (an orphan of a crash): kept this
  // long after the store opens, for its clients to reopen (reclaim) it; then removed unless
  // reopened. 0: removed when the store opens.
  int64_t orphan_reclaim_ms = 0;
  size_t cache_bytes = 64 << 20;  // RocksDB block cache
  // Called with (Owner::client, ino) for every inode made for a client, under the store's lock
  // before the change commits: nobody can name the inode before the hook has run (kite-fsd
  // makes the client a holder of it). Must not call the Store.
  std::function<void(uint64_t client, uint64_t ino)> made = nullptr;
};

// An inode's attributes, as stat(2) and the protocol want them.
struct Attr {
  uint64_t ino = 0;
  uint64_t generation = 0;
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 512-byte units
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t rdev = 0;
  uint64_t data_version = 0;
};

// SetAttr's request: only the fields that are set change.
struct AttrChange {
  static constexpr int64_t kNow = -1;  // a time that means "the store's now"
  std::optional<uint32_t> mode = std::nullopt;        // permission bits (07777)
  std::optional<uint32_t> uid = std::nullopt;
  std::optional<uint32_t> gid = std::nullopt;
  std::optional<int64_t> size = std::nullopt;
  std::optional<int64_t> atime_ns = std::nullopt;
  std::optional<int64_t> mtime_ns = std::nullopt;
};

// A change's request id (exactly-once changes, above; common/kitefs.thrift's RequestId).
struct RequestId {
  uint64_t client = 0;       // the kitefs client's id
  uint64_t seq = 0;          // its sequence number for this change; 0: none (not recorded)
  uint64_t acked_below = 0;  // the client has the replies of its changes with a lower seq
  bool none() const { return client == 0 || seq == 0; }
};

// What a Create with a request id did when it was a replay.
struct CreateReplay {
  bool replayed = false;
  // The handle the first send recorded, which still holds its pin (the store has not been
  // reopened since): the caller has it already. 0: the replay pinned the inode again, for a
  // new handle.
  uint64_t handle = 0;
};

struct Owner {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t client = 0;  // the kitefs client making it, for StoreOptions::made (0: none)
};

struct DirEntry {
  std::string name;
  uint64_t ino = 0;
  uint32_t type = 0;         // S_IFMT bits
  uint64_t next_cookie = 0;  // readdir from here continues after this entry
};

struct DirPage {
  std::vector<DirEntry> entries;
  bool eof = false;
};

struct WriteResult {
  size_t written = 0;
  int64_t offset = 0;  // where the data landed
  Attr attr;
};

struct FsStats {
  uint64_t block_size = 4096;
  uint64_t blocks = 0, blocks_free = 0, blocks_avail = 0;
  uint64_t files = 0, files_free = 0;
  uint32_t name_max = kMaxNameBytes;
};

// The recorded outcome of a change with a request id ("replies" family, docs/kitefs.md); the
// Store's own (at namespace scope only so that it can be a default argument).
struct RecordedOutcome {
  uint64_t incarnation = 0;  // the store's when it was recorded
  uint64_t a = 0, b = 0;     // what else the change returned: inodes, or written/offset ...
  Attr attr;                 // the inode the change returned, as it was then
};

class Store {
 public:
  // Opens (or makes) the store at options.path; orphans a crash left behind are removed, or
  // kept for options.orphan_reclaim_ms (PurgeUnlinked removes them then, unless reopened).
  static StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Grows by one every time the store is opened; new inodes carry it as their generation.
  uint64_t incarnation() const { return incarnation_; }

  StatusOr<Attr> Lookup(uint64_t parent, std::string_view name);
  StatusOr<Attr> GetAttr(uint64_t ino);
  // Every change takes a RequestId (see the contract; {}: none). A replay returns what the first
  // call returned, with the attributes the inode has now (those it had then if it is gone).
  StatusOr<Attr> SetAttr(uint64_t ino, const AttrChange& change, const RequestId& rid = {});

  // mode includes the type: S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR or S_IFBLK (not S_IFDIR/S_IFLNK).
  StatusOr<Attr> MakeNode(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev, Owner owner,
                          const RequestId& rid = {});
  StatusOr<Attr> MakeDir(uint64_t parent, std::string_view name, uint32_t mode, Owner owner, const RequestId& rid = {});
  StatusOr<Attr> MakeSymlink(uint64_t parent, std::string_view name, std::string_view target, Owner owner,
                             const RequestId& rid = {});
  StatusOr<std::string> ReadLink(uint64_t ino);
  // `removed` (if given) gets the inode the name led to, read in the same step as the change.
  Status Unlink(uint64_t parent, std::string_view name, uint64_t* removed = nullptr, const RequestId& rid = {});
  Status RemoveDir(uint64_t parent, std::string_view name, uint64_t* removed = nullptr, const RequestId& rid = {});
  // flags: RENAME_NOREPLACE, RENAME_EXCHANGE (Linux values); anything else is EINVAL. `moved`
  // and `replaced` (if given) get the inodes the two names led to before (0: none), read in
  // the same step as the change.
  Status Rename(uint64_t parent, std::string_view name, uint64_t new_parent, std::string_view new_name,
                uint32_t flags, uint64_t* moved = nullptr, uint64_t* replaced = nullptr, const RequestId& rid = {});
  StatusOr<Attr> Link(uint64_t ino, uint64_t new_parent, std::string_view new_name, const RequestId& rid = {});

  // Open and Create pin the inode (see the contract); every success needs one Release(ino).
  // flags: open(2)'s; O_TRUNC truncates a regular file, a directory opened for writing is EISDIR.
  StatusOr<Attr> Open(uint64_t ino, int flags);
  // Opens `name` in `parent`, making it (a regular file with `mode`) if missing. O_EXCL: EEXIST
  // if it exists. *created tells which happened. With a request id the outcome is recorded
  // also when the file existed (a resend must not open it twice), with `handle`, the caller's
  // name for this open; a replay fills *replay (if given) and pins the inode again unless the
  // first send's pin still holds (CreateReplay). ESTALE: replayed, but the file is gone.
  StatusOr<Attr> Create(uint64_t parent, std::string_view name, uint32_t mode, int flags, Owner owner,
                        bool* created, const RequestId& rid = {}, uint64_t handle = 0,
                        CreateReplay* replay = nullptr);
  Status Release(uint64_t ino);
  // How many pins `ino` has (tests).
  int TEST_PinCount(uint64_t ino);
  // Removes the unpinned orphans whose grace ended before `now_ns` (the store's clock);
  // returns how many.
  StatusOr<int> PurgeUnlinked(int64_t now_ns);
  // The store's clock now (wall-clock nanoseconds).
  static int64_t WallNowNs();

  // At most `size` (<= kMaxIoBytes) bytes from `offset`; short only at the end of the file.
  StatusOr<std::string> Read(uint64_t ino, int64_t offset, size_t size);
  // append: at the end of the file (offset ignored), atomically with other writers.
  StatusOr<WriteResult> Write(uint64_t ino, int64_t offset, std::string_view data, bool append,
                              const RequestId& rid = {});
  // Makes everything written so far survive a machine crash (syncs the WAL).
  Status Sync();
  // mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE
  // (with or without FALLOC_FL_KEEP_SIZE); others EOPNOTSUPP.
  StatusOr<Attr> Fallocate(uint64_t ino, int mode, int64_t offset, int64_t length);

  // Entries of directory `ino` from `cookie` (0: the start, with "." and ".."), at most
  // max_entries.
  StatusOr<DirPage> ReadDir(uint64_t ino, uint64_t cookie, size_t max_entries);
  StatusOr<FsStats> StatFs();

  // flags: XATTR_CREATE, XATTR_REPLACE.
  Status SetXattr(uint64_t ino, std::string_view name, std::string_view value, int flags, const RequestId& rid = {});
  StatusOr<std::string> GetXattr(uint64_t ino, std::string_view name);
  StatusOr<std::vector<std::string>> ListXattr(uint64_t ino);
  Status RemoveXattr(uint64_t ino, std::string_view name, const RequestId& rid = {});

  // Drops every outcome recorded for `client` (it is gone: kite-fsd expired it).
  Status ForgetRequests(uint64_t client);
  // The clients that have recorded outcomes.
  std::vector<uint64_t> RequestClients();
  // How many outcomes are recorded for `client` (tests).
  size_t TEST_RecordedRequests(uint64_t client);

 private:
  Store() = default;
  Status Init(const StoreOptions& options);

  // Reads, as of `ro` (a snapshot for lock-free readers; the latest state under mu_).
  // LoadInode: ESTALE if the inode does not exist. LoadDir: also ENOTDIR.
  StatusOr<InodeRecord> LoadInode(const rocksdb::ReadOptions& ro, uint64_t ino);
  StatusOr<InodeRecord> LoadDir(const rocksdb::ReadOptions& ro, uint64_t ino, std::string_view op);
  // The child `name` of directory `parent` and its listing sequence number: ENOENT if none.
  struct DentryValue {
    uint64_t ino = 0;
    uint32_t type = 0;
    uint64_t seq = 0;
  };
  StatusOr<DentryValue> LoadDentry(const rocksdb::ReadOptions& ro, uint64_t parent, std::string_view name);

  // Helpers for changes; EXCLUSIVE_LOCKS_REQUIRED(mu_).
  int64_t Now();
  uint64_t AllocateIno();
  void PutInode(rocksdb::WriteBatch* b, const InodeRecord& r);
  void AddDentry(rocksdb::WriteBatch* b, InodeRecord* dir, std::string_view name, uint64_t ino, uint32_t type);
  void RemoveDentry(rocksdb::WriteBatch* b, uint64_t parent, std::string_view name, const DentryValue& d);
  // One link of `r` is gone: puts it back with nlink-1, or purges it (or lists it as an orphan
  // when pinned) when that was its last.
  void DropLink(rocksdb::WriteBatch* b, InodeRecord* r, int64_t now);
  void Purge(rocksdb::WriteBatch* b, const InodeRecord& r);
  void DeleteChunks(rocksdb::WriteBatch* b, uint64_t ino, uint64_t first, uint64_t end);
  Status TruncateData(rocksdb::WriteBatch* b, const InodeRecord& r, uint64_t new_size);
  Status ZeroRange(rocksdb::WriteBatch* b, const InodeRecord& r, uint64_t offset, uint64_t length);
  using Outcome = RecordedOutcome;
  // EXCLUSIVE_LOCKS_REQUIRED(mu_): rid's recorded outcome if it is a replay, nullopt if not (or
  // rid is none); EALREADY for a request the client acknowledged (a stale copy).
  StatusOr<std::optional<Outcome>> FindOutcome(const RequestId& rid);
  // The inode's attributes now, or as the outcome recorded them if it is gone.
  Attr Refreshed(const Outcome& o);
  StatusOr<InodeRecord> MakeInode(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                                  Owner owner, std::string_view symlink_target, const RequestId& rid,
                                  uint64_t created_handle = 0);
  StatusOr<Attr> OpenLocked(InodeRecord* r, int flags, const RequestId& rid = {}, uint64_t handle = 0);
  // With rid (not none), `outcome` is recorded in the same batch and what the client
  // acknowledged is dropped.
  Status Commit(rocksdb::WriteBatch* b, bool sync, std::string_view what, const RequestId& rid = {},
                const Outcome& outcome = {});
  Status RemoveOrphans(int64_t reclaim_ms);

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // owned; closed in ~Store
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* inodes_ = nullptr;
  rocksdb::ColumnFamilyHandle* dentries_ = nullptr;
  rocksdb::ColumnFamilyHandle* dirlist_ = nullptr;
  rocksdb::ColumnFamilyHandle* chunks_ = nullptr;
  rocksdb::ColumnFamilyHandle* xattrs_ = nullptr;
  rocksdb::ColumnFamilyHandle* replies_ = nullptr;
  std::string path_;
  bool sync_metadata_ = true;
  // The background WAL sync (sync_interval_ms): `unsynced_` says a commit came since the last.
  void SyncLoop(std::chrono::milliseconds interval);
  std::atomic<bool> unsynced_{false};
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  bool stopping_ = false;  // GUARDED_BY(sync_mu_)
  std::thread syncer_;
  std::function<void(uint64_t client, uint64_t ino)> made_;
  int64_t unlinked_grace_ns_ = 0;
  uint64_t incarnation_ = 0;

  // Serialises every change: a change reads, decides and writes one batch under it.
  std::mutex mu_;
  uint64_t next_ino_ = 0;                 // GUARDED_BY(mu_)
  int64_t last_time_ns_ = 0;              // GUARDED_BY(mu_)
  std::map<uint64_t, int> pins_;          // GUARDED_BY(mu_): ino → open handles
  // Which outcomes the "replies" family holds, per client (loaded at open), and the lowest seq
  // each client still waits for (in memory only: a stale copy dies with the process).
  struct ClientRequests {
    std::set<uint64_t> seqs;
    uint64_t acked_below = 0;
  };
  std::map<uint64_t, ClientRequests> requests_;  // GUARDED_BY(mu_)
};

}  // namespace kite::fs
