// LockClient: lock calls to kite-fsd, waiter threads for requests that must wait, the record of
// held locks and its reclaim after a server restart.
#include "fs/lock_client.h"

#include <fcntl.h>

#include <string>
#include <vector>

#include "common/log.h"
#include "fs/fs_errors.h"

namespace kite::fs {
namespace {

using Client = ServerPool::Client;

fsrpc::FileLock ToWire(const HeldLock& l) {
  fsrpc::FileLock w;
  w.kind = l.kind;
  w.type = l.type;
  w.first = l.start;
  w.last = l.end;
  w.owner = static_cast<int64_t>(l.owner.owner);
  w.pid = l.pid;
  w.client_id = static_cast<int64_t>(l.owner.client_id);
  return w;
}

// The server refused for its grace period after a restart: ask again later.
bool IsGrace(const Status& s) { return s.code() == StatusCode::kUnavailable && ErrnoOf(s) == ENOLCK; }

}  // namespace

LockClient::Outcome LockClient::TrySet(uint64_t ino, const HeldLock& l, int wait_ms, bool reclaim, Status* out) {
  std::shared_lock<std::shared_mutex> rl(reclaim_mu_);
  fsrpc::FileLock w = ToWire(l);
  // Idempotent: asking again for the same lock (or unlock) by the same owner changes nothing.
  Status s = pool_->Call("setlk", [&](Client& c) {
    c.setlk(static_cast<int64_t>(client_id_), static_cast<int64_t>(ino), w, wait_ms, reclaim);
  });
  std::lock_guard<std::mutex> lock(mu_);
  if (s.ok()) {
    held_.Apply(ino, l);
    return Outcome::kGranted;
  }
  *out = s;
  if (IsGrace(s)) return Outcome::kGrace;
  if (ErrnoOf(s) == EAGAIN) {
    // A flock conversion dropped the old lock before it found the conflict (flock(2) says so).
    if (l.kind == kLockFlock) held_.ReleaseOwner(ino, kLockFlock, l.owner);
    return Outcome::kConflict;
  }
  return Outcome::kFailed;
}

LockClient::Outcome LockClient::TryGet(uint64_t ino, const HeldLock& l, fsrpc::FileLock* conflict, Status* out) {
  fsrpc::FileLock w = ToWire(l);
  Status s = pool_->Call("getlk", [&](Client& c) {
    c.getlk(*conflict, static_cast<int64_t>(client_id_), static_cast<int64_t>(ino), w);
  });
  if (s.ok()) return Outcome::kGranted;
  *out = s;
  return IsGrace(s) ? Outcome::kGrace : Outcome::kFailed;
}

void LockClient::ReplyLock(fuse_req_t req, const fsrpc::FileLock& c, const HeldLock& asked) {
  struct flock f {};
  f.l_whence = SEEK_SET;
  if (c.type == F_UNLCK) {
    f.l_type = F_UNLCK;
    f.l_start = asked.start;
    f.l_len = asked.end == kLockToEof ? 0 : asked.end - asked.start + 1;
    f.l_pid = 0;
  } else {
    f.l_type = static_cast<short>(c.type);
    f.l_start = c.first;
    f.l_len = c.last == kLockToEof ? 0 : c.last - c.first + 1;
    // Another host's pid would name some unrelated process here.
    f.l_pid = static_cast<uint64_t>(c.client_id) == client_id_ ? c.pid : 0;
  }
  fuse_reply_lock(req, &f);
}

void LockClient::SetLock(fuse_req_t req, uint64_t ino, HeldLock l, bool sleep) {
  l.owner.client_id = client_id_;
  Status s;
  switch (TrySet(ino, l, 0, false, &s)) {
    case Outcome::kGranted:
      fuse_reply_err(req, 0);
      return;
    case Outcome::kConflict:
      if (!sleep) {
        fuse_reply_err(req, EAGAIN);
        return;
      }
      break;
    case Outcome::kGrace:
      break;
    case Outcome::kFailed:
      KLOG_WARN("{}", s.message());
      fuse_reply_err(req, ErrnoOf(s));
      return;
  }
  StartWaiter(req, ino, l, sleep, /*get=*/false);
}

void LockClient::GetLock(fuse_req_t req, uint64_t ino, HeldLock l) {
  l.owner.client_id = client_id_;
  fsrpc::FileLock conflict;
  Status s;
  switch (TryGet(ino, l, &conflict, &s)) {
    case Outcome::kGranted:
      ReplyLock(req, conflict, l);
      return;
    case Outcome::kGrace:
      StartWaiter(req, ino, l, false, /*get=*/true);
      return;
    default:
      KLOG_WARN("{}", s.message());
      fuse_reply_err(req, ErrnoOf(s));
      return;
  }
}

Status LockClient::ReleaseOwner(uint64_t ino, int kind, uint64_t owner) {
  HeldLock l;
  l.kind = kind;
  l.type = F_UNLCK;
  l.start = 0;
  l.end = kLockToEof;
  l.owner = LockOwner{client_id_, owner};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!held_.Holds(ino, kind, l.owner)) return OkStatus();
  }
  Status s;
  return TrySet(ino, l, 0, false, &s) == Outcome::kGranted ? OkStatus() : s;
}

void LockClient::Reclaim() {
  std::unique_lock<std::shared_mutex> excl(reclaim_mu_);
  std::vector<std::pair<uint64_t, HeldLock>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all = held_.All();
  }
  if (all.empty()) return;
  size_t lost = 0;
  for (const auto& [ino, l] : all) {
    fsrpc::FileLock w = ToWire(l);
    Status s = pool_->Call("setlk (reclaim)", [&](Client& c) {
      c.setlk(static_cast<int64_t>(client_id_), static_cast<int64_t>(ino), w, 0, /*reclaim=*/true);
    });
    if (s.ok()) continue;
    // Another client got it after the grace period, or the file is gone. Nothing can tell the
    // process; the record must at least not claim the lock.
    ++lost;
    KLOG_ERROR("lost a {} lock on inode {} (bytes {}..{}, pid {}) at the server restart: {}",
               l.kind == kLockFlock ? "flock" : "fcntl", ino, l.start, l.end, l.pid, s.message());
    HeldLock unlock = l;
    unlock.type = F_UNLCK;
    std::lock_guard<std::mutex> lock(mu_);
    held_.Apply(ino, unlock);
  }
  KLOG_INFO("reclaimed {} of {} lock(s) after the server restarted", all.size() - lost, all.size());
}

void LockClient::OnInterrupt(fuse_req_t req, void* data) {
  auto* self = static_cast<LockClient*>(data);
  std::lock_guard<std::mutex> lock(self->mu_);
  for (Waiter& w : self->waiters_) {
    if (w.req == req && !w.done) w.interrupted = true;
  }
  self->cv_.notify_all();
}

void LockClient::ReapLocked(std::vector<std::thread>* done) {
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (!it->done) {
      ++it;
      continue;
    }
    done->push_back(std::move(it->thread));
    it = waiters_.erase(it);
  }
}

void LockClient::StartWaiter(fuse_req_t req, uint64_t ino, const HeldLock& l, bool sleep, bool get) {
  std::vector<std::thread> finished;
  Waiter* w;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ReapLocked(&finished);
    if (stopping_) {
      fuse_reply_err(req, EINTR);
      return;
    }
    w = &waiters_.emplace_back();
    w->req = req;
    w->ino = ino;
    w->lock = l;
    w->sleep = sleep;
    w->get = get;
  }
  for (auto& t : finished) t.join();
  // Calls OnInterrupt at once if the interrupt came already (so not under mu_; the entry
  // exists for it to find).
  fuse_req_interrupt_func(req, &LockClient::OnInterrupt, this);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      w->thread = std::thread([this, w] { RunWaiter(w); });
      return;
    }
    w->done = true;  // Shutdown came between: no thread
  }
  fuse_reply_err(req, EINTR);
}

void LockClient::RunWaiter(Waiter* w) {
  int err = 0;
  bool got = false;
  fsrpc::FileLock conflict;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (w->interrupted || stopping_) {
        err = EINTR;
        break;
      }
    }
    Status s;
    Outcome o = w->get ? TryGet(w->ino, w->lock, &conflict, &s)
                       : TrySet(w->ino, w->lock, w->sleep ? kWaitSliceMs : 0, false, &s);
    if (o == Outcome::kGranted) {
      got = w->get;
      break;
    }
    if (o == Outcome::kFailed || (o == Outcome::kConflict && !w->sleep)) {
      if (o == Outcome::kFailed) KLOG_WARN("{}", s.message());
      err = ErrnoOf(s);
      break;
    }
    if (o == Outcome::kGrace) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(kGraceRetryMs), [&] { return w->interrupted || stopping_; });
    }
    // kConflict while sleeping: the server waited a slice already; ask again at once.
  }
  fuse_req_t req = w->req;
  HeldLock asked = w->lock;
  {
    // Done before the reply: once replied, `req` may be reused for another request, and an
    // interrupt of that one must not be taken for ours. From here on *w may be reaped.
    std::lock_guard<std::mutex> lock(mu_);
    w->done = true;
  }
  if (got) {
    ReplyLock(req, conflict, asked);
  } else {
    fuse_reply_err(req, err);
  }
}

void LockClient::Shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (Waiter& w : waiters_) {
      if (w.thread.joinable()) threads.push_back(std::move(w.thread));
    }
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
  std::lock_guard<std::mutex> lock(mu_);
  waiters_.clear();
}

}  // namespace kite::fs
