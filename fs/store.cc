// Store: POSIX namespace and file data over RocksDB column families. Each change reads what it
// needs, decides, and commits one WriteBatch under mu_; keys are big-endian so that a
// directory's entries and a file's chunks are contiguous and in order.
#include "fs/store.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "common/log.h"
#include "fs/fs_errors.h"
#include "fs/inode_record.h"

namespace kite::fs {
namespace {

constexpr char kFormat[] = "kitefs store 1, chunk 65536";
constexpr char kOrphanPrefix[] = "orphan/";
// Files with more chunks than this are deleted with one range tombstone, smaller ones key by
// key (range tombstones are cheap to write but every read of the memtable pays for them).
constexpr uint64_t kPointDeleteChunks = 256;

void PutBE(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetBE(std::string_view s, size_t at = 0) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

std::string U64Key(uint64_t v) {
  std::string k;
  PutBE(&k, v);
  return k;
}

std::string PairKey(uint64_t a, uint64_t b) {
  std::string k;
  PutBE(&k, a);
  PutBE(&k, b);
  return k;
}

std::string NameKey(uint64_t a, std::string_view name) {
  std::string k = U64Key(a);
  k.append(name);
  return k;
}

std::string OrphanKey(uint64_t ino) { return kOrphanPrefix + U64Key(ino); }

// A name for messages: printable bytes as they are, others as \xHH.
std::string Quote(std::string_view name) {
  std::string q = "'";
  for (unsigned char c : name.substr(0, 300)) {
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      q.push_back(static_cast<char>(c));
    } else {
      char b[8];
      snprintf(b, sizeof b, "\\x%02x", c);
      q += b;
    }
  }
  if (name.size() > 300) q += "...";
  return q + "'";
}

std::string Where(std::string_view op, uint64_t dir, std::string_view name) {
  return std::string(op) + " " + Quote(name) + " in directory " + std::to_string(dir);
}

// A name a new or looked-up entry may have. "." and ".." are the caller's business.
Status CheckName(std::string_view op, uint64_t dir, std::string_view name) {
  if (name.empty()) return FsError(ENOENT, Where(op, dir, name) + ": empty name");
  if (name.size() > kMaxNameBytes)
    return FsError(ENAMETOOLONG, std::string(op) + " in directory " + std::to_string(dir) + ": a name of " +
                                     std::to_string(name.size()) + " bytes (at most " +
                                     std::to_string(kMaxNameBytes) + ")");
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos)
    return FsError(EINVAL, Where(op, dir, name) + ": a name cannot hold '/' or NUL");
  return OkStatus();
}

bool IsDots(std::string_view name) { return name == "." || name == ".."; }

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return OkStatus();
  int err = s.IsNoSpace() ? ENOSPC : EIO;
  return FsError(err, std::string(what) + ": RocksDB: " + s.ToString());
}

Attr ToAttr(const InodeRecord& r) {
  Attr a;
  a.ino = r.ino;
  a.generation = r.generation;
  a.mode = r.mode;
  a.nlink = r.nlink;
  a.uid = r.uid;
  a.gid = r.gid;
  a.size = r.size;
  a.blocks = r.is_reg() ? (r.size + 511) / 512 : (r.is_dir() ? 8 : 0);
  a.atime_ns = r.atime_ns;
  a.mtime_ns = r.mtime_ns;
  a.ctime_ns = r.ctime_ns;
  a.rdev = r.rdev;
  a.data_version = r.data_version;
  return a;
}

std::string EncodeDentry(uint64_t ino, uint32_t type, uint64_t seq) {
  std::string v;
  PutBE(&v, ino);
  PutBE(&v, type);
  PutBE(&v, seq);
  return v;
}

std::string EncodeListing(uint64_t ino, uint32_t type, std::string_view name) {
  std::string v;
  PutBE(&v, ino);
  PutBE(&v, type);
  v.append(name);
  return v;
}

// The snapshot a lock-free reader reads from.
class SnapshotRead {
 public:
  explicit SnapshotRead(rocksdb::DB* db) : db_(db), snap_(db->GetSnapshot()) { ro.snapshot = snap_; }
  ~SnapshotRead() { db_->ReleaseSnapshot(snap_); }
  SnapshotRead(const SnapshotRead&) = delete;
  SnapshotRead& operator=(const SnapshotRead&) = delete;
  rocksdb::ReadOptions ro;

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snap_;
};

uint64_t ChunkCount(uint64_t size) { return (size + kChunkSize - 1) / kChunkSize; }

// A request's outcome ("replies" family): version byte 1, then big-endian u64s: the store's
// incarnation, a, b, and the attributes (ino, generation, mode, nlink, uid, gid, size, blocks,
// atime, mtime, ctime, rdev, data_version).
constexpr char kOutcomeVersion = 1;
constexpr size_t kOutcomeBytes = 1 + 8 * 16;

std::string EncodeOutcomeFor(uint64_t incarnation, uint64_t a, uint64_t b, const Attr& at) {
  std::string v(1, kOutcomeVersion);
  for (uint64_t x : {incarnation, a, b, at.ino, at.generation, uint64_t{at.mode}, uint64_t{at.nlink}, uint64_t{at.uid},
                     uint64_t{at.gid}, at.size, at.blocks, static_cast<uint64_t>(at.atime_ns),
                     static_cast<uint64_t>(at.mtime_ns), static_cast<uint64_t>(at.ctime_ns), at.rdev, at.data_version})
    PutBE(&v, x);
  return v;
}

}  // namespace

// ---- opening ------------------------------------------------------------------------------

StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::unique_ptr<Store> store(new Store());
  KITE_RETURN_IF_ERROR(store->Init(options));
  return store;
}

Store::~Store() {
  if (syncer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      stopping_ = true;
    }
    sync_cv_.notify_all();
    syncer_.join();
  }
  if (!db_) return;
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  handles_.clear();
  rocksdb::Status s = db_->Close();
  if (!s.ok()) KLOG_WARN("closing the store {}: {}", path_, s.ToString());
}

Status Store::Init(const StoreOptions& options) {
  path_ = options.path;
  sync_metadata_ = options.sync_metadata;
  made_ = options.made;
  unlinked_grace_ns_ = options.unlinked_grace_ms * 1000000;
  if (path_.empty()) return FsError(EINVAL, "store: no directory given");
  std::error_code ec;
  std::filesystem::create_directories(path_, ec);
  if (ec) return FsError(ec.value(), "store: make directory " + path_);

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_options.keep_log_file_num = 3;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.cache_bytes);
  rocksdb::ColumnFamilyOptions cf;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // File data: values of 8 KiB and more go to blob files (a chunk is up to 64 KiB), so
  // compactions move keys, not data; garbage collection reclaims overwritten chunks.
  rocksdb::ColumnFamilyOptions chunk_cf = cf;
  chunk_cf.enable_blob_files = true;
  chunk_cf.min_blob_size = 8 * 1024;
  chunk_cf.enable_blob_garbage_collection = true;
  chunk_cf.blob_cache = table.block_cache;

  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, cf}, {"inodes", cf}, {"dentries", cf},
      {"dirlist", cf},                         {"chunks", chunk_cf}, {"xattrs", cf},
      {"replies", cf}};
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path_, cfs, &handles_, &db);
  if (!s.ok()) {
    std::string hint = s.IsIOError() && s.ToString().find("lock") != std::string::npos
                           ? " (is another kite-fsd using this store?)"
                           : "";
    return Status(s.IsIOError() ? StatusCode::kUnavailable : StatusCode::kDataLoss,
                  "open store " + path_ + ": " + s.ToString() + hint);
  }
  db_.reset(db);
  meta_ = handles_[0];
  inodes_ = handles_[1];
  dentries_ = handles_[2];
  dirlist_ = handles_[3];
  chunks_ = handles_[4];
  xattrs_ = handles_[5];
  replies_ = handles_[6];

  std::lock_guard<std::mutex> lock(mu_);
  rocksdb::ReadOptions ro;
  std::string format;
  s = db_->Get(ro, meta_, "format", &format);
  rocksdb::WriteBatch b;
  if (s.IsNotFound()) {
    // A new store: the root directory, owned by root, 0755.
    InodeRecord root;
    root.ino = kRootIno;
    root.mode = S_IFDIR | 0755;
    root.nlink = 2;
    root.parent = kRootIno;
    root.next_seq = 2;
    root.atime_ns = root.mtime_ns = root.ctime_ns = Now();
    PutInode(&b, root);
    b.Put(meta_, "format", kFormat);
    next_ino_ = kRootIno + 1;
  } else if (!s.ok()) {
    return FromRocks(s, "store " + path_ + ": read format");
  } else {
    if (format != kFormat)
      return Status(StatusCode::kFailedPrecondition,
                    "store " + path_ + " has format '" + format + "'; this kite-fsd reads '" + kFormat + "'");
    std::string v;
    KITE_RETURN_IF_ERROR(FromRocks(db_->Get(ro, meta_, "next_ino", &v), "store " + path_ + ": read next_ino"));
    if (v.size() != 8) return DataLoss("store " + path_ + ": next_ino is damaged");
    next_ino_ = GetBE(v);
    if (db_->Get(ro, meta_, "clock", &v).ok() && v.size() == 8) last_time_ns_ = static_cast<int64_t>(GetBE(v));
    if (db_->Get(ro, meta_, "incarnation", &v).ok() && v.size() == 8) incarnation_ = GetBE(v);
  }
  {
    // The outcomes of changes, for the clients that resend them after this restart.
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, replies_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string_view k = it->key().ToStringView();
      if (k.size() == 16) requests_[GetBE(k, 0)].seqs.insert(GetBE(k, 8));
    }
    KITE_RETURN_IF_ERROR(FromRocks(it->status(), "store " + path_ + ": list recorded replies"));
  }
  ++incarnation_;
  b.Put(meta_, "incarnation", U64Key(incarnation_));
  KITE_RETURN_IF_ERROR(Commit(&b, /*sync=*/true, "store " + path_ + ": open"));
  if (!sync_metadata_ && options.sync_interval_ms > 0) {
    syncer_ = std::thread([this, ms = options.sync_interval_ms] { SyncLoop(std::chrono::milliseconds(ms)); });
  }
  return RemoveOrphans(options.orphan_reclaim_ms);
}

Status Store::RemoveOrphans(int64_t reclaim_ms) {
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
  rocksdb::WriteBatch b;
  int n = 0;
  const int64_t purge_at = WallNowNs() + reclaim_ms * 1000000;
  for (it->Seek(kOrphanPrefix); it->Valid() && it->key().starts_with(kOrphanPrefix); it->Next()) {
    std::string_view k = it->key().ToStringView();
    uint64_t ino = GetBE(k, sizeof kOrphanPrefix - 1);
    ++n;
    if (reclaim_ms > 0) {
      // Perhaps open when the server stopped (also one reopened after an earlier restart: its
      // value is a purge time): its clients may reopen it; PurgeUnlinked removes it after the
      // reclaim period unless one did.
      std::string_view v = it->value().ToStringView();
      int64_t old = v.size() == 8 ? static_cast<int64_t>(GetBE(v)) : 0;
      b.Put(meta_, it->key(), U64Key(static_cast<uint64_t>(std::max(old, purge_at))));
      continue;
    }
    auto r = LoadInode(ro, ino);
    if (r.ok()) Purge(&b, *r);
    b.Delete(meta_, it->key());
  }
  KITE_RETURN_IF_ERROR(FromRocks(it->status(), "store: list orphans"));
  if (n == 0) return OkStatus();
  if (reclaim_ms > 0) {
    KLOG_INFO("store {}: {} unlinked file(s) kept {} ms for the clients that had them open to reopen them",
              path_, n, reclaim_ms);
  } else {
    KLOG_INFO("store {}: removed {} unlinked file(s) that were open when the server stopped", path_, n);
  }
  return Commit(&b, true, "store: remove orphans");
}

// ---- helpers ------------------------------------------------------------------------------

int64_t Store::WallNowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t Store::Now() {
  last_time_ns_ = std::max(WallNowNs(), last_time_ns_ + 1);
  return last_time_ns_;
}

uint64_t Store::AllocateIno() { return next_ino_++; }

void Store::PutInode(rocksdb::WriteBatch* b, const InodeRecord& r) { b->Put(inodes_, U64Key(r.ino), r.Encode()); }

StatusOr<InodeRecord> Store::LoadInode(const rocksdb::ReadOptions& ro, uint64_t ino) {
  std::string v;
  rocksdb::Status s = db_->Get(ro, inodes_, U64Key(ino), &v);
  if (s.IsNotFound()) return FsError(ESTALE, "inode " + std::to_string(ino) + " does not exist");
  KITE_RETURN_IF_ERROR(FromRocks(s, "read inode " + std::to_string(ino)));
  return InodeRecord::Decode(ino, v);  // DataLoss (EIO) if damaged
}

StatusOr<InodeRecord> Store::LoadDir(const rocksdb::ReadOptions& ro, uint64_t ino, std::string_view op) {
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(ro, ino));
  if (!r.is_dir()) return FsError(ENOTDIR, std::string(op) + ": inode " + std::to_string(ino) + " is not a directory");
  return r;
}

StatusOr<Store::DentryValue> Store::LoadDentry(const rocksdb::ReadOptions& ro, uint64_t parent, std::string_view name) {
  std::string v;
  rocksdb::Status s = db_->Get(ro, dentries_, NameKey(parent, name), &v);
  if (s.IsNotFound()) return FsError(ENOENT, Where("lookup", parent, name));
  KITE_RETURN_IF_ERROR(FromRocks(s, Where("lookup", parent, name)));
  if (v.size() != 24) return FsError(EIO, Where("lookup", parent, name) + ": directory entry is damaged");
  return DentryValue{GetBE(v, 0), static_cast<uint32_t>(GetBE(v, 8)), GetBE(v, 16)};
}

void Store::AddDentry(rocksdb::WriteBatch* b, InodeRecord* dir, std::string_view name, uint64_t ino,
                      uint32_t type) {
  uint64_t seq = dir->next_seq++;
  b->Put(dentries_, NameKey(dir->ino, name), EncodeDentry(ino, type, seq));
  b->Put(dirlist_, PairKey(dir->ino, seq), EncodeListing(ino, type, name));
}

void Store::RemoveDentry(rocksdb::WriteBatch* b, uint64_t parent, std::string_view name, const DentryValue& d) {
  b->Delete(dentries_, NameKey(parent, name));
  b->Delete(dirlist_, PairKey(parent, d.seq));
}

void Store::DeleteChunks(rocksdb::WriteBatch* b, uint64_t ino, uint64_t first, uint64_t end) {
  if (first >= end) return;
  if (end - first <= kPointDeleteChunks) {
    for (uint64_t i = first; i < end; ++i) b->Delete(chunks_, PairKey(ino, i));
  } else {
    b->DeleteRange(chunks_, PairKey(ino, first), PairKey(ino, end));
  }
}

void Store::Purge(rocksdb::WriteBatch* b, const InodeRecord& r) {
  b->Delete(inodes_, U64Key(r.ino));
  // No chunk lies past the size (TruncateData trims), so this finds every one.
  if (r.is_reg()) DeleteChunks(b, r.ino, 0, ChunkCount(r.size));
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, xattrs_));
  std::string prefix = U64Key(r.ino);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) b->Delete(xattrs_, it->key());
  b->Delete(meta_, OrphanKey(r.ino));
}

void Store::DropLink(rocksdb::WriteBatch* b, InodeRecord* r, int64_t now) {
  r->ctime_ns = now;
  if (r->is_dir()) {  // an (empty) directory goes with its one name
    Purge(b, *r);
    return;
  }
  if (r->nlink > 0) --r->nlink;
  if (r->nlink > 0) {
    PutInode(b, *r);
  } else if (pins_.count(r->ino)) {
    PutInode(b, *r);
    b->Put(meta_, OrphanKey(r->ino), "");  // goes at its last Release
  } else if (unlinked_grace_ns_ > 0) {
    PutInode(b, *r);
    b->Put(meta_, OrphanKey(r->ino), U64Key(static_cast<uint64_t>(now + unlinked_grace_ns_)));
  } else {
    Purge(b, *r);
  }
}

Status Store::TruncateData(rocksdb::WriteBatch* b, const InodeRecord& r, uint64_t new_size) {
  if (new_size >= r.size) return OkStatus();  // growing leaves a hole: nothing to store
  DeleteChunks(b, r.ino, ChunkCount(new_size), ChunkCount(r.size));
  uint64_t keep = new_size % kChunkSize;
  if (keep == 0) return OkStatus();
  // The chunk the new end falls in keeps only the bytes before it, so that growing the file
  // again shows zeros there.
  std::string key = PairKey(r.ino, new_size / kChunkSize);
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), chunks_, key, &v);
  if (s.IsNotFound()) return OkStatus();
  KITE_RETURN_IF_ERROR(FromRocks(s, "truncate inode " + std::to_string(r.ino)));
  if (v.size() > keep) {
    v.resize(keep);
    b->Put(chunks_, key, v);
  }
  return OkStatus();
}

Status Store::ZeroRange(rocksdb::WriteBatch* b, const InodeRecord& r, uint64_t offset, uint64_t length) {
  uint64_t end = std::min(offset + length, r.size);
  for (uint64_t pos = offset; pos < end;) {
    uint64_t idx = pos / kChunkSize, start = idx * kChunkSize;
    uint64_t lo = pos - start, hi = std::min(end - start, kChunkSize);
    std::string key = PairKey(r.ino, idx);
    if (lo == 0 && (hi == kChunkSize || start + hi >= r.size)) {
      b->Delete(chunks_, key);
    } else {
      std::string v;
      rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), chunks_, key, &v);
      if (!s.IsNotFound()) {
        KITE_RETURN_IF_ERROR(FromRocks(s, "punch a hole in inode " + std::to_string(r.ino)));
        if (v.size() > lo) {
          std::fill(v.begin() + lo, v.begin() + std::min<uint64_t>(hi, v.size()), '\0');
          b->Put(chunks_, key, v);
        }
      }
    }
    pos = start + hi;
  }
  return OkStatus();
}

Status Store::Commit(rocksdb::WriteBatch* b, bool sync, std::string_view what, const RequestId& rid,
                     const Outcome& outcome) {
  // The counters ride along with every change, so a restart never hands out an inode number
  // or a time that is already used.
  b->Put(meta_, "next_ino", U64Key(next_ino_));
  b->Put(meta_, "clock", U64Key(static_cast<uint64_t>(last_time_ns_)));
  std::vector<uint64_t> drop;
  if (!rid.none()) {
    // The outcome goes in the change's own batch: it is durable exactly when the change is.
    b->Put(replies_, PairKey(rid.client, rid.seq),
           EncodeOutcomeFor(incarnation_, outcome.a, outcome.b, outcome.attr));
    auto it = requests_.find(rid.client);
    if (it != requests_.end()) {
      const std::set<uint64_t>& seqs = it->second.seqs;
      size_t kept = seqs.size();
      for (uint64_t seq : seqs) {
        // What the client acknowledged, and past the bound the oldest (a client never has
        // that many outstanding; the warning says one misbehaves).
        if (seq >= rid.acked_below && kept < kMaxRepliesPerClient) break;
        if (seq >= rid.acked_below)
          KLOG_WARN("client {:016x}: more than {} changes without acknowledged replies: forgetting the outcome of {}",
                    rid.client, kMaxRepliesPerClient, seq);
        drop.push_back(seq);
        --kept;
      }
      for (uint64_t seq : drop) b->Delete(replies_, PairKey(rid.client, seq));
    }
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  if (!sync) unsynced_.store(true, std::memory_order_relaxed);
  KITE_RETURN_IF_ERROR(FromRocks(db_->Write(wo, b), what));
  if (!rid.none()) {
    ClientRequests& c = requests_[rid.client];
    for (uint64_t seq : drop) c.seqs.erase(seq);
    c.seqs.insert(rid.seq);
    c.acked_below = std::max(c.acked_below, rid.acked_below);
  }
  return OkStatus();
}

StatusOr<std::optional<Store::Outcome>> Store::FindOutcome(const RequestId& rid) {
  if (rid.none()) return std::optional<Outcome>();
  auto it = requests_.find(rid.client);
  if (it == requests_.end()) return std::optional<Outcome>();
  std::string what = "request " + std::to_string(rid.seq) + " of client " + std::to_string(rid.client);
  // What a request acknowledges counts at once (its outcomes go with the next commit).
  it->second.acked_below = std::max(it->second.acked_below, rid.acked_below);
  if (rid.seq < it->second.acked_below)
    return FsError(EALREADY, what + ": a stale copy (the client has its reply)");
  if (!it->second.seqs.count(rid.seq)) return std::optional<Outcome>();
  std::string v;
  KITE_RETURN_IF_ERROR(FromRocks(db_->Get(rocksdb::ReadOptions(), replies_, PairKey(rid.client, rid.seq), &v), what));
  if (v.size() != kOutcomeBytes || v[0] != kOutcomeVersion) return DataLoss(what + ": recorded outcome is damaged");
  uint64_t x[16];
  for (size_t i = 0; i < 16; ++i) x[i] = GetBE(v, 1 + 8 * i);
  Outcome o;
  o.incarnation = x[0];
  o.a = x[1];
  o.b = x[2];
  Attr& at = o.attr;
  at.ino = x[3];
  at.generation = x[4];
  at.mode = static_cast<uint32_t>(x[5]);
  at.nlink = static_cast<uint32_t>(x[6]);
  at.uid = static_cast<uint32_t>(x[7]);
  at.gid = static_cast<uint32_t>(x[8]);
  at.size = x[9];
  at.blocks = x[10];
  at.atime_ns = static_cast<int64_t>(x[11]);
  at.mtime_ns = static_cast<int64_t>(x[12]);
  at.ctime_ns = static_cast<int64_t>(x[13]);
  at.rdev = x[14];
  at.data_version = x[15];
  KLOG_DEBUG("{}: a resend, answered with its recorded outcome", what);
  return std::optional<Outcome>(o);
}

Attr Store::Refreshed(const Outcome& o) {
  auto r = LoadInode(rocksdb::ReadOptions(), o.attr.ino);
  return r.ok() ? ToAttr(*r) : o.attr;
}

Status Store::ForgetRequests(uint64_t client) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(client);
  if (it == requests_.end()) return OkStatus();
  rocksdb::WriteBatch b;
  for (uint64_t seq : it->second.seqs) b.Delete(replies_, PairKey(client, seq));
  requests_.erase(it);
  return Commit(&b, false, "forget the replies of client " + std::to_string(client));
}

std::vector<uint64_t> Store::RequestClients() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> out;
  for (const auto& [client, r] : requests_) out.push_back(client);
  return out;
}

size_t Store::TEST_RecordedRequests(uint64_t client) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(client);
  return it == requests_.end() ? 0 : it->second.seqs.size();
}

StatusOr<InodeRecord> Store::MakeInode(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                                       Owner owner, std::string_view symlink_target, const RequestId& rid,
                                       uint64_t created_handle) {
  rocksdb::ReadOptions ro;
  const char* op = S_ISDIR(mode) ? "mkdir" : S_ISLNK(mode) ? "symlink" : "create";
  KITE_ASSIGN_OR_RETURN(InodeRecord dir, LoadDir(ro, parent, op));
  if (IsDots(name)) return FsError(EEXIST, Where(op, parent, name));
  KITE_RETURN_IF_ERROR(CheckName(op, parent, name));
  if (dir.nlink == 0) return FsError(ENOENT, Where(op, parent, name) + ": the directory was removed");
  auto existing = LoadDentry(ro, parent, name);
  if (existing.ok()) return FsError(EEXIST, Where(op, parent, name));
  if (ErrnoOf(existing.status()) != ENOENT) return existing.status();
  if (S_ISDIR(mode) && dir.nlink >= kMaxLinks) return FsError(EMLINK, Where(op, parent, name));

  int64_t now = Now();
  InodeRecord r;
  r.ino = AllocateIno();
  r.generation = incarnation_;
  r.mode = mode;
  r.uid = owner.uid;
  r.gid = owner.gid;
  // BSD group semantics in a set-group-ID directory (what ext4 does).
  if (dir.mode & S_ISGID) {
    r.gid = dir.gid;
    if (S_ISDIR(mode)) r.mode |= S_ISGID;
  }
  r.nlink = S_ISDIR(mode) ? 2 : 1;
  r.rdev = rdev;
  r.atime_ns = r.mtime_ns = r.ctime_ns = now;
  if (S_ISDIR(mode)) {
    r.parent = parent;
    r.next_seq = 2;
  }
  r.symlink_target.assign(symlink_target);
  r.size = symlink_target.size();

  if (made_ && owner.client != 0) made_(owner.client, r.ino);
  rocksdb::WriteBatch b;
  PutInode(&b, r);
  AddDentry(&b, &dir, name, r.ino, mode & S_IFMT);
  if (S_ISDIR(mode)) ++dir.nlink;
  dir.mtime_ns = dir.ctime_ns = now;
  PutInode(&b, dir);
  // A create's outcome says it made the file (a = 1) and which handle it was opened as (b).
  Outcome done{0, 1, created_handle, ToAttr(r)};
  KITE_RETURN_IF_ERROR(Commit(&b, sync_metadata_, Where(op, parent, name), rid, done));
  return r;
}

// ---- namespace ----------------------------------------------------------------------------

StatusOr<Attr> Store::Lookup(uint64_t parent, std::string_view name) {
  SnapshotRead snap(db_.get());
  KITE_ASSIGN_OR_RETURN(InodeRecord dir, LoadDir(snap.ro, parent, "lookup"));
  if (name == ".") return ToAttr(dir);
  if (name == "..") {
    KITE_ASSIGN_OR_RETURN(InodeRecord up, LoadInode(snap.ro, dir.parent));
    return ToAttr(up);
  }
  KITE_RETURN_IF_ERROR(CheckName("lookup", parent, name));
  KITE_ASSIGN_OR_RETURN(DentryValue d, LoadDentry(snap.ro, parent, name));
  auto r = LoadInode(snap.ro, d.ino);
  if (!r.ok()) return FsError(EIO, Where("lookup", parent, name) + ": entry names a missing inode");
  return ToAttr(*r);
}

StatusOr<Attr> Store::GetAttr(uint64_t ino) {
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(rocksdb::ReadOptions(), ino));
  return ToAttr(r);
}

StatusOr<Attr> Store::SetAttr(uint64_t ino, const AttrChange& c, const RequestId& rid) {
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(std::optional<Outcome> done, FindOutcome(rid));
  if (done) return Refreshed(*done);
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(rocksdb::ReadOptions(), ino));
  std::string what = "setattr inode " + std::to_string(ino);
  rocksdb::WriteBatch b;
  int64_t now = Now();
  if (c.size) {
    if (r.is_dir()) return FsError(EISDIR, what);
    if (!r.is_reg()) return FsError(EINVAL, what + ": not a regular file");
    if (*c.size < 0) return FsError(EINVAL, what + ": negative size " + std::to_string(*c.size));
    if (*c.size > kMaxFileSize)
      return FsError(EFBIG, what + ": size " + std::to_string(*c.size) + " is past the largest file (" +
                                std::to_string(kMaxFileSize) + " bytes)");
    uint64_t size = static_cast<uint64_t>(*c.size);
    KITE_RETURN_IF_ERROR(TruncateData(&b, r, size));
    if (size != r.size) ++r.data_version;
    r.size = size;
    if (!c.mtime_ns) r.mtime_ns = now;
  }
  if (c.mode) r.mode = (r.mode & S_IFMT) | (*c.mode & 07777);
  if (c.uid) r.uid = *c.uid;
  if (c.gid) r.gid = *c.gid;
  if (c.atime_ns) r.atime_ns = *c.atime_ns == AttrChange::kNow ? now : *c.atime_ns;
  if (c.mtime_ns) r.mtime_ns = *c.mtime_ns == AttrChange::kNow ? now : *c.mtime_ns;
  r.ctime_ns = now;
  PutInode(&b, r);
  KITE_RETURN_IF_ERROR(Commit(&b, sync_metadata_, what, rid, Outcome{0, 0, 0, ToAttr(r)}));
  return ToAttr(r);
}

StatusOr<Attr> Store::MakeNode(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev, Owner owner,
                               const RequestId& rid) {
  uint32_t type = mode & S_IFMT;
  if (type == 0) type = S_IFREG;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK)
    return FsError(EINVAL, Where("mknod", parent, name) + ": file type " + std::to_string(type >> 12));
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(std::optional<Outcome> done, FindOutcome(rid));
  if (done) return Refreshed(*done);
  KITE_ASSIGN_OR_RETURN(InodeRecord r, MakeInode(parent, name, type | (mode & 07777), rdev, owner, "", rid));
  return ToAttr(r);
}

StatusOr<Attr> Store::MakeDir(uint64_t parent, std::string_view name, uint32_t mode, Owner owner,
                              const RequestId& rid) {
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(std::optional<Outcome> done, FindOutcome(rid));
  if (done) return Refreshed(*done);
  KITE_ASSIGN_OR_RETURN(InodeRecord r, MakeInode(parent, name, S_IFDIR | (mode & 07777), 0, owner, "", rid));
  return ToAttr(r);
}

StatusOr<Attr> Store::MakeSymlink(uint64_t parent, std::string_view name, std::string_view target, Owner owner,
                                  const RequestId& rid) {
  if (target.empty()) return FsError(ENOENT, Where("symlink", parent, name) + ": empty target");
  if (target.size() > kMaxSymlinkBytes)
    return FsError(ENAMETOOLONG, Where("symlink", parent, name) + ": target of " + std::to_string(target.size()) +
                                     " bytes (at most " + std::to_string(kMaxSymlinkBytes) + ")");
  if (target.find('\0') != std::string_view::npos)
    return FsError(EINVAL, Where("symlink", parent, name) + ": target holds NUL");
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(std::optional<Outcome> done, FindOutcome(rid));
  if (done) return Refreshed(*done);
  KITE_ASSIGN_OR_RETURN(InodeRecord r, MakeInode(parent, name, S_IFLNK | 0777, 0, owner, target, rid));
  return ToAttr(r);
}

StatusOr<std::string> Store::ReadLink(uint64_t ino) {
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(rocksdb::ReadOptions(), ino));
  if (!r.is_symlink()) return FsError(EINVAL, "readlink inode " + std::to_string(ino) + ": not a symlink");
  return r.symlink_target;
}

Status Store::Unlink(uint64_t parent, std::string_view name, uint64_t* removed, const RequestId& rid) {
  if (IsDots(name)) return FsError(EISDIR, Where("unlink", parent, name));
  KITE_RETURN_IF_ERROR(CheckName("unlink", parent, name));
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(std::optional<Outcome> done, FindOutcome(rid));
  if (done) {
    if (removed) *removed = done->a;
    return OkStatus();
  }
  rocksdb::ReadOptions ro;
  KITE_ASSIGN_OR_RETURN(InodeRecord dir, LoadDir(ro, parent, "unlink"));
  KITE_ASSIGN_OR_RETURN(DentryValue d, LoadDentry(ro, parent, name));
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(ro, d.ino));
  if (r.is_dir()) return FsError(EISDIR, Where("unlink", parent, name));
  if (removed) *removed = d.ino;
  int64_t now = Now();
  rocksdb::WriteBatch b;
  RemoveDentry(&b, parent, name, d);
  DropLink(&b, &r, now);
  dir.mtime_ns = dir.ctime_ns = now;
  PutInode(&b, dir);
  return Commit(&b, sync_metadata_, Where("unlink", parent, name), rid, Outcome{0, d.ino, 0, {}});
}

Status Store::RemoveDir(uint64_t parent, std::string_view name, uint64_t* removed, const RequestId& rid) {
  if (name == ".") return FsError(EINVAL, Where("rmdir", parent, name));
  if (name == "..") return FsError(ENOTEMPTY, Where("rmdir", parent, name));
  KITE_RETURN_IF_ERROR(CheckName("rmdir", parent, name));
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(std::optional<Outcome> done, FindOutcome(rid));
  if (done) {
    if (removed) *removed = done->a;
    return OkStatus();
  }
  rocksdb::ReadOptions ro;
  KITE_ASSIGN_OR_RETURN(InodeRecord dir, LoadDir(ro, parent, "rmdir"));
  KITE_ASSIGN_OR_RETURN(DentryValue d, LoadDentry(ro, parent, name));
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(ro, d.ino));
  if (!r.is_dir()) return FsError(ENOTDIR, Where("rmdir", parent, name));
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, dirlist_));
    std::string prefix = U64Key(r.ino);
    it->Seek(prefix);
    if (it->Valid() && it->key().starts_with(prefix)) return FsError(ENOTEMPTY, Where("rmdir", parent, name));
    KITE_RETURN_IF_ERROR(FromRocks(it->status(), Where("rmdir", parent, name)));
  }
  if (removed) *removed = d.ino;
  int64_t now = Now();
  rocksdb::WriteBatch b;
  RemoveDentry(&b, parent, name, d);
  DropLink(&b, &r, now);
  --dir.nlink;
  dir.mtime_ns = dir.ctime_ns = now;
  PutInode(&b, dir);
  return Commit(&b, sync_metadata_, Where("rmdir", parent, name), rid, Outcome{0, d.ino, 0, {}});
}

Status Store::Rename(uint64_t parent, std::string_view name, uint64_t new_parent, std::string_view new_name,
                     uint32_t flags, uint64_t* moved, uint64_t* replaced, const RequestId& rid) {
  std::string what = "rename " + Quote(name) + " in directory " + std::to_string(parent) + " to " +
                     Quote(new_name) + " in directory " + std::to_string(new_parent);
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
      ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)))
    return FsError(EINVAL, what + ": flags " + std::to_string(flags));
  if (IsDots(name) || IsDots(new_name)) return FsError(EBUSY, what);
  KITE_RETURN_IF_ERROR(CheckName("rename", parent, name));
  KITE_RETURN_IF_ERROR(CheckName("rename", new_parent, new_name));
  const bool exchange = flags & RENAME_EXCHANGE;

  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(std::optional<Outcome> done, FindOutcome(rid));
  if (done) {
    if (moved) *moved = done->a;
    if (replaced) *replaced = done->b;
    return OkStatus();
  }
  rocksdb::ReadOptions ro;
  KITE_ASSIGN_OR_RETURN(InodeRecord src_dir_rec, LoadDir(ro, parent, "rename"));
  std::optional<InodeRecord> dst_dir_rec;
  if (new_parent != parent) {
    KITE_ASSIGN_OR_RETURN(dst_dir_rec, LoadDir(ro, new_parent, "rename"));
  }
  InodeRecord& src_dir = src_dir_rec;
  InodeRecord& dst_dir = dst_dir_rec ? *dst_dir_rec : src_dir_rec;
  if (dst_dir.nlink == 0) return FsError(ENOENT, what + ": the target directory was removed");

  KITE_ASSIGN_OR_RETURN(DentryValue sd, LoadDentry(ro, parent, name));
  KITE_ASSIGN_OR_RETURN(InodeRecord src, LoadInode(ro, sd.ino));
  std::optional<DentryValue> dd;
  if (auto d = LoadDentry(ro, new_parent, new_name); d.ok()) {
    dd = *d;
  } else if (ErrnoOf(d.status()) != ENOENT) {
    return d.status();
  }
  if (exchange && !dd) return FsError(ENOENT, what + ": nothing to exchange with");
  if (moved) *moved = sd.ino;
  if (replaced) *replaced = dd ? dd->ino : 0;
  if (dd && dd->ino == sd.ino) return OkStatus();  // the same file: rename(2) does nothing
  if (dd && (flags & RENAME_NOREPLACE)) return FsError(EEXIST, what);

  // A directory cannot move below itself.
  auto check_not_below = [&](uint64_t moved, uint64_t to) -> Status {
    for (uint64_t x = to;; ) {
      if (x == moved) return FsError(EINVAL, what + ": a directory cannot move into itself");
      if (x == kRootIno) return OkStatus();
      KITE_ASSIGN_OR_RETURN(InodeRecord up, LoadInode(ro, x));
      if (up.parent == x) return OkStatus();
      x = up.parent;
    }
  };
  if (src.is_dir() && new_parent != parent) KITE_RETURN_IF_ERROR(check_not_below(src.ino, new_parent));

  std::optional<InodeRecord> dst;
  if (dd) {
    KITE_ASSIGN_OR_RETURN(dst, LoadInode(ro, dd->ino));
    if (exchange) {
      if (dst->is_dir() && new_parent != parent) KITE_RETURN_IF_ERROR(check_not_below(dst->ino, parent));
    } else if (src.is_dir()) {
      if (!dst->is_dir()) return FsError(ENOTDIR, what);
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, dirlist_));
      std::string prefix = U64Key(dst->ino);
      it->Seek(prefix);
      if (it->Valid() && it->key().starts_with(prefix)) return FsError(ENOTEMPTY, what);
    } else if (dst->is_dir()) {
      return FsError(EISDIR, what);
    }
  }

  int64_t now = Now();
  rocksdb::WriteBatch b;
  RemoveDentry(&b, parent, name, sd);
  if (dd) RemoveDentry(&b, new_parent, new_name, *dd);
  AddDentry(&b, &dst_dir, new_name, src.ino, src.mode & S_IFMT);
  if (src.is_dir() && new_parent != parent) {
    src.parent = new_parent;
    --src_dir.nlink;
    ++dst_dir.nlink;
  }
  src.ctime_ns = now;
  PutInode(&b, src);
  if (exchange) {
    AddDentry(&b, &src_dir, name, dst->ino, dst->mode & S_IFMT);
    if (dst->is_dir() && new_parent != parent) {
      dst->parent = parent;
      --dst_dir.nlink;
      ++src_dir.nlink;
    }
    dst->ctime_ns = now;
    PutInode(&b, *dst);
  } else if (dst) {
    if (dst->is_dir()) --dst_dir.nlink;
    DropLink(&b, &*dst, now);
  }
  src_dir.mtime_ns = src_dir.ctime_ns = now;
  dst_dir.mtime_ns = dst_dir.ctime_ns = now;
  PutInode(&b, src_dir);
  if (dst_dir_rec) PutInode(&b, dst_dir);
  return Commit(&b, sync_metadata_, what, rid, Outcome{0, sd.ino, dd ? dd->ino : 0, {}});
}

StatusOr<Attr> Store::Link(uint64_t ino, uint64_t new_parent, std::string_view new_name, const RequestId& rid) {
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(std::optional<Outcome> done, FindOutcome(rid));
  if (done) return Refreshed(*done);
  rocksdb::ReadOptions ro;
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(ro, ino));
  std::string what = Where("link inode " + std::to_string(ino) + " as", new_parent, new_name);
  if (r.is_dir()) return FsError(EPERM, what + ": a directory cannot have more links");
  if (r.nlink == 0) return FsError(ENOENT, what + ": the file has been removed");
  if (r.nlink >= kMaxLinks) return FsError(EMLINK, what);
  KITE_ASSIGN_OR_RETURN(InodeRecord dir, LoadDir(ro, new_parent, "link"));
  if (IsDots(new_name)) return FsError(EEXIST, what);
  KITE_RETURN_IF_ERROR(CheckName("link", new_parent, new_name));
  if (dir.nlink == 0) return FsError(ENOENT, what + ": the directory was removed");
  auto existing = LoadDentry(ro, new_parent, new_name);
  if (existing.ok()) return FsError(EEXIST, what);
  if (ErrnoOf(existing.status()) != ENOENT) return existing.status();
  int64_t now = Now();
  ++r.nlink;
  r.ctime_ns = now;
  rocksdb::WriteBatch b;
  PutInode(&b, r);
  AddDentry(&b, &dir, new_name, r.ino, r.mode & S_IFMT);
  dir.mtime_ns = dir.ctime_ns = now;
  PutInode(&b, dir);
  KITE_RETURN_IF_ERROR(Commit(&b, sync_metadata_, what, rid, Outcome{0, 0, 0, ToAttr(r)}));
  return ToAttr(r);
}

// ---- open files ---------------------------------------------------------------------------

StatusOr<Attr> Store::OpenLocked(InodeRecord* r, int flags, const RequestId& rid, uint64_t handle) {
  std::string what = "open inode " + std::to_string(r->ino);
  int acc = flags & O_ACCMODE;
  if (r->is_dir() && (acc != O_RDONLY || (flags & O_TRUNC))) return FsError(EISDIR, what);
  if (r->is_symlink()) return FsError(ELOOP, what + ": a symlink");
  if ((flags & O_TRUNC) && r->is_reg()) {
    rocksdb::WriteBatch b;
    KITE_RETURN_IF_ERROR(TruncateData(&b, *r, 0));
    if (r->size != 0) ++r->data_version;
    r->size = 0;
    r->mtime_ns = r->ctime_ns = Now();
    PutInode(&b, *r);
    KITE_RETURN_IF_ERROR(Commit(&b, sync_metadata_, what + " with O_TRUNC", rid, Outcome{0, 0, handle, ToAttr(*r)}));
  } else if (!rid.none()) {
    // A create that found the file: recorded all the same, so a resend does not open it twice.
    rocksdb::WriteBatch b;
    KITE_RETURN_IF_ERROR(Commit(&b, sync_metadata_, what, rid, Outcome{0, 0, handle, ToAttr(*r)}));
  }
  ++pins_[r->ino];
  return ToAttr(*r);
}

StatusOr<Attr> Store::Open(uint64_t ino, int flags) {
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(rocksdb::ReadOptions(), ino));
  return OpenLocked(&r, flags);
}

StatusOr<Attr> Store::Create(uint64_t parent, std::string_view name, uint32_t mode, int flags, Owner owner,
                             bool* created, const RequestId& rid, uint64_t handle, CreateReplay* replay) {
  *created = false;
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(std::optional<Outcome> done, FindOutcome(rid));
  if (done) {
    *created = done->a != 0;
    auto r = LoadInode(rocksdb::ReadOptions(), done->attr.ino);
    if (!r.ok())
      return FsError(ESTALE, Where("create", parent, name) + ": made (a resend), but the file is gone since");
    CreateReplay rp{true, 0};
    if (done->incarnation == incarnation_ && done->b != 0) {
      rp.handle = done->b;  // the first send's open holds its pin still
    } else {
      ++pins_[r->ino];  // that open died with the old server: this is a new one
    }
    if (replay) *replay = rp;
    return ToAttr(*r);
  }
  rocksdb::ReadOptions ro;
  if (!IsDots(name)) {
    KITE_RETURN_IF_ERROR(CheckName("create", parent, name));
    auto d = LoadDentry(ro, parent, name);
    if (d.ok()) {
      if (flags & O_EXCL) return FsError(EEXIST, Where("create", parent, name));
      KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(ro, d->ino));
      return OpenLocked(&r, flags, rid, handle);
    }
    if (ErrnoOf(d.status()) != ENOENT) return d.status();
  }
  KITE_ASSIGN_OR_RETURN(InodeRecord r, MakeInode(parent, name, S_IFREG | (mode & 07777), 0, owner, "", rid, handle));
  *created = true;
  ++pins_[r.ino];
  return ToAttr(r);
}

Status Store::Release(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pins_.find(ino);
  if (it == pins_.end()) return OkStatus();  // e.g. opened before a restart
  if (--it->second > 0) return OkStatus();
  pins_.erase(it);
  auto r = LoadInode(rocksdb::ReadOptions(), ino);
  if (!r.ok() || r->nlink > 0) return OkStatus();
  rocksdb::WriteBatch b;
  Purge(&b, *r);
  return Commit(&b, sync_metadata_, "remove unlinked inode " + std::to_string(ino) + " at its last close");
}

StatusOr<int> Store::PurgeUnlinked(int64_t now_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
  rocksdb::WriteBatch b;
  int n = 0;
  for (it->Seek(kOrphanPrefix); it->Valid() && it->key().starts_with(kOrphanPrefix); it->Next()) {
    std::string_view v = it->value().ToStringView();
    uint64_t ino = GetBE(it->key().ToStringView(), sizeof kOrphanPrefix - 1);
    if (v.size() != 8 || static_cast<int64_t>(GetBE(v)) > now_ns || pins_.count(ino)) continue;
    auto r = LoadInode(ro, ino);
    if (r.ok()) {
      Purge(&b, *r);
    } else {
      b.Delete(meta_, it->key());
    }
    ++n;
  }
  KITE_RETURN_IF_ERROR(FromRocks(it->status(), "store: list unlinked files"));
  if (n > 0) KITE_RETURN_IF_ERROR(Commit(&b, sync_metadata_, "store: remove unlinked files"));
  return n;
}

int Store::TEST_PinCount(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pins_.find(ino);
  return it == pins_.end() ? 0 : it->second;
}

// ---- data ---------------------------------------------------------------------------------

StatusOr<std::string> Store::Read(uint64_t ino, int64_t offset, size_t size) {
  std::string what = "read inode " + std::to_string(ino);
  if (offset < 0) return FsError(EINVAL, what + ": negative offset " + std::to_string(offset));
  if (size > kMaxIoBytes)
    return FsError(EINVAL, what + ": " + std::to_string(size) + " bytes at once (at most " +
                               std::to_string(kMaxIoBytes) + ")");
  SnapshotRead snap(db_.get());
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(snap.ro, ino));
  if (r.is_dir()) return FsError(EISDIR, what);
  if (!r.is_reg()) return FsError(EINVAL, what + ": not a regular file");
  uint64_t off = static_cast<uint64_t>(offset);
  if (off >= r.size || size == 0) return std::string();
  uint64_t n = std::min<uint64_t>(size, r.size - off);
  std::string out(n, '\0');
  std::string upper = PairKey(ino, (off + n - 1) / kChunkSize + 1);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro = snap.ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, chunks_));
  for (it->Seek(PairKey(ino, off / kChunkSize)); it->Valid(); it->Next()) {
    uint64_t start = GetBE(it->key().ToStringView(), 8) * kChunkSize;
    rocksdb::Slice v = it->value();
    uint64_t from = std::max(start, off), to = std::min(start + v.size(), off + n);
    if (from < to) std::memcpy(out.data() + (from - off), v.data() + (from - start), to - from);
  }
  KITE_RETURN_IF_ERROR(FromRocks(it->status(), what));
  return out;
}

StatusOr<WriteResult> Store::Write(uint64_t ino, int64_t offset, std::string_view data, bool append,
                                   const RequestId& rid) {
  std::string what = "write inode " + std::to_string(ino);
  if (data.size() > kMaxIoBytes)
    return FsError(EINVAL, what + ": " + std::to_string(data.size()) + " bytes at once (at most " +
                               std::to_string(kMaxIoBytes) + ")");
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(std::optional<Outcome> done, FindOutcome(rid));
  if (done) return WriteResult{done->a, static_cast<int64_t>(done->b), Refreshed(*done)};
  rocksdb::ReadOptions ro;
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(ro, ino));
  if (r.is_dir()) return FsError(EISDIR, what);
  if (!r.is_reg()) return FsError(EINVAL, what + ": not a regular file");
  if (append) offset = static_cast<int64_t>(r.size);
  if (offset < 0) return FsError(EINVAL, what + ": negative offset " + std::to_string(offset));
  if (offset > kMaxFileSize - static_cast<int64_t>(data.size()))
    return FsError(EFBIG, what + ": " + std::to_string(data.size()) + " bytes at offset " + std::to_string(offset) +
                              " end past the largest file (" + std::to_string(kMaxFileSize) + " bytes)");
  WriteResult result;
  result.offset = offset;
  result.written = data.size();
  if (data.empty()) {
    result.attr = ToAttr(r);
    return result;
  }
  uint64_t off = static_cast<uint64_t>(offset), end = off + data.size();
  rocksdb::WriteBatch b;
  for (uint64_t pos = off; pos < end;) {
    uint64_t idx = pos / kChunkSize, start = idx * kChunkSize;
    uint64_t lo = pos - start, hi = std::min(end - start, kChunkSize);
    std::string key = PairKey(ino, idx);
    std::string_view piece = data.substr(pos - off, hi - lo);
    if (lo == 0 && (hi == kChunkSize || start + hi >= r.size)) {
      // Covers the chunk, or everything of it up to the end of the file: nothing to keep.
      b.Put(chunks_, key, rocksdb::Slice(piece.data(), piece.size()));
    } else {
      std::string v;
      rocksdb::Status s = db_->Get(ro, chunks_, key, &v);
      if (!s.IsNotFound()) KITE_RETURN_IF_ERROR(FromRocks(s, what));
      if (start + v.size() > r.size) v.resize(r.size > start ? r.size - start : 0);
      if (v.size() < hi) v.resize(hi, '\0');
      std::memcpy(v.data() + lo, piece.data(), piece.size());
      b.Put(chunks_, key, v);
    }
    pos = start + hi;
  }
  r.size = std::max(r.size, end);
  r.mtime_ns = r.ctime_ns = Now();
  ++r.data_version;
  PutInode(&b, r);
  KITE_RETURN_IF_ERROR(Commit(&b, /*sync=*/false, what, rid,
                              Outcome{0, data.size(), static_cast<uint64_t>(offset), ToAttr(r)}));
  result.attr = ToAttr(r);
  return result;
}

Status Store::Sync() { return FromRocks(db_->SyncWAL(), "fsync: sync the write-ahead log"); }

void Store::SyncLoop(std::chrono::milliseconds interval) {
  std::unique_lock<std::mutex> lock(sync_mu_);
  while (!sync_cv_.wait_for(lock, interval, [&] { return stopping_; })) {
    if (!unsynced_.exchange(false, std::memory_order_relaxed)) continue;
    lock.unlock();
    rocksdb::Status s = db_->SyncWAL();
    if (!s.ok()) KLOG_WARN("store {}: background sync of the write-ahead log: {}", path_, s.ToString());
    lock.lock();
  }
}

StatusOr<Attr> Store::Fallocate(uint64_t ino, int mode, int64_t offset, int64_t length) {
  std::string what = "fallocate inode " + std::to_string(ino);
  if (offset < 0 || length <= 0) return FsError(EINVAL, what + ": offset " + std::to_string(offset) + " length " + std::to_string(length));
  if (offset > kMaxFileSize - length) return FsError(EFBIG, what + ": past the largest file");
  if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE && mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) &&
      mode != FALLOC_FL_ZERO_RANGE && mode != (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))
    return FsError(EOPNOTSUPP, what + ": mode " + std::to_string(mode));
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(rocksdb::ReadOptions(), ino));
  if (r.is_dir()) return FsError(EISDIR, what);
  if (!r.is_reg()) return FsError(ENODEV, what + ": not a regular file");
  rocksdb::WriteBatch b;
  uint64_t end = static_cast<uint64_t>(offset + length);
  // Space is not reserved (the store is shared, and holes read as zeros): allocating is only
  // growing the size; punching a hole or zeroing a range drops the data there.
  if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
    KITE_RETURN_IF_ERROR(ZeroRange(&b, r, static_cast<uint64_t>(offset), static_cast<uint64_t>(length)));
    ++r.data_version;
  }
  if (!(mode & FALLOC_FL_KEEP_SIZE) && end > r.size) {
    r.size = end;
    ++r.data_version;
  }
  r.mtime_ns = r.ctime_ns = Now();
  PutInode(&b, r);
  KITE_RETURN_IF_ERROR(Commit(&b, sync_metadata_, what));
  return ToAttr(r);
}

// ---- directories, statfs, xattrs -----------------------------------------------------------

StatusOr<DirPage> Store::ReadDir(uint64_t ino, uint64_t cookie, size_t max_entries) {
  SnapshotRead snap(db_.get());
  KITE_ASSIGN_OR_RETURN(InodeRecord dir, LoadDir(snap.ro, ino, "readdir"));
  DirPage page;
  if (cookie == 0 && page.entries.size() < max_entries) page.entries.push_back({".", dir.ino, S_IFDIR, 1});
  if (cookie <= 1 && page.entries.size() < max_entries) page.entries.push_back({"..", dir.parent, S_IFDIR, 2});
  if (page.entries.size() >= max_entries) return page;
  std::string upper = U64Key(ino + 1);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro = snap.ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, dirlist_));
  for (it->Seek(PairKey(ino, std::max<uint64_t>(cookie, 2))); it->Valid(); it->Next()) {
    if (page.entries.size() >= max_entries) return page;
    std::string_view k = it->key().ToStringView(), v = it->value().ToStringView();
    if (k.size() != 16 || v.size() < 16) return FsError(EIO, "readdir " + std::to_string(ino) + ": damaged entry");
    page.entries.push_back(
        {std::string(v.substr(16)), GetBE(v, 0), static_cast<uint32_t>(GetBE(v, 8)), GetBE(k, 8) + 1});
  }
  KITE_RETURN_IF_ERROR(FromRocks(it->status(), "readdir " + std::to_string(ino)));
  page.eof = true;
  return page;
}

StatusOr<FsStats> Store::StatFs() {
  struct statvfs v;
  if (::statvfs(path_.c_str(), &v) != 0) return FsError(errno, "statfs " + path_);
  FsStats s;
  s.block_size = 4096;
  auto scale = [&](uint64_t n) { return n * v.f_frsize / s.block_size; };
  s.blocks = scale(v.f_blocks);
  s.blocks_free = scale(v.f_bfree);
  s.blocks_avail = scale(v.f_bavail);
  {
    std::lock_guard<std::mutex> lock(mu_);
    s.files = next_ino_ - 1;
  }
  s.files_free = (uint64_t{1} << 32) - 1;
  return s;
}

namespace {

Status CheckXattrName(uint64_t ino, std::string_view name) {
  std::string what = "xattr " + Quote(name) + " of inode " + std::to_string(ino);
  if (name.empty() || name.size() > kMaxXattrNameBytes) return FsError(ERANGE, what + ": bad name length");
  if (name.find('\0') != std::string_view::npos) return FsError(EINVAL, what + ": name holds NUL");
  if (name.starts_with("system."))
    return FsError(EOPNOTSUPP, what + ": system attributes (ACLs) are not supported");
  if (!name.starts_with("user.") && !name.starts_with("trusted.") && !name.starts_with("security."))
    return FsError(EOPNOTSUPP, what + ": unknown namespace");
  return OkStatus();
}

}  // namespace

Status Store::SetXattr(uint64_t ino, std::string_view name, std::string_view value, int flags,
                       const RequestId& rid) {
  KITE_RETURN_IF_ERROR(CheckXattrName(ino, name));
  std::string what = "setxattr " + Quote(name) + " on inode " + std::to_string(ino);
  if (value.size() > kMaxXattrValueBytes) return FsError(E2BIG, what + ": value of " + std::to_string(value.size()) + " bytes");
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return FsError(EINVAL, what + ": flags " + std::to_string(flags));
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(std::optional<Outcome> done, FindOutcome(rid));
  if (done) return OkStatus();
  rocksdb::ReadOptions ro;
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(ro, ino));
  std::string key = NameKey(ino, name), old;
  rocksdb::Status s = db_->Get(ro, xattrs_, key, &old);
  if (!s.ok() && !s.IsNotFound()) return FromRocks(s, what);
  if (s.ok() && (flags & XATTR_CREATE)) return FsError(EEXIST, what);
  if (s.IsNotFound() && (flags & XATTR_REPLACE)) return FsError(ENODATA, what);
  rocksdb::WriteBatch b;
  b.Put(xattrs_, key, rocksdb::Slice(value.data(), value.size()));
  r.ctime_ns = Now();
  PutInode(&b, r);
  return Commit(&b, sync_metadata_, what, rid);
}

StatusOr<std::string> Store::GetXattr(uint64_t ino, std::string_view name) {
  KITE_RETURN_IF_ERROR(CheckXattrName(ino, name));
  SnapshotRead snap(db_.get());
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(snap.ro, ino));
  std::string v;
  rocksdb::Status s = db_->Get(snap.ro, xattrs_, NameKey(ino, name), &v);
  if (s.IsNotFound()) return FsError(ENODATA, "getxattr " + Quote(name) + " of inode " + std::to_string(ino));
  KITE_RETURN_IF_ERROR(FromRocks(s, "getxattr"));
  return v;
}

StatusOr<std::vector<std::string>> Store::ListXattr(uint64_t ino) {
  SnapshotRead snap(db_.get());
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(snap.ro, ino));
  std::vector<std::string> names;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(snap.ro, xattrs_));
  std::string prefix = U64Key(ino);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    names.emplace_back(it->key().ToStringView().substr(8));
  KITE_RETURN_IF_ERROR(FromRocks(it->status(), "listxattr inode " + std::to_string(ino)));
  return names;
}

Status Store::RemoveXattr(uint64_t ino, std::string_view name, const RequestId& rid) {
  KITE_RETURN_IF_ERROR(CheckXattrName(ino, name));
  std::string what = "removexattr " + Quote(name) + " of inode " + std::to_string(ino);
  std::lock_guard<std::mutex> lock(mu_);
  KITE_ASSIGN_OR_RETURN(std::optional<Outcome> done, FindOutcome(rid));
  if (done) return OkStatus();
  rocksdb::ReadOptions ro;
  KITE_ASSIGN_OR_RETURN(InodeRecord r, LoadInode(ro, ino));
  std::string key = NameKey(ino, name), old;
  rocksdb::Status s = db_->Get(ro, xattrs_, key, &old);
  if (s.IsNotFound()) return FsError(ENODATA, what);
  KITE_RETURN_IF_ERROR(FromRocks(s, what));
  rocksdb::WriteBatch b;
  b.Delete(xattrs_, key);
  r.ctime_ns = Now();
  PutInode(&b, r);
  return Commit(&b, sync_metadata_, what, rid);
}

}  // namespace kite::fs
