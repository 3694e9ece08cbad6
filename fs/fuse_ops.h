// FuseOps: the FUSE low-level handlers of the kitefs client. Private to fs/ (FuseMount wires
// them to a session).
//
// Every handler speaks errno to the kernel: it makes its FileService call(s) through the
// ServerPool, turns a failure into an errno with ErrnoOf (fs/fs_errors.h, the one table),
// and replies exactly once. Nothing throws across the C boundary: the trampolines in
// fuse_ops.cc catch everything (bad_alloc → ENOMEM, anything else → EIO) before it reaches
// libfuse.
//
// Caching: the kernel caches positive entries, attributes (entry/attr_timeout) and file data in
// its page cache; names that do not exist are cached here (fs/negative_cache.h says why not in
// the kernel). The server's invalidations
// (ApplyInvalidations, fed by FuseMount's poller) drop what other hosts changed before their
// changes return; NodeTable checks again at each open
// (close-to-open), which also covers invalidations lost to a server restart. Writes go through
// to the server synchronously (no write-back cache), so a close has nothing left to flush and
// the data is on the server when write(2) returns. A file the server reports write-shared, and
// every file opened with O_APPEND, is read and written with direct I/O (no page cache); for an
// append the server picks the offset, so appenders on different hosts never overwrite each
// other.
//
// Read-only opens without a round trip: a build opens the same headers thousands of times. The
// first read-only open of a file asks the server (close-to-open) and its handle is then shared
// by every read-only open of the file on this host, and kept for kSharedReadLinger after the
// last close. A later read-only open uses it without asking the server when (1) the callback
// channel is live (the poller heard from the server within kCallbacksLiveFor, so every change
// another host made to the file has been applied to this kernel before that change returned)
// and (2) the page cache of the file is trusted (NodeTable: no data invalidation since an open
// gave its version). The server still sees the file open here (unlinked files stay, writers
// elsewhere get write sharing); an idle shared handle is released when the file is
// invalidated, when it has lingered, or when there are more than kMaxIdleSharedReads.
//
// Locks: getlk/setlk (fcntl) and flock go to kite-fsd through LockClient (fs/lock_client.h),
// which never ties up a worker thread while a lock request waits. A close (flush) releases the
// closing process's fcntl locks on the file; the last close of an open file description
// (release) its flock locks and the OFD locks taken through it.
//
// Changes (mkdir, unlink, rename, create, setattr, appends, xattrs ...) carry a request id
// from ChangeIds, the same for every resend: the server answers a resend whose first send it
// did with that first outcome, so they are resent over a server restart like idempotent calls
// and the application sees a delay, never EEXIST/ENOENT for its own change or EIO.
//
// Server restarts: every open file remembers the server incarnation its handle belongs to;
// after a restart ReopenAll() opens them again (the new server so knows who has what open,
// for write sharing, and keeps unlinked open files), and LockClient reclaims the locks.
//
// Thread safety: handlers run on libfuse's worker threads concurrently. Lock order: files_mu_
// before nothing (no other lock is taken under it).
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#include "fs/change_ids.h"
#include "fs/lock_client.h"
#include "fs/negative_cache.h"
#include "fs/node_table.h"
#include "fs/server_pool.h"

namespace kite::fs {

class FuseOps {
 public:
  struct Options {
    double entry_timeout_s = 30.0;
    double attr_timeout_s = 30.0;
  };
  FuseOps(ServerPool* pool, uint64_t client_id, Options options)
      : pool_(pool), client_id_(client_id), options_(options), locks_(pool, client_id) {}

  // The handler table for fuse_session_new(); the userdata must be this FuseOps.
  static const fuse_lowlevel_ops* Table();
  // The session, for cache invalidations (set before the session loop starts).
  void set_session(fuse_session* se) { session_.store(se); }
  NodeTable& nodes() { return nodes_; }

  // Applies the server's invalidations to the kernel's caches. Called from the poller thread,
  // never from a handler (an entry invalidation takes the directory's lock, which a handler's
  // request may hold).
  void ApplyInvalidations(const std::vector<fsrpc::Invalidation>& items);
  // Events were lost: drops the cached attributes and data of every inode the kernel holds.
  void InvalidateAll();
  // The server restarted as `incarnation`: holds again every inode the kernel may cache (the
  // server sends invalidations to holders only), opens again every file open with an older one,
  // then reclaims this client's locks. From the poller thread, within the server's grace period.
  void ReclaimAfterRestart(int64_t incarnation);
  // Unmounting: lock requests still waiting get EINTR. Before the session is destroyed.
  void Shutdown() { locks_.Shutdown(); }
  // The poller heard from the server and applied what it said: cached opens are safe for a
  // while (see "Read-only opens" above).
  void CallbacksLive();
  // From the poller: releases the shared read handles that lingered long enough (all of them
  // with `all`).
  void ReleaseIdleReads(bool all = false);

  void Init(fuse_conn_info* conn);
  void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
  void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets);
  void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi);
  void ReadLink(fuse_req_t req, fuse_ino_t ino);
  void MkNod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
  void MkDir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
  void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name);
  void RmDir(fuse_req_t req, fuse_ino_t parent, const char* name);
  void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name);
  void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
              unsigned int flags);
  void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname);
  void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
  void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info* fi);
  void Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  void ReleaseDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void FsyncDir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  void StatFs(fuse_req_t req, fuse_ino_t ino);
  void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags);
  void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
  void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size);
  void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name);
  void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info* fi);
  void GetLk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock);
  void SetLk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock, int sleep);
  void Flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op);

 private:
  // What fi->fh points to for an open file (an open file description of the kernel). Its
  // mutable fields are guarded by files_mu_ (ReopenAll replaces the handle).
  struct OpenFile {
    uint64_t serial = 0;         // tells apart two OpenFiles at one address
    uint64_t ino = 0;
    int flags = 0;
    bool append = false;
    int64_t handle = 0;          // GUARDED_BY(files_mu_)
    int64_t incarnation = 0;     // GUARDED_BY(files_mu_): the server's, when handle was given
    bool shared_read = false;    // GUARDED_BY(files_mu_): handle is shared_reads_[ino]'s
    // fcntl lock owners that locked through this description and have not closed a file
    // since (see Flush): at the last close, what they still hold are OFD locks.
    std::set<uint64_t> lock_owners;  // GUARDED_BY(files_mu_)
  };
  // Registers a new open file (FinishOpen) / unregisters it and returns its handle (release).
  OpenFile* AddFile(uint64_t ino, int flags, const fsrpc::OpenReply& reply);
  int64_t RemoveFile(OpenFile* f);
  void ReleaseHandle(int64_t handle);
  // hold() of every inode the kernel may cache, after a server restart.
  void HoldAgain();
  void ReplyError(fuse_req_t req, const Status& s);
  // entry_timeout_s < 0: the configured one.
  void ReplyEntry(fuse_req_t req, const fsrpc::Attr& a, double entry_timeout_s = -1);
  // Fills fi for an open of the file whose attributes (after the open) are `a`.
  void FinishOpen(fuse_ino_t ino, const fsrpc::OpenReply& reply, fuse_file_info* fi);

  // A read-only server handle shared by this host's read-only opens of one file.
  struct SharedRead {
    int64_t handle = 0;
    int64_t incarnation = 0;
    int users = 0;                 // OpenFiles using it
    bool retired = false;          // the file changed: no new users; released at the last close
    std::chrono::steady_clock::time_point idle_since;
  };
  static constexpr std::chrono::seconds kSharedReadLinger{30};
  static constexpr size_t kMaxIdleSharedReads = 4096;
  static constexpr std::chrono::milliseconds kCallbacksLiveFor{1200};
  bool CallbacksAreLive() const;
  class NameMade;
  // Opens `ino` read-only with the shared handle if that is safe (see above); false: ask.
  bool OpenShared(fuse_ino_t ino, fuse_file_info* fi);
  // The file changed elsewhere: its shared handle takes no new users (released now if idle).
  void RetireSharedRead(uint64_t ino);

  ServerPool* const pool_;
  const uint64_t client_id_;
  const Options options_;
  std::atomic<fuse_session*> session_{nullptr};
  NodeTable nodes_;
  NegativeCache negatives_;
  LockClient locks_;
  // Request ids of changes (exactly-once across a lost reply and a server restart).
  ChangeIds changes_;
  std::mutex files_mu_;
  std::set<OpenFile*> files_;       // GUARDED_BY(files_mu_): every open file
  uint64_t next_serial_ = 1;        // GUARDED_BY(files_mu_)
  size_t files_with_owners_ = 0;    // GUARDED_BY(files_mu_): how many have lock_owners
  std::unordered_map<uint64_t, SharedRead> shared_reads_;  // GUARDED_BY(files_mu_): by ino
  std::atomic<int64_t> callbacks_live_until_ns_{0};  // steady clock
  std::chrono::steady_clock::time_point last_idle_scan_;  // GUARDED_BY(files_mu_)
};

}  // namespace kite::fs
