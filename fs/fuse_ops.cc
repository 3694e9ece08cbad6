// FuseOps: one FileService call per kernel request (two for none), replies in errno. The
// trampolines at the bottom are the C boundary.
#include "fs/fuse_ops.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "common/log.h"
#include "fs/fs_errors.h"
#include "kite/fsrpc/kitefs_constants.h"

namespace kite::fs {
namespace {

using Client = ServerPool::Client;

// File capabilities: the kernel asks for this attribute before every write (to drop it), which
// would cost a round trip per write. kitefs does not store it: getting it is ENODATA without
// asking the server, setting it is EOPNOTSUPP — never a wrong answer.
constexpr char kCapabilityXattr[] = "security.capability";
// "system.*" attributes (POSIX ACLs): the server refuses them (EOPNOTSUPP: nothing would enforce
// them), so the client answers without asking; cp -a and tar try one for every file they copy.
bool IsSystemXattr(const char* name) { return std::strncmp(name, "system.", 7) == 0; }

timespec ToTimespec(int64_t ns) {
  timespec ts;
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    --ts.tv_sec;
  }
  return ts;
}

struct stat ToStat(const fsrpc::Attr& a) {
  struct stat st {};
  st.st_ino = static_cast<ino_t>(a.ino);
  st.st_mode = static_cast<mode_t>(a.mode);
  st.st_nlink = static_cast<nlink_t>(a.nlink);
  st.st_uid = static_cast<uid_t>(a.uid);
  st.st_gid = static_cast<gid_t>(a.gid);
  st.st_size = a.size;
  st.st_blocks = a.blocks;
  st.st_blksize = 64 * 1024;  // stdio buffers of a chunk: fewer, larger writes
  st.st_rdev = static_cast<dev_t>(a.rdev);
  st.st_atim = ToTimespec(a.atime_ns);
  st.st_mtim = ToTimespec(a.mtime_ns);
  st.st_ctim = ToTimespec(a.ctime_ns);
  return st;
}

fsrpc::Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  fsrpc::Caller c;
  c.uid = static_cast<int32_t>(ctx->uid);
  c.gid = static_cast<int32_t>(ctx->gid);
  return c;
}

int64_t Ino(fuse_ino_t ino) { return static_cast<int64_t>(ino); }

}  // namespace

void FuseOps::ReplyError(fuse_req_t req, const Status& s) {
  int err = ErrnoOf(s);
  if (err == EIO) {
    KLOG_WARN("{}", s.message());
  } else if (err != ENOENT && err != ENODATA) {
    KLOG_DEBUG("{}", s.message());
  }
  fuse_reply_err(req, err);
}

// A name this client makes (parent, name) is no negative entry any more: erased before the call
// (a lookup in flight then cannot insert it) and after it (nor one answered in between).
class FuseOps::NameMade {
 public:
  NameMade(NegativeCache* cache, fuse_ino_t parent, const char* name) : cache_(cache), parent_(parent), name_(name) {
    cache_->Erase(parent_, name_);
  }
  ~NameMade() { cache_->Erase(parent_, name_); }
  NameMade(const NameMade&) = delete;
  NameMade& operator=(const NameMade&) = delete;

 private:
  NegativeCache* cache_;
  uint64_t parent_;
  const char* name_;
};

void FuseOps::ReplyEntry(fuse_req_t req, const fsrpc::Attr& a, double entry_timeout_s) {
  fuse_entry_param e{};
  e.ino = static_cast<fuse_ino_t>(a.ino);
  e.generation = static_cast<uint64_t>(a.generation);
  e.attr = ToStat(a);
  e.attr_timeout = options_.attr_timeout_s;
  e.entry_timeout = entry_timeout_s < 0 ? options_.entry_timeout_s : entry_timeout_s;
  nodes_.Entered(e.ino, a.ctime_ns);
  fuse_reply_entry(req, &e);
}

void FuseOps::Init(fuse_conn_info* conn) {
  // O_TRUNC travels with the open (the server truncates in the same step).
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  // A symlink's target never changes (rename replaces the inode): cache it.
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  // The kernel must not keep dirty pages or set mtime itself (one clock: the server's).
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // A changed mtime or size seen in fresh attributes drops the cached pages too.
  if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  // Locks are the server's, so they exclude across hosts (fs/lock_client.h).
  if (conn->capable & FUSE_CAP_POSIX_LOCKS) conn->want |= FUSE_CAP_POSIX_LOCKS;
  if (conn->capable & FUSE_CAP_FLOCK_LOCKS) conn->want |= FUSE_CAP_FLOCK_LOCKS;
  conn->max_write = 1 << 20;
  conn->max_readahead = 1 << 20;
  conn->time_gran = 1;
}

void FuseOps::Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  // A name known not to exist (a compiler looks for each header in every -I directory) is
  // answered here while the callbacks are live: any host making it invalidates it first.
  if (CallbacksAreLive() && negatives_.Contains(parent, name)) return (void)fuse_reply_err(req, ENOENT);
  const uint64_t ticket = negatives_.Ticket(parent);
  fsrpc::Attr a;
  Status s = pool_->Call("lookup", [&](Client& c) { c.lookup(a, Ino(parent), name, static_cast<int64_t>(client_id_)); });
  if (!s.ok() && ErrnoOf(s) == ENOENT) {
    // Kept here, not as a kernel negative entry (fs/negative_cache.h says why): an error reply
    // leaves the kernel nothing it trusts, so it asks again at its next path walk. This lookup
    // made us a holder of the directory, so a name made there by any host is invalidated
    // before its change returns.
    negatives_.Insert(parent, name, ticket);
    return (void)fuse_reply_err(req, ENOENT);
  }
  if (!s.ok()) return ReplyError(req, s);
  // An invalidation of this directory that came while we asked may have been for this very
  // name, and applied before the kernel had the entry (nothing to drop then): the kernel gets
  // the entry but does not trust it (it asks again at its next use).
  ReplyEntry(req, a, negatives_.Ticket(parent) == ticket ? -1.0 : 0.0);
}

void FuseOps::Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  nodes_.Forget(ino, nlookup);
  fuse_reply_none(req);
}

void FuseOps::ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) nodes_.Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void FuseOps::GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  fsrpc::Attr a;
  Status s = pool_->Call("getattr", [&](Client& c) { c.getattr(a, Ino(ino), static_cast<int64_t>(client_id_)); });
  if (!s.ok()) return ReplyError(req, s);
  struct stat st = ToStat(a);
  nodes_.AttrGiven(ino, a.ctime_ns);
  fuse_reply_attr(req, &st, options_.attr_timeout_s);
}

void FuseOps::SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  fsrpc::SetAttr w;
  if (to_set & FUSE_SET_ATTR_MODE) w.__set_mode(static_cast<int32_t>(attr->st_mode & 07777));
  if (to_set & FUSE_SET_ATTR_UID) w.__set_uid(static_cast<int32_t>(attr->st_uid));
  if (to_set & FUSE_SET_ATTR_GID) w.__set_gid(static_cast<int32_t>(attr->st_gid));
  if (to_set & FUSE_SET_ATTR_SIZE) w.__set_size(attr->st_size);
  auto ns = [](const timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; };
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    w.__set_atime_ns(fsrpc::g_kitefs_constants.TIME_NOW);
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    w.__set_atime_ns(ns(attr->st_atim));
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    w.__set_mtime_ns(fsrpc::g_kitefs_constants.TIME_NOW);
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    w.__set_mtime_ns(ns(attr->st_mtim));
  }
  fsrpc::Attr a;
  auto change = changes_.Begin();
  Status s = pool_->Call("setattr", [&](Client& c) { c.setattr(a, Ino(ino), w, static_cast<int64_t>(client_id_), change.id()); });
  if (!s.ok()) return ReplyError(req, s);
  // A truncation here went through the kernel's page cache too, but another host may have
  // written meanwhile: the next open fetches the data again.
  if (to_set & FUSE_SET_ATTR_SIZE) nodes_.Distrust(ino);
  struct stat st = ToStat(a);
  nodes_.AttrGiven(ino, a.ctime_ns);
  fuse_reply_attr(req, &st, options_.attr_timeout_s);
}

void FuseOps::ReadLink(fuse_req_t req, fuse_ino_t ino) {
  std::string target;
  Status s = pool_->Call("readlink", [&](Client& c) { c.readlink(target, Ino(ino), static_cast<int64_t>(client_id_)); });
  if (!s.ok()) return ReplyError(req, s);
  fuse_reply_readlink(req, target.c_str());
}

void FuseOps::MkNod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  NameMade made(&negatives_, parent, name);
  fsrpc::Attr a;
  fsrpc::Caller caller = CallerOf(req);
  auto change = changes_.Begin();
  Status s = pool_->Call("mknod", [&](Client& c) {
    c.mknod(a, Ino(parent), name, static_cast<int32_t>(mode), static_cast<int64_t>(rdev), caller,
            static_cast<int64_t>(client_id_), change.id());
  });
  if (!s.ok()) return ReplyError(req, s);
  ReplyEntry(req, a);
}

void FuseOps::MkDir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  NameMade made(&negatives_, parent, name);
  fsrpc::Attr a;
  fsrpc::Caller caller = CallerOf(req);
  auto change = changes_.Begin();
  Status s = pool_->Call("mkdir", [&](Client& c) {
    c.mkdir(a, Ino(parent), name, static_cast<int32_t>(mode), caller, static_cast<int64_t>(client_id_), change.id());
  });
  if (!s.ok()) return ReplyError(req, s);
  ReplyEntry(req, a);
}

void FuseOps::Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto change = changes_.Begin();
  Status s = pool_->Call("unlink", [&](Client& c) { c.unlink(Ino(parent), name, static_cast<int64_t>(client_id_), change.id()); });
  if (!s.ok()) return ReplyError(req, s);
  fuse_reply_err(req, 0);
}

void FuseOps::RmDir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto change = changes_.Begin();
  Status s = pool_->Call("rmdir", [&](Client& c) { c.rmdir(Ino(parent), name, static_cast<int64_t>(client_id_), change.id()); });
  if (!s.ok()) return ReplyError(req, s);
  fuse_reply_err(req, 0);
}

void FuseOps::Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  NameMade made(&negatives_, parent, name);
  fsrpc::Attr a;
  fsrpc::Caller caller = CallerOf(req);
  auto change = changes_.Begin();
  Status s = pool_->Call("symlink", [&](Client& c) {
    c.symlink(a, Ino(parent), name, link, caller, static_cast<int64_t>(client_id_), change.id());
  });
  if (!s.ok()) return ReplyError(req, s);
  ReplyEntry(req, a);
}

void FuseOps::Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
                     unsigned int flags) {
  NameMade made(&negatives_, newparent, newname);
  NameMade exchanged(&negatives_, parent, name);  // RENAME_EXCHANGE aside, harmless
  auto change = changes_.Begin();
  Status s = pool_->Call("rename", [&](Client& c) {
    c.rename(Ino(parent), name, Ino(newparent), newname, static_cast<int32_t>(flags), static_cast<int64_t>(client_id_),
             change.id());
  });
  if (!s.ok()) return ReplyError(req, s);
  fuse_reply_err(req, 0);
}

void FuseOps::Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  NameMade made(&negatives_, newparent, newname);
  fsrpc::Attr a;
  auto change = changes_.Begin();
  Status s = pool_->Call("link", [&](Client& c) {
    c.link(a, Ino(ino), Ino(newparent), newname, static_cast<int64_t>(client_id_), change.id());
  });
  if (!s.ok()) return ReplyError(req, s);
  ReplyEntry(req, a);
}

FuseOps::OpenFile* FuseOps::AddFile(uint64_t ino, int flags, const fsrpc::OpenReply& reply) {
  auto* f = new OpenFile;
  f->ino = ino;
  f->flags = flags;
  f->append = (flags & O_APPEND) != 0;
  std::lock_guard<std::mutex> lock(files_mu_);
  f->serial = next_serial_++;
  f->handle = reply.handle;
  f->incarnation = reply.incarnation;
  files_.insert(f);
  return f;
}

int64_t FuseOps::RemoveFile(OpenFile* f) {
  int64_t handle;
  {
    std::lock_guard<std::mutex> lock(files_mu_);
    files_.erase(f);
    if (!f->lock_owners.empty()) --files_with_owners_;
    handle = f->handle;
    if (f->shared_read) {
      // The shared handle stays for the next read-only open, unless the file changed.
      handle = 0;
      auto it = shared_reads_.find(f->ino);
      if (it != shared_reads_.end() && it->second.handle == f->handle && --it->second.users == 0) {
        if (it->second.retired) {
          handle = it->second.handle;
          shared_reads_.erase(it);
        } else {
          it->second.idle_since = std::chrono::steady_clock::now();
        }
      }
    }
  }
  delete f;
  return handle;
}

void FuseOps::ReleaseHandle(int64_t handle) {
  if (handle == 0) return;  // nothing to release (a shared read handle kept for later)
  Status s = pool_->Call("release", [&](Client& c) { c.release(static_cast<int64_t>(client_id_), handle); });
  if (!s.ok()) KLOG_WARN("{}", s.message());  // the server releases it when it expires us
}

void FuseOps::FinishOpen(fuse_ino_t ino, const fsrpc::OpenReply& reply, fuse_file_info* fi) {
  OpenFile* f = AddFile(ino, fi->flags, reply);
  fi->fh = reinterpret_cast<uint64_t>(f);
  NodeTable::OpenDecision d = nodes_.Opened(ino, reply.attr.data_version, reply.attr.ctime_ns);
  fi->keep_cache = d.keep_cache;
  if (f->append || !reply.cache) {
    // An append: the server appends (the kernel's idea of the end may be another host's past).
    // Write sharing (the file is open elsewhere, and someone writes): no caching of its data.
    fi->direct_io = 1;
    nodes_.Distrust(ino);
  }
  // The kernel's attributes are older than this open: make stat and reads past the old end
  // ask the server. Safe inside a handler: attributes only, no page locks.
  if (d.invalidate_attr) {
    if (fuse_session* se = session_.load()) fuse_lowlevel_notify_inval_inode(se, ino, -1, 0);
  }
}

namespace {
bool ReadOnlyOpen(int flags) { return (flags & O_ACCMODE) == O_RDONLY && !(flags & (O_TRUNC | O_APPEND | O_CREAT)); }
int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

bool FuseOps::CallbacksAreLive() const { return SteadyNowNs() <= callbacks_live_until_ns_.load(); }

void FuseOps::CallbacksLive() {
  callbacks_live_until_ns_.store(SteadyNowNs() + std::chrono::nanoseconds(kCallbacksLiveFor).count());
}

bool FuseOps::OpenShared(fuse_ino_t ino, fuse_file_info* fi) {
  if (!CallbacksAreLive() || !nodes_.Trusted(ino)) return false;
  OpenFile* f;
  {
    std::lock_guard<std::mutex> lock(files_mu_);
    auto it = shared_reads_.find(ino);
    if (it == shared_reads_.end() || it->second.retired) return false;
    ++it->second.users;
    f = new OpenFile;
    f->ino = ino;
    f->flags = fi->flags;
    f->serial = next_serial_++;
    f->handle = it->second.handle;
    f->incarnation = it->second.incarnation;
    f->shared_read = true;
    files_.insert(f);
  }
  fi->fh = reinterpret_cast<uint64_t>(f);
  fi->keep_cache = 1;
  return true;
}

void FuseOps::RetireSharedRead(uint64_t ino) {
  int64_t release = 0;
  {
    std::lock_guard<std::mutex> lock(files_mu_);
    auto it = shared_reads_.find(ino);
    if (it == shared_reads_.end()) return;
    if (it->second.users == 0) {
      release = it->second.handle;
      shared_reads_.erase(it);
    } else {
      it->second.retired = true;
    }
  }
  ReleaseHandle(release);
}

void FuseOps::ReleaseIdleReads(bool all) {
  std::vector<int64_t> release;
  {
    std::lock_guard<std::mutex> lock(files_mu_);
    const auto now = std::chrono::steady_clock::now();
    // The poller calls this after every poll, which can be hundreds a second while others
    // change things: look at the handles (under the lock every open takes) once a second.
    if (!all && now - last_idle_scan_ < std::chrono::seconds(1)) return;
    last_idle_scan_ = now;
    std::vector<std::pair<std::chrono::steady_clock::time_point, uint64_t>> idle;
    for (auto it = shared_reads_.begin(); it != shared_reads_.end();) {
      const SharedRead& r = it->second;
      if (r.users == 0 && (all || now - r.idle_since > kSharedReadLinger)) {
        release.push_back(r.handle);
        it = shared_reads_.erase(it);
        continue;
      }
      if (r.users == 0) idle.emplace_back(r.idle_since, it->first);
      ++it;
    }
    if (idle.size() > kMaxIdleSharedReads) {  // the longest idle go first
      std::sort(idle.begin(), idle.end());
      for (size_t i = 0; i < idle.size() - kMaxIdleSharedReads; ++i) {
        auto it = shared_reads_.find(idle[i].second);
        release.push_back(it->second.handle);
        shared_reads_.erase(it);
      }
    }
  }
  for (int64_t h : release) ReleaseHandle(h);
}

void FuseOps::Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  int flags = fi->flags;
  if (ReadOnlyOpen(flags) && OpenShared(ino, fi)) {
    if (fuse_reply_open(req, fi) != 0) ReleaseHandle(RemoveFile(reinterpret_cast<OpenFile*>(fi->fh)));
    return;
  }
  fsrpc::OpenReply reply;
  Status s = pool_->Call("open", [&](Client& c) { c.open(reply, static_cast<int64_t>(client_id_), Ino(ino), flags); });
  if (!s.ok()) return ReplyError(req, s);
  FinishOpen(ino, reply, fi);
  if (ReadOnlyOpen(flags) && reply.cache) {
    // The first read-only open of the file here: its handle serves the next ones.
    auto* f = reinterpret_cast<OpenFile*>(fi->fh);
    std::lock_guard<std::mutex> lock(files_mu_);
    if (!shared_reads_.count(ino)) {
      SharedRead& r = shared_reads_[ino];
      r.handle = reply.handle;
      r.incarnation = reply.incarnation;
      r.users = 1;
      f->shared_read = true;
    }
  }
  if (fuse_reply_open(req, fi) != 0) {
    // The opener went away (interrupted): nobody will release it.
    ReleaseHandle(RemoveFile(reinterpret_cast<OpenFile*>(fi->fh)));
  }
}

void FuseOps::Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  NameMade made(&negatives_, parent, name);
  fsrpc::OpenReply reply;
  fsrpc::Caller caller = CallerOf(req);
  int flags = fi->flags;
  // With its request id a resend gets the first send's answer (not EEXIST for O_EXCL, not a
  // second handle).
  auto change = changes_.Begin();
  Status s = pool_->Call("create", [&](Client& c) {
    c.create(reply, static_cast<int64_t>(client_id_), Ino(parent), name, static_cast<int32_t>(mode), flags, caller,
             change.id());
  });
  if (!s.ok()) return ReplyError(req, s);
  fuse_ino_t ino = static_cast<fuse_ino_t>(reply.attr.ino);
  fuse_entry_param e{};
  e.ino = ino;
  e.generation = static_cast<uint64_t>(reply.attr.generation);
  e.attr = ToStat(reply.attr);
  e.attr_timeout = options_.attr_timeout_s;
  e.entry_timeout = options_.entry_timeout_s;
  nodes_.Entered(ino, reply.attr.ctime_ns);
  FinishOpen(ino, reply, fi);
  if (fuse_reply_create(req, &e, fi) != 0) ReleaseHandle(RemoveFile(reinterpret_cast<OpenFile*>(fi->fh)));
}

void FuseOps::Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  std::string data;
  Status s = pool_->Call("read", [&](Client& c) { c.read(data, Ino(ino), off, static_cast<int32_t>(size), static_cast<int64_t>(client_id_)); });
  if (!s.ok()) return ReplyError(req, s);
  fuse_reply_buf(req, data.data(), data.size());
}

void FuseOps::Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  const auto* f = reinterpret_cast<const OpenFile*>(fi->fh);
  bool append = f && f->append;
  fsrpc::WriteReply reply;
  std::string data(buf, size);
  // A write at an offset is idempotent; an append is not, and carries a request id.
  std::optional<ChangeIds::Change> change;
  fsrpc::RequestId none;
  if (append) change.emplace(changes_.Begin());
  Status s = pool_->Call("write", [&](Client& c) {
    c.write(reply, Ino(ino), off, data, append, static_cast<int64_t>(client_id_), change ? change->id() : none);
  });
  if (!s.ok()) return ReplyError(req, s);
  if (append) {
    nodes_.Distrust(ino);
  } else {
    nodes_.Changed(ino, reply.attr.data_version);
  }
  fuse_reply_write(req, static_cast<size_t>(reply.written));
}

void FuseOps::Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  // Writes are synchronous: at close the server has every byte already. What a close must still
  // do: release the closing process's fcntl locks on the file (POSIX: any close does).
  Status s = locks_.ReleaseOwner(ino, kLockPosix, fi->lock_owner);
  {
    // The owner holds nothing on this file now, whichever description it locked through.
    std::lock_guard<std::mutex> lock(files_mu_);
    if (files_with_owners_ > 0) {
      for (OpenFile* f : files_) {
        if (f->ino == ino && f->lock_owners.erase(fi->lock_owner) && f->lock_owners.empty()) --files_with_owners_;
      }
    }
  }
  if (!s.ok()) return ReplyError(req, s);
  fuse_reply_err(req, 0);
}

void FuseOps::Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto* f = reinterpret_cast<OpenFile*>(fi->fh);
  Status s;
  // The last close of the description: its flock locks go (the kernel says so), and so do the
  // fcntl locks still held by owners that locked through it — OFD locks, whose owner is the
  // description (a process's own locks went at its close, Flush).
  if (fi->flock_release) s = locks_.ReleaseOwner(ino, kLockFlock, fi->lock_owner);
  if (f) {
    std::set<uint64_t> owners;
    {
      std::lock_guard<std::mutex> lock(files_mu_);
      owners = f->lock_owners;
    }
    for (uint64_t o : owners) {
      Status u = locks_.ReleaseOwner(ino, kLockPosix, o);
      if (!u.ok()) s = u;
    }
    ReleaseHandle(RemoveFile(f));
  }
  if (!s.ok()) KLOG_WARN("{}", s.message());  // the server drops them when it expires us
  fuse_reply_err(req, 0);
}

void FuseOps::Fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  Status s = pool_->Call("fsync", [&](Client& c) { c.fsync(Ino(ino), datasync != 0); });
  fuse_reply_err(req, ErrnoOf(s));
}

void FuseOps::OpenDir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  fi->fh = 0;
  fi->cache_readdir = 0;  // listings change on other hosts
  fuse_reply_open(req, fi);
}

void FuseOps::ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  fsrpc::DirPage page;
  // The smallest kernel dirent takes 32 bytes: ask for no more than could fit.
  int32_t max_entries = static_cast<int32_t>(size / 32 + 1);
  Status s = pool_->Call("readdir", [&](Client& c) { c.readdir(page, Ino(ino), static_cast<int64_t>(off), max_entries, static_cast<int64_t>(client_id_)); });
  if (!s.ok()) return ReplyError(req, s);
  std::vector<char> buf(size);
  size_t used = 0;
  for (const auto& e : page.entries) {
    struct stat st {};
    st.st_ino = static_cast<ino_t>(e.ino);
    st.st_mode = static_cast<mode_t>(e.type);
    size_t need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st,
                                    static_cast<off_t>(e.next_cookie));
    if (need > size - used) break;  // the rest comes with the next call, from this cookie
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void FuseOps::ReleaseDir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void FuseOps::FsyncDir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  Status s = pool_->Call("fsyncdir", [&](Client& c) { c.fsync(Ino(ino), datasync != 0); });
  fuse_reply_err(req, ErrnoOf(s));
}

void FuseOps::StatFs(fuse_req_t req, fuse_ino_t) {
  fsrpc::FsStats f;
  Status s = pool_->Call("statfs", [&](Client& c) { c.statfs(f); });
  if (!s.ok()) return ReplyError(req, s);
  struct statvfs v {};
  v.f_bsize = static_cast<unsigned long>(f.block_size);
  v.f_frsize = static_cast<unsigned long>(f.block_size);
  v.f_blocks = static_cast<fsblkcnt_t>(f.blocks);
  v.f_bfree = static_cast<fsblkcnt_t>(f.blocks_free);
  v.f_bavail = static_cast<fsblkcnt_t>(f.blocks_avail);
  v.f_files = static_cast<fsfilcnt_t>(f.files + f.files_free);
  v.f_ffree = static_cast<fsfilcnt_t>(f.files_free);
  v.f_favail = static_cast<fsfilcnt_t>(f.files_free);
  v.f_namemax = static_cast<unsigned long>(f.name_max);
  fuse_reply_statfs(req, &v);
}

void FuseOps::SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  if (std::strcmp(name, kCapabilityXattr) == 0 || IsSystemXattr(name)) return fuse_reply_err(req, EOPNOTSUPP), void();
  std::string v(value, size);
  auto change = changes_.Begin();
  Status s = pool_->Call("setxattr", [&](Client& c) {
    c.setxattr(Ino(ino), name, v, flags, static_cast<int64_t>(client_id_), change.id());
  });
  fuse_reply_err(req, ErrnoOf(s));
}

void FuseOps::GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (std::strcmp(name, kCapabilityXattr) == 0) return fuse_reply_err(req, ENODATA), void();
  if (IsSystemXattr(name)) return fuse_reply_err(req, EOPNOTSUPP), void();
  std::string v;
  Status s = pool_->Call("getxattr", [&](Client& c) { c.getxattr(v, Ino(ino), name); });
  if (!s.ok()) return ReplyError(req, s);
  if (size == 0) return fuse_reply_xattr(req, v.size()), void();
  if (v.size() > size) return fuse_reply_err(req, ERANGE), void();
  fuse_reply_buf(req, v.data(), v.size());
}

void FuseOps::ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  std::vector<std::string> names;
  Status s = pool_->Call("listxattr", [&](Client& c) { c.listxattr(names, Ino(ino)); });
  if (!s.ok()) return ReplyError(req, s);
  std::string all;
  for (const auto& n : names) {
    all += n;
    all.push_back('\0');
  }
  if (size == 0) return fuse_reply_xattr(req, all.size()), void();
  if (all.size() > size) return fuse_reply_err(req, ERANGE), void();
  fuse_reply_buf(req, all.data(), all.size());
}

void FuseOps::RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  if (std::strcmp(name, kCapabilityXattr) == 0) return fuse_reply_err(req, ENODATA), void();
  if (IsSystemXattr(name)) return fuse_reply_err(req, EOPNOTSUPP), void();
  auto change = changes_.Begin();
  Status s = pool_->Call("removexattr", [&](Client& c) {
    c.removexattr(Ino(ino), name, static_cast<int64_t>(client_id_), change.id());
  });
  fuse_reply_err(req, ErrnoOf(s));
}

void FuseOps::Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info*) {
  fsrpc::Attr a;
  Status s = pool_->Call("fallocate", [&](Client& c) { c.fallocate(a, Ino(ino), mode, offset, length, static_cast<int64_t>(client_id_)); });
  if (s.ok()) nodes_.Distrust(ino);
  fuse_reply_err(req, ErrnoOf(s));
}

namespace {

// A kernel lock request as a LockSet lock of `owner` (the client id is LockClient's to fill).
HeldLock FromFlock(const struct flock& fl, uint64_t owner) {
  HeldLock l;
  l.kind = kLockPosix;
  l.type = fl.l_type;
  l.start = fl.l_start;
  // libfuse gives l_len 0 for "to the end of file", else the length of a valid range.
  l.end = fl.l_len <= 0 ? kLockToEof : fl.l_start + (fl.l_len - 1);
  l.owner.owner = owner;
  l.pid = fl.l_pid;
  return l;
}

}  // namespace

void FuseOps::GetLk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock) {
  locks_.GetLock(req, ino, FromFlock(*lock, fi->lock_owner));
}

void FuseOps::SetLk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock, int sleep) {
  if (lock->l_type != F_UNLCK) {
    if (auto* f = reinterpret_cast<OpenFile*>(fi->fh)) {
      std::lock_guard<std::mutex> guard(files_mu_);
      if (f->lock_owners.empty()) ++files_with_owners_;
      f->lock_owners.insert(fi->lock_owner);
    }
  }
  locks_.SetLock(req, ino, FromFlock(*lock, fi->lock_owner), sleep != 0);
}

void FuseOps::Flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op) {
  HeldLock l;
  l.kind = kLockFlock;
  switch (op & ~LOCK_NB) {
    case LOCK_SH: l.type = F_RDLCK; break;
    case LOCK_EX: l.type = F_WRLCK; break;
    case LOCK_UN: l.type = F_UNLCK; break;
    default: return fuse_reply_err(req, EINVAL), void();
  }
  l.start = 0;
  l.end = kLockToEof;
  l.owner.owner = fi->lock_owner;
  l.pid = static_cast<int32_t>(fuse_req_ctx(req)->pid);
  locks_.SetLock(req, ino, l, (op & LOCK_NB) == 0);
}

void FuseOps::HoldAgain() {
  std::vector<uint64_t> known = nodes_.Inodes();  // the root included
  constexpr size_t kPerCall = 16384;
  for (size_t i = 0; i < known.size(); i += kPerCall) {
    std::vector<int64_t> part(known.begin() + static_cast<std::ptrdiff_t>(i),
                              known.begin() + static_cast<std::ptrdiff_t>(std::min(known.size(), i + kPerCall)));
    Status s = pool_->Call("hold", [&](Client& c) { c.hold(static_cast<int64_t>(client_id_), part); });
    if (!s.ok()) {
      // Not fatal: an inode not held again is still checked at every open (close-to-open).
      KLOG_WARN("could not tell the restarted server which inodes this host caches: {}", s.message());
      return;
    }
  }
}

void FuseOps::ReclaimAfterRestart(int64_t incarnation) {
  HoldAgain();
  {
    // The restarted server knows none of our handles: every open file gets its own below.
    std::lock_guard<std::mutex> lock(files_mu_);
    for (OpenFile* f : files_) f->shared_read = false;
    shared_reads_.clear();
  }
  struct Item {
    OpenFile* f;
    uint64_t serial, ino;
    int flags;
  };
  std::vector<Item> todo;
  {
    std::lock_guard<std::mutex> lock(files_mu_);
    for (OpenFile* f : files_) {
      if (f->incarnation != incarnation) todo.push_back({f, f->serial, f->ino, f->flags});
    }
  }
  size_t failed = 0;
  for (const Item& it : todo) {
    // The open as it was, minus what it did once (truncate, create).
    int flags = it.flags & ~(O_TRUNC | O_CREAT | O_EXCL);
    fsrpc::OpenReply reply;
    Status s = pool_->Call("open (reclaim)", [&](Client& c) {
      c.open(reply, static_cast<int64_t>(client_id_), static_cast<int64_t>(it.ino), flags);
    });
    if (!s.ok()) {
      // Reads and writes name the inode and go on while it exists; the server just does not
      // count this open (write sharing), and an unlinked file is gone after the grace period.
      ++failed;
      KLOG_ERROR("could not reopen inode {} after the server restarted: {}", it.ino, s.message());
      continue;
    }
    bool closed;
    {
      std::lock_guard<std::mutex> lock(files_mu_);
      closed = !files_.count(it.f) || it.f->serial != it.serial;
      if (!closed) {
        it.f->handle = reply.handle;
        it.f->incarnation = reply.incarnation;
      }
    }
    if (closed) ReleaseHandle(reply.handle);  // closed meanwhile
  }
  if (!todo.empty())
    KLOG_INFO("reopened {} of {} open file(s) after the server restarted", todo.size() - failed, todo.size());
  locks_.Reclaim();
}

void FuseOps::ApplyInvalidations(const std::vector<fsrpc::Invalidation>& items) {
  fuse_session* se = session_.load();
  if (!se) return;
  for (const auto& inv : items) {
    // The kernel holds only what it was given (and the root): the rest needs no telling.
    if (inv.parent != 0) {
      negatives_.Erase(static_cast<uint64_t>(inv.parent), inv.name);
      // The kernel keeps positive entries only: it needs telling only if the name led to an
      // inode it holds (a server before version 4 does not say which: then always). Telling it
      // takes the directory's lock (fs/negative_cache.h), which a change of this host's own in
      // that directory may hold while it waits for other hosts: a new name never needs it.
      const bool kernel_may_hold = !inv.__isset.child || (inv.child != 0 && nodes_.Known(static_cast<uint64_t>(inv.child)));
      if (kernel_may_hold && nodes_.Known(static_cast<uint64_t>(inv.parent)))
        fuse_lowlevel_notify_inval_entry(se, static_cast<fuse_ino_t>(inv.parent), inv.name.data(), inv.name.size());
    }
    if (inv.ino != 0) RetireSharedRead(static_cast<uint64_t>(inv.ino));  // changed: ask at the next open
    if (inv.ino != 0 && nodes_.Known(static_cast<uint64_t>(inv.ino))) {
      if (inv.data) nodes_.Distrust(static_cast<uint64_t>(inv.ino));
      fuse_lowlevel_notify_inval_inode(se, static_cast<fuse_ino_t>(inv.ino), inv.data ? 0 : -1, 0);
    }
  }
}

void FuseOps::InvalidateAll() {
  negatives_.Clear();
  {
    // Nothing cached is trusted: no shared read handle takes new users.
    std::lock_guard<std::mutex> lock(files_mu_);
    for (auto& [ino, r] : shared_reads_) r.retired = true;
  }
  ReleaseIdleReads(/*all=*/true);
  fuse_session* se = session_.load();
  if (!se) return;
  for (uint64_t ino : nodes_.Inodes()) {
    nodes_.Distrust(ino);
    fuse_lowlevel_notify_inval_inode(se, static_cast<fuse_ino_t>(ino), 0, 0);
  }
}

// ---- the C boundary ------------------------------------------------------------------------

namespace {

FuseOps* Self(fuse_req_t req) { return static_cast<FuseOps*>(fuse_req_userdata(req)); }

// Runs a handler; whatever it throws becomes an errno reply (it cannot have replied yet: the
// reply is each handler's last step).
template <typename Fn>
void Guard(fuse_req_t req, Fn&& fn) {
  try {
    fn();
  } catch (const std::bad_alloc&) {
    fuse_reply_err(req, ENOMEM);
  } catch (const std::exception& e) {
    KLOG_ERROR("FUSE handler failed: {}", e.what());
    fuse_reply_err(req, EIO);
  } catch (...) {
    fuse_reply_err(req, EIO);
  }
}

// For the requests that get no reply (forget).
template <typename Fn>
void GuardNoReply(fuse_req_t req, Fn&& fn) {
  try {
    fn();
  } catch (...) {
    fuse_reply_none(req);
  }
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops o{};
  o.init = [](void* userdata, fuse_conn_info* conn) { static_cast<FuseOps*>(userdata)->Init(conn); };
  o.lookup = [](fuse_req_t r, fuse_ino_t p, const char* n) { Guard(r, [&] { Self(r)->Lookup(r, p, n); }); };
  o.forget = [](fuse_req_t r, fuse_ino_t i, uint64_t n) { GuardNoReply(r, [&] { Self(r)->Forget(r, i, n); }); };
  o.forget_multi = [](fuse_req_t r, size_t c, fuse_forget_data* f) {
    GuardNoReply(r, [&] { Self(r)->ForgetMulti(r, c, f); });
  };
  o.getattr = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* f) { Guard(r, [&] { Self(r)->GetAttr(r, i, f); }); };
  o.setattr = [](fuse_req_t r, fuse_ino_t i, struct stat* a, int s, fuse_file_info* f) {
    Guard(r, [&] { Self(r)->SetAttr(r, i, a, s, f); });
  };
  o.readlink = [](fuse_req_t r, fuse_ino_t i) { Guard(r, [&] { Self(r)->ReadLink(r, i); }); };
  o.mknod = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, dev_t d) {
    Guard(r, [&] { Self(r)->MkNod(r, p, n, m, d); });
  };
  o.mkdir = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m) { Guard(r, [&] { Self(r)->MkDir(r, p, n, m); }); };
  o.unlink = [](fuse_req_t r, fuse_ino_t p, const char* n) { Guard(r, [&] { Self(r)->Unlink(r, p, n); }); };
  o.rmdir = [](fuse_req_t r, fuse_ino_t p, const char* n) { Guard(r, [&] { Self(r)->RmDir(r, p, n); }); };
  o.symlink = [](fuse_req_t r, const char* l, fuse_ino_t p, const char* n) {
    Guard(r, [&] { Self(r)->Symlink(r, l, p, n); });
  };
  o.rename = [](fuse_req_t r, fuse_ino_t p, const char* n, fuse_ino_t np, const char* nn, unsigned int f) {
    Guard(r, [&] { Self(r)->Rename(r, p, n, np, nn, f); });
  };
  o.link = [](fuse_req_t r, fuse_ino_t i, fuse_ino_t np, const char* nn) {
    Guard(r, [&] { Self(r)->Link(r, i, np, nn); });
  };
  o.open = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* f) { Guard(r, [&] { Self(r)->Open(r, i, f); }); };
  o.create = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, fuse_file_info* f) {
    Guard(r, [&] { Self(r)->Create(r, p, n, m, f); });
  };
  o.read = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t off, fuse_file_info* f) {
    Guard(r, [&] { Self(r)->Read(r, i, s, off, f); });
  };
  o.write = [](fuse_req_t r, fuse_ino_t i, const char* b, size_t s, off_t off, fuse_file_info* f) {
    Guard(r, [&] { Self(r)->Write(r, i, b, s, off, f); });
  };
  o.flush = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* f) { Guard(r, [&] { Self(r)->Flush(r, i, f); }); };
  o.release = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* f) { Guard(r, [&] { Self(r)->Release(r, i, f); }); };
  o.fsync = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* f) { Guard(r, [&] { Self(r)->Fsync(r, i, d, f); }); };
  o.opendir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* f) { Guard(r, [&] { Self(r)->OpenDir(r, i, f); }); };
  o.readdir = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t off, fuse_file_info* f) {
    Guard(r, [&] { Self(r)->ReadDir(r, i, s, off, f); });
  };
  o.releasedir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* f) { Guard(r, [&] { Self(r)->ReleaseDir(r, i, f); }); };
  o.fsyncdir = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* f) {
    Guard(r, [&] { Self(r)->FsyncDir(r, i, d, f); });
  };
  o.statfs = [](fuse_req_t r, fuse_ino_t i) { Guard(r, [&] { Self(r)->StatFs(r, i); }); };
  o.setxattr = [](fuse_req_t r, fuse_ino_t i, const char* n, const char* v, size_t s, int f) {
    Guard(r, [&] { Self(r)->SetXattr(r, i, n, v, s, f); });
  };
  o.getxattr = [](fuse_req_t r, fuse_ino_t i, const char* n, size_t s) { Guard(r, [&] { Self(r)->GetXattr(r, i, n, s); }); };
  o.listxattr = [](fuse_req_t r, fuse_ino_t i, size_t s) { Guard(r, [&] { Self(r)->ListXattr(r, i, s); }); };
  o.removexattr = [](fuse_req_t r, fuse_ino_t i, const char* n) { Guard(r, [&] { Self(r)->RemoveXattr(r, i, n); }); };
  o.fallocate = [](fuse_req_t r, fuse_ino_t i, int m, off_t off, off_t len, fuse_file_info* f) {
    Guard(r, [&] { Self(r)->Fallocate(r, i, m, off, len, f); });
  };
  o.getlk = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* f, struct flock* l) {
    Guard(r, [&] { Self(r)->GetLk(r, i, f, l); });
  };
  o.setlk = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* f, struct flock* l, int sleep) {
    Guard(r, [&] { Self(r)->SetLk(r, i, f, l, sleep); });
  };
  o.flock = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* f, int op) { Guard(r, [&] { Self(r)->Flock(r, i, f, op); }); };
  return o;
}();

}  // namespace

const fuse_lowlevel_ops* FuseOps::Table() { return &kOps; }

}  // namespace kite::fs
