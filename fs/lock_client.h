// LockClient: the kitefs client's side of POSIX (fcntl) and BSD (flock) locks. kite-fsd holds
// the locks (fs/lock_table.h), so they exclude across hosts; this class asks for them on behalf
// of the FUSE setlk/getlk/flock handlers, keeps a record of the locks this client holds, and
// takes them back (reclaim) when the server restarts. Private to fs/ (FuseOps uses it).
//
// Waiting (F_SETLKW, flock without LOCK_NB) never ties up a FUSE worker thread: the handler
// makes one non-blocking try, and if it must wait, hands the request to a waiter thread of its
// own and returns. The waiter asks the server again and again, each call waiting there at most
// kWaitSliceMs for the lock (the server wakes it as soon as the lock goes). Between calls it
// checks for a FUSE interrupt (the waiting process got a signal, or was killed): then it
// replies EINTR (the kernel restarts the call for an SA_RESTART handler). So a signal ends a
// wait within about kWaitSliceMs, and a waiting process can always be killed. Requests the
// server refuses during its grace period after a restart (ENOLCK, Unavailable) are asked again
// the same way: a restart is a delay, not an error. Deadlocks between hosts are not detected
// (no EDEADLK): the processes wait until one of them is interrupted.
//
// The record (a LockSet of this client's locks) is what Reclaim() sends after a restart and
// what lets close (flush) and release skip the server when the closing owner holds nothing.
// Every lock call holds reclaim_mu_ shared from its call to its record update, and Reclaim holds
// it exclusively, so a reclaim never resends a lock released meanwhile.
//
// Thread safety: all methods from any thread. Lock order: reclaim_mu_ before mu_.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "common/status.h"
#include "fs/lock_set.h"
#include "fs/server_pool.h"

namespace kite::fs {

class LockClient {
 public:
  static constexpr int kWaitSliceMs = 1000;   // one server call's wait for a lock
  static constexpr int kGraceRetryMs = 250;   // pause before asking again during a grace period

  LockClient(ServerPool* pool, uint64_t client_id) : pool_(pool), client_id_(client_id) {}
  ~LockClient() { Shutdown(); }

  // FUSE setlk (kind POSIX) and flock (kind FLOCK): sets or releases `l` (its owner's client_id
  // is ignored: ours) and replies to `req` — at once, or from a waiter thread when `sleep` and
  // the lock is held by another owner, or while the server is in its grace period.
  void SetLock(fuse_req_t req, uint64_t ino, HeldLock l, bool sleep);
  // FUSE getlk: replies the first conflicting lock (pid 0 when another host holds it: its pid
  // means nothing here), or F_UNLCK.
  void GetLock(fuse_req_t req, uint64_t ino, HeldLock l);
  // Releases the locks of `kind` that `owner` holds on `ino` (close: flush for POSIX locks,
  // release for flock and OFD locks). No server call when the record says it holds none.
  Status ReleaseOwner(uint64_t ino, int kind, uint64_t owner);
  // After a server restart: takes back every lock in the record. A lock another client got
  // meanwhile (the reclaim came after the grace period) is lost: logged, and dropped from the
  // record.
  void Reclaim();
  // Unmounting: waiting requests get EINTR; joins the waiter threads. Call before the FUSE
  // session is destroyed.
  void Shutdown();

 private:
  struct Waiter {
    fuse_req_t req = nullptr;
    uint64_t ino = 0;
    HeldLock lock;
    bool sleep = false;
    bool get = false;           // a getlk waiting out a grace period
    bool interrupted = false;   // GUARDED_BY(mu_)
    bool done = false;          // GUARDED_BY(mu_)
    std::thread thread;
  };
  enum class Outcome { kGranted, kConflict, kGrace, kFailed };
  // One setlk call; on success the record is updated. *s: the failure.
  Outcome TrySet(uint64_t ino, const HeldLock& l, int wait_ms, bool reclaim, Status* s);
  // One getlk call.
  Outcome TryGet(uint64_t ino, const HeldLock& l, fsrpc::FileLock* conflict, Status* s);
  void ReplyLock(fuse_req_t req, const fsrpc::FileLock& c, const HeldLock& asked);
  // Hands `req` to a new waiter thread.
  void StartWaiter(fuse_req_t req, uint64_t ino, const HeldLock& l, bool sleep, bool get);
  void RunWaiter(Waiter* w);
  static void OnInterrupt(fuse_req_t req, void* data);
  void ReapLocked(std::vector<std::thread>* done);  // EXCLUSIVE_LOCKS_REQUIRED(mu_)

  ServerPool* const pool_;
  const uint64_t client_id_;
  std::shared_mutex reclaim_mu_;      // shared: a lock call; exclusive: Reclaim
  std::mutex mu_;
  std::condition_variable cv_;        // an interrupt, or shutdown
  LockSet held_;                      // GUARDED_BY(mu_): this client's locks
  std::list<Waiter> waiters_;         // GUARDED_BY(mu_)
  bool stopping_ = false;             // GUARDED_BY(mu_)
};

}  // namespace kite::fs
