// FileHandler: wire ↔ Store conversions; every error leaves as FsError.
#include "fs/file_handler.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include <algorithm>

#include "common/log.h"
#include "fs/fs_errors.h"
#include "kite/fsrpc/kitefs_constants.h"

namespace kite::fs {
namespace {

// One hold() call's inodes at most (a client sends more in several calls).
constexpr size_t kMaxHoldInodes = 65536;

fsrpc::Attr ToWire(const Attr& a) {
  fsrpc::Attr w;
  w.ino = static_cast<int64_t>(a.ino);
  w.generation = static_cast<int64_t>(a.generation);
  w.mode = static_cast<int32_t>(a.mode);
  w.nlink = static_cast<int32_t>(a.nlink);
  w.uid = static_cast<int32_t>(a.uid);
  w.gid = static_cast<int32_t>(a.gid);
  w.size = static_cast<int64_t>(a.size);
  w.blocks = static_cast<int64_t>(a.blocks);
  w.atime_ns = a.atime_ns;
  w.mtime_ns = a.mtime_ns;
  w.ctime_ns = a.ctime_ns;
  w.rdev = static_cast<int64_t>(a.rdev);
  w.data_version = static_cast<int64_t>(a.data_version);
  return w;
}

Owner OwnerOf(const fsrpc::Caller& c, int64_t client_id) {
  return Owner{static_cast<uint32_t>(c.uid), static_cast<uint32_t>(c.gid), static_cast<uint64_t>(client_id)};
}

RequestId RidOf(int64_t client_id, const fsrpc::RequestId& w) {
  if (w.seq <= 0 || w.acked_below < 0) return {};  // none (a client before protocol 5)
  return RequestId{static_cast<uint64_t>(client_id), static_cast<uint64_t>(w.seq), static_cast<uint64_t>(w.acked_below)};
}

// A fault point for tests only (STYLE: named fault points switched on by an environment
// variable, as CRIU_FAULT does): with KITE_FSD_FAULT=kill-after-commit:OP in its environment,
// kite-fsd kills itself with SIGKILL as soon as an OP (mkdir, rename, unlink, create, ...) has
// been done — committed to the store, its reply not yet sent: the server crash that loses the
// reply of a change it made (tests/fs/kitefs_restart_test.cc). Never set in production.
void TEST_KillAfterCommit(const char* op) {
  static const std::string fault = [] {
    const char* f = std::getenv("KITE_FSD_FAULT");
    return f ? std::string(f) : std::string();
  }();
  if (fault.empty() || fault != std::string("kill-after-commit:") + op) return;
  KLOG_WARN("KITE_FSD_FAULT={}: killing kite-fsd before the reply", fault);
  kill(getpid(), SIGKILL);
}

// Returns the value or throws the error as FsError.
template <typename T>
T Unwrap(StatusOr<T> s) {
  if (!s.ok()) throw ToFsError(s.status());
  return std::move(s).value();
}
void Check(const Status& s) {
  if (!s.ok()) throw ToFsError(s);
}

}  // namespace

fsrpc::FsError ToFsError(const Status& s) {
  fsrpc::FsError e;
  e.err = ErrnoOf(s);
  e.code = static_cast<int32_t>(s.code());
  e.message = s.message();
  if (e.err == EIO) KLOG_WARN("{}", s.message());  // the others are the caller's business
  return e;
}

void FileHandler::hello(fsrpc::ServerInfo& _return, int64_t client_id, const std::string& client_name,
                        int32_t protocol_version) {
  const int32_t min = fsrpc::g_kitefs_constants.FS_MIN_PROTOCOL_VERSION;
  if (protocol_version < min)
    Check(FsError(EPROTO, "hello from " + client_name + ": protocol version " + std::to_string(protocol_version) +
                              " is too old (this kite-fsd serves " + std::to_string(min) + " to " +
                              std::to_string(fsrpc::g_kitefs_constants.FS_PROTOCOL_VERSION) +
                              "): upgrade kitefs on that host"));
  opens_->Touch(static_cast<uint64_t>(client_id), client_name);
  _return.protocol_version = fsrpc::g_kitefs_constants.FS_PROTOCOL_VERSION;
  _return.root_ino = static_cast<int64_t>(kRootIno);
  _return.incarnation = static_cast<int64_t>(store_->incarnation());
  _return.max_io_bytes = static_cast<int32_t>(kMaxIoBytes);
  _return.client_timeout_ms = client_timeout_ms_;
  _return.invalidation_seq = static_cast<int64_t>(invalidations_->last_seq());
}

void FileHandler::keepalive(int64_t client_id) { opens_->Touch(static_cast<uint64_t>(client_id)); }

void FileHandler::Hold(int64_t client_id, std::initializer_list<int64_t> inos) {
  for (int64_t ino : inos) {
    if (ino > 0) invalidations_->Hold(static_cast<uint64_t>(client_id), static_cast<uint64_t>(ino));
  }
}

void FileHandler::Publish(int64_t client_id, std::vector<InvalidationLog::Event> events) {
  std::erase_if(events, [](const InvalidationLog::Event& e) { return e.ino == 0 && e.parent == 0; });
  InvalidationLog::Published p = invalidations_->Append(static_cast<uint64_t>(client_id), std::move(events));
  std::vector<uint64_t> behind = invalidations_->WaitAcked(p, ack_timeout_);
  for (uint64_t c : behind) {
    KLOG_WARN("client {:016x} did not apply invalidations within {} ms: its cache may be stale until it polls again",
              c, ack_timeout_.count());
  }
}

namespace {

using Event = InvalidationLog::Event;
Event InodeEvent(uint64_t ino, bool data = false) { return Event{ino, data, 0, {}}; }
// `child`: what the name led to before the change (0 for a new name).
Event EntryEvent(uint64_t parent, const std::string& name, uint64_t child = 0) {
  return Event{0, false, parent, name, child};
}

}  // namespace

bool FileHandler::WriteShared(int64_t client_id, uint64_t ino, int flags) {
  if (locks_->InGrace()) return true;
  OpenTable::Usage others = opens_->UsageOf(ino, static_cast<uint64_t>(client_id));
  bool writing = (flags & O_ACCMODE) != O_RDONLY;
  return others.writers > 0 || (writing && !others.clients.empty());
}

void FileHandler::lookup(fsrpc::Attr& _return, int64_t parent, const std::string& name, int64_t client_id) {
  Hold(client_id, {parent});
  Attr a = Unwrap(store_->Lookup(static_cast<uint64_t>(parent), name));
  // The child is known only now: hold it, then read its attributes again, so that a change
  // between the two reads is in the reply and every later one is sent to the client.
  Hold(client_id, {static_cast<int64_t>(a.ino)});
  auto again = store_->GetAttr(a.ino);
  _return = ToWire(again.ok() ? *again : a);
}

void FileHandler::getattr(fsrpc::Attr& _return, int64_t ino, int64_t client_id) {
  Hold(client_id, {ino});
  _return = ToWire(Unwrap(store_->GetAttr(static_cast<uint64_t>(ino))));
}

void FileHandler::setattr(fsrpc::Attr& _return, int64_t ino, const fsrpc::SetAttr& attr, int64_t client_id,
                          const fsrpc::RequestId& request) {
  AttrChange c;
  if (attr.__isset.mode) c.mode = static_cast<uint32_t>(attr.mode);
  if (attr.__isset.uid) c.uid = static_cast<uint32_t>(attr.uid);
  if (attr.__isset.gid) c.gid = static_cast<uint32_t>(attr.gid);
  if (attr.__isset.size) c.size = attr.size;
  if (attr.__isset.atime_ns) c.atime_ns = attr.atime_ns;
  if (attr.__isset.mtime_ns) c.mtime_ns = attr.mtime_ns;
  Hold(client_id, {ino});
  _return = ToWire(Unwrap(store_->SetAttr(static_cast<uint64_t>(ino), c, RidOf(client_id, request))));
  TEST_KillAfterCommit("setattr");
  Publish(client_id, {InodeEvent(static_cast<uint64_t>(ino), attr.__isset.size)});
}

void FileHandler::mknod(fsrpc::Attr& _return, int64_t parent, const std::string& name, int32_t mode, int64_t rdev,
                        const fsrpc::Caller& caller, int64_t client_id, const fsrpc::RequestId& request) {
  Hold(client_id, {parent});
  _return = ToWire(Unwrap(store_->MakeNode(static_cast<uint64_t>(parent), name, static_cast<uint32_t>(mode),
                                           static_cast<uint64_t>(rdev), OwnerOf(caller, client_id),
                                           RidOf(client_id, request))));
  TEST_KillAfterCommit("mknod");
  Publish(client_id, {InodeEvent(static_cast<uint64_t>(parent)), EntryEvent(static_cast<uint64_t>(parent), name)});
}

void FileHandler::mkdir(fsrpc::Attr& _return, int64_t parent, const std::string& name, int32_t mode,
                        const fsrpc::Caller& caller, int64_t client_id, const fsrpc::RequestId& request) {
  Hold(client_id, {parent});
  _return = ToWire(Unwrap(store_->MakeDir(static_cast<uint64_t>(parent), name, static_cast<uint32_t>(mode),
                                          OwnerOf(caller, client_id), RidOf(client_id, request))));
  TEST_KillAfterCommit("mkdir");
  Publish(client_id, {InodeEvent(static_cast<uint64_t>(parent)), EntryEvent(static_cast<uint64_t>(parent), name)});
}

void FileHandler::symlink(fsrpc::Attr& _return, int64_t parent, const std::string& name, const std::string& target,
                          const fsrpc::Caller& caller, int64_t client_id, const fsrpc::RequestId& request) {
  Hold(client_id, {parent});
  _return = ToWire(Unwrap(store_->MakeSymlink(static_cast<uint64_t>(parent), name, target, OwnerOf(caller, client_id),
                                              RidOf(client_id, request))));
  TEST_KillAfterCommit("symlink");
  Publish(client_id, {InodeEvent(static_cast<uint64_t>(parent)), EntryEvent(static_cast<uint64_t>(parent), name)});
}

void FileHandler::readlink(std::string& _return, int64_t ino, int64_t client_id) {
  Hold(client_id, {ino});
  _return = Unwrap(store_->ReadLink(static_cast<uint64_t>(ino)));
}

void FileHandler::unlink(int64_t parent, const std::string& name, int64_t client_id, const fsrpc::RequestId& request) {
  Hold(client_id, {parent});
  uint64_t child = 0;
  Check(store_->Unlink(static_cast<uint64_t>(parent), name, &child, RidOf(client_id, request)));
  TEST_KillAfterCommit("unlink");
  Publish(client_id, {EntryEvent(static_cast<uint64_t>(parent), name, child), InodeEvent(static_cast<uint64_t>(parent)),
                      InodeEvent(child)});
}

void FileHandler::rmdir(int64_t parent, const std::string& name, int64_t client_id, const fsrpc::RequestId& request) {
  Hold(client_id, {parent});
  uint64_t child = 0;
  Check(store_->RemoveDir(static_cast<uint64_t>(parent), name, &child, RidOf(client_id, request)));
  TEST_KillAfterCommit("rmdir");
  Publish(client_id, {EntryEvent(static_cast<uint64_t>(parent), name, child), InodeEvent(static_cast<uint64_t>(parent)),
                      InodeEvent(child)});
}

void FileHandler::rename(int64_t parent, const std::string& name, int64_t new_parent, const std::string& new_name,
                         int32_t flags, int64_t client_id, const fsrpc::RequestId& request) {
  Hold(client_id, {parent, new_parent});
  uint64_t moved = 0, replaced = 0;
  Check(store_->Rename(static_cast<uint64_t>(parent), name, static_cast<uint64_t>(new_parent), new_name,
                       static_cast<uint32_t>(flags), &moved, &replaced, RidOf(client_id, request)));
  TEST_KillAfterCommit("rename");
  // The caller keeps both inodes in its kernel (it looked both names up, so it holds them
  // already; this is for a caller that did not).
  Hold(client_id, {static_cast<int64_t>(moved), static_cast<int64_t>(replaced)});
  std::vector<Event> events = {EntryEvent(static_cast<uint64_t>(parent), name, moved),
                               EntryEvent(static_cast<uint64_t>(new_parent), new_name, replaced),
                               InodeEvent(static_cast<uint64_t>(parent)), InodeEvent(moved), InodeEvent(replaced)};
  if (new_parent != parent) events.push_back(InodeEvent(static_cast<uint64_t>(new_parent)));
  Publish(client_id, std::move(events));
}

void FileHandler::link(fsrpc::Attr& _return, int64_t ino, int64_t new_parent, const std::string& new_name,
                       int64_t client_id, const fsrpc::RequestId& request) {
  Hold(client_id, {ino, new_parent});
  _return = ToWire(Unwrap(store_->Link(static_cast<uint64_t>(ino), static_cast<uint64_t>(new_parent), new_name,
                                       RidOf(client_id, request))));
  TEST_KillAfterCommit("link");
  Publish(client_id, {InodeEvent(static_cast<uint64_t>(ino)), InodeEvent(static_cast<uint64_t>(new_parent)),
                      EntryEvent(static_cast<uint64_t>(new_parent), new_name)});
}

void FileHandler::create(fsrpc::OpenReply& _return, int64_t client_id, int64_t parent, const std::string& name,
                         int32_t mode, int32_t flags, const fsrpc::Caller& caller,
                         const fsrpc::RequestId& request) {
  bool created = false;
  Hold(client_id, {parent});  // an existing file is held below, a new one by the store's hook
  // The handle is named before the store records the outcome: a resend gets the same one.
  uint64_t handle = opens_->NewHandle();
  CreateReplay replay;
  Attr a = Unwrap(store_->Create(static_cast<uint64_t>(parent), name, static_cast<uint32_t>(mode), flags,
                                 OwnerOf(caller, client_id), &created, RidOf(client_id, request), handle, &replay));
  TEST_KillAfterCommit("create");
  if (!created || replay.replayed) {
    Hold(client_id, {static_cast<int64_t>(a.ino)});
    a = Unwrap(store_->GetAttr(a.ino));  // as in lookup: a change before the hold is seen
  }
  _return.cache = !WriteShared(client_id, a.ino, flags);
  if (replay.handle != 0) {
    handle = replay.handle;  // the first send's open, still in the table
  } else {
    opens_->Add(static_cast<uint64_t>(client_id), a.ino, flags, handle);
  }
  _return.handle = static_cast<int64_t>(handle);
  _return.attr = ToWire(a);
  _return.incarnation = static_cast<int64_t>(store_->incarnation());
  if (created) {
    Publish(client_id, {InodeEvent(static_cast<uint64_t>(parent)), EntryEvent(static_cast<uint64_t>(parent), name)});
  } else if (flags & O_TRUNC) {
    Publish(client_id, {InodeEvent(a.ino, true)});
  }
}

void FileHandler::open(fsrpc::OpenReply& _return, int64_t client_id, int64_t ino, int32_t flags) {
  Hold(client_id, {ino});
  Attr a = Unwrap(store_->Open(static_cast<uint64_t>(ino), flags));
  _return.cache = !WriteShared(client_id, a.ino, flags);
  _return.handle = static_cast<int64_t>(opens_->Add(static_cast<uint64_t>(client_id), a.ino, flags));
  _return.attr = ToWire(a);
  _return.incarnation = static_cast<int64_t>(store_->incarnation());
  if (flags & O_TRUNC) Publish(client_id, {InodeEvent(a.ino, true)});
}

void FileHandler::release(int64_t client_id, int64_t handle) {
  Check(opens_->Remove(static_cast<uint64_t>(client_id), static_cast<uint64_t>(handle)));
}

void FileHandler::read(std::string& _return, int64_t ino, int64_t offset, int32_t size, int64_t client_id) {
  Hold(client_id, {ino});
  if (size < 0) Check(FsError(EINVAL, "read: negative size " + std::to_string(size)));
  _return = Unwrap(store_->Read(static_cast<uint64_t>(ino), offset, static_cast<size_t>(size)));
}

void FileHandler::write(fsrpc::WriteReply& _return, int64_t ino, int64_t offset, const std::string& data,
                        bool append, int64_t client_id, const fsrpc::RequestId& request) {
  Hold(client_id, {ino});
  WriteResult r = Unwrap(store_->Write(static_cast<uint64_t>(ino), offset, data, append, RidOf(client_id, request)));
  TEST_KillAfterCommit("write");
  _return.written = static_cast<int32_t>(r.written);
  _return.offset = r.offset;
  _return.attr = ToWire(r.attr);
  if (!data.empty()) Publish(client_id, {InodeEvent(static_cast<uint64_t>(ino), true)});
}

void FileHandler::fsync(int64_t ino, bool datasync) {
  Unwrap(store_->GetAttr(static_cast<uint64_t>(ino)));  // ESTALE for a file that is gone
  Check(store_->Sync());
}

void FileHandler::fallocate(fsrpc::Attr& _return, int64_t ino, int32_t mode, int64_t offset, int64_t length,
                            int64_t client_id) {
  Hold(client_id, {ino});
  _return = ToWire(Unwrap(store_->Fallocate(static_cast<uint64_t>(ino), mode, offset, length)));
  Publish(client_id, {InodeEvent(static_cast<uint64_t>(ino), true)});
}

void FileHandler::readdir(fsrpc::DirPage& _return, int64_t ino, int64_t cookie, int32_t max_entries,
                          int64_t client_id) {
  Hold(client_id, {ino});
  if (cookie < 0 || max_entries <= 0)
    Check(FsError(EINVAL, "readdir: cookie " + std::to_string(cookie) + ", max_entries " + std::to_string(max_entries)));
  DirPage page = Unwrap(store_->ReadDir(static_cast<uint64_t>(ino), static_cast<uint64_t>(cookie),
                                        std::min(max_entries, 10000)));
  _return.entries.reserve(page.entries.size());
  for (auto& e : page.entries) {
    fsrpc::DirEntry w;
    w.name = std::move(e.name);
    w.ino = static_cast<int64_t>(e.ino);
    w.type = static_cast<int32_t>(e.type);
    w.next_cookie = static_cast<int64_t>(e.next_cookie);
    _return.entries.push_back(std::move(w));
  }
  _return.eof = page.eof;
}

void FileHandler::statfs(fsrpc::FsStats& _return) {
  FsStats s = Unwrap(store_->StatFs());
  _return.block_size = static_cast<int64_t>(s.block_size);
  _return.blocks = static_cast<int64_t>(s.blocks);
  _return.blocks_free = static_cast<int64_t>(s.blocks_free);
  _return.blocks_avail = static_cast<int64_t>(s.blocks_avail);
  _return.files = static_cast<int64_t>(s.files);
  _return.files_free = static_cast<int64_t>(s.files_free);
  _return.name_max = static_cast<int32_t>(s.name_max);
}

void FileHandler::setxattr(int64_t ino, const std::string& name, const std::string& value, int32_t flags,
                           int64_t client_id, const fsrpc::RequestId& request) {
  Check(store_->SetXattr(static_cast<uint64_t>(ino), name, value, flags, RidOf(client_id, request)));
  TEST_KillAfterCommit("setxattr");
  Publish(client_id, {InodeEvent(static_cast<uint64_t>(ino))});
}

void FileHandler::getxattr(std::string& _return, int64_t ino, const std::string& name) {
  _return = Unwrap(store_->GetXattr(static_cast<uint64_t>(ino), name));
}

void FileHandler::listxattr(std::vector<std::string>& _return, int64_t ino) {
  _return = Unwrap(store_->ListXattr(static_cast<uint64_t>(ino)));
}

void FileHandler::removexattr(int64_t ino, const std::string& name, int64_t client_id,
                              const fsrpc::RequestId& request) {
  Check(store_->RemoveXattr(static_cast<uint64_t>(ino), name, RidOf(client_id, request)));
  TEST_KillAfterCommit("removexattr");
  Publish(client_id, {InodeEvent(static_cast<uint64_t>(ino))});
}

namespace {

// A lock request from the wire, checked.
StatusOr<HeldLock> FromWire(int64_t client_id, int64_t ino, const fsrpc::FileLock& w, const char* op) {
  std::string what = std::string(op) + " on inode " + std::to_string(ino);
  if (w.kind != kLockPosix && w.kind != kLockFlock) return FsError(EINVAL, what + ": lock kind " + std::to_string(w.kind));
  if (w.type != F_RDLCK && w.type != F_WRLCK && w.type != F_UNLCK)
    return FsError(EINVAL, what + ": lock type " + std::to_string(w.type));
  if (w.first < 0 || w.last < w.first)
    return FsError(EINVAL, what + ": range " + std::to_string(w.first) + ".." + std::to_string(w.last));
  HeldLock l;
  l.kind = w.kind;
  l.type = w.type;
  l.start = w.first;
  l.end = w.last;
  if (l.kind == kLockFlock) {  // always the whole file
    l.start = 0;
    l.end = kLockToEof;
  }
  l.owner = LockOwner{static_cast<uint64_t>(client_id), static_cast<uint64_t>(w.owner)};
  l.pid = w.pid;
  return l;
}

LockTable::Clock::time_point DeadlineIn(int32_t wait_ms) {
  int32_t ms = std::clamp(wait_ms, 0, fsrpc::g_kitefs_constants.MAX_LOCK_WAIT_MS);
  return LockTable::Clock::now() + std::chrono::milliseconds(ms);
}

}  // namespace

void FileHandler::setlk(int64_t client_id, int64_t ino, const fsrpc::FileLock& lock, int32_t wait_ms, bool reclaim) {
  HeldLock l = Unwrap(FromWire(client_id, ino, lock, "setlk"));
  opens_->Touch(static_cast<uint64_t>(client_id));
  if (l.type != F_UNLCK) Unwrap(store_->GetAttr(static_cast<uint64_t>(ino)));  // ESTALE for no such inode
  Check(locks_->Set(static_cast<uint64_t>(ino), l, DeadlineIn(wait_ms), reclaim));
}

void FileHandler::getlk(fsrpc::FileLock& _return, int64_t client_id, int64_t ino, const fsrpc::FileLock& lock) {
  HeldLock l = Unwrap(FromWire(client_id, ino, lock, "getlk"));
  Unwrap(store_->GetAttr(static_cast<uint64_t>(ino)));
  // Never waits: during a grace period the client asks again (ENOLCK, Unavailable).
  std::optional<HeldLock> c = Unwrap(locks_->Test(static_cast<uint64_t>(ino), l, DeadlineIn(0)));
  _return = lock;
  if (!c) {
    _return.type = F_UNLCK;
    return;
  }
  _return.kind = c->kind;
  _return.type = c->type;
  _return.first = c->start;
  _return.last = c->end;
  _return.owner = static_cast<int64_t>(c->owner.owner);
  _return.pid = c->pid;
  _return.client_id = static_cast<int64_t>(c->owner.client_id);
}

void FileHandler::hold(int64_t client_id, const std::vector<int64_t>& inos) {
  if (inos.size() > kMaxHoldInodes)
    Check(FsError(EINVAL, "hold: " + std::to_string(inos.size()) + " inodes at once (at most " +
                              std::to_string(kMaxHoldInodes) + ")"));
  std::vector<uint64_t> held;
  held.reserve(inos.size());
  for (int64_t ino : inos) {
    if (ino > 0) held.push_back(static_cast<uint64_t>(ino));
  }
  invalidations_->Hold(static_cast<uint64_t>(client_id), held);
}

void FileHandler::wait_invalidations(fsrpc::Invalidations& _return, int64_t client_id, int64_t after_seq,
                                     int32_t wait_ms) {
  if (after_seq < 0 || wait_ms < 0)
    Check(FsError(EINVAL, "wait_invalidations: after_seq " + std::to_string(after_seq) + ", wait_ms " +
                              std::to_string(wait_ms)));
  opens_->Touch(static_cast<uint64_t>(client_id));
  InvalidationLog::Batch b = invalidations_->Wait(static_cast<uint64_t>(client_id), static_cast<uint64_t>(after_seq),
                                                  std::chrono::milliseconds(std::min(wait_ms, 30000)));
  _return.items.reserve(b.events.size());
  for (auto& e : b.events) {
    fsrpc::Invalidation w;
    w.ino = static_cast<int64_t>(e.ino);
    w.data = e.data;
    w.parent = static_cast<int64_t>(e.parent);
    w.name = std::move(e.name);
    if (e.parent != 0) w.__set_child(static_cast<int64_t>(e.child));
    _return.items.push_back(std::move(w));
  }
  _return.next_seq = static_cast<int64_t>(b.next_seq);
  _return.overflow = b.overflow;
  _return.incarnation = static_cast<int64_t>(store_->incarnation());
}

}  // namespace kite::fs
