// kitefs's client-to-server protocol, version 1 (DESIGN §6, docs/kitefs.md).
//
// kitefs (the FUSE client on every host) talks to kite-fsd (the file server of one domain, port
// 7072) over the same transport as every kite connection: mutual TLS with the cluster CA
// (common/rpc.h), framed transport, binary protocol, frames up to kMaxFrameBytes (8 MiB).
//
// Files are named by inode number (`ino`, 64 bits; the root is ROOT_INO). The server never
// reuses an inode number; `generation` tells apart two inodes that had the same number on
// different stores (it is the store's incarnation when the inode was made). An inode that no
// longer exists answers ESTALE, which makes the kernel look the name up again.
//
// Times are the server's, from one clock, in nanoseconds since the Unix epoch; the server
// never gives a change an older time than the change before it (`make` compares them).
//
// Errors: every call throws FsError with the Linux errno the kernel should see (ENOENT,
// ENOTEMPTY, ESTALE, ...), kite's StatusCode (common/status.h: what a program should do about
// it) and a message for a person. Names are bytes (any but '/' and NUL, at most MAX_NAME_BYTES,
// not "." or ".."), not necessarily UTF-8.
//
// Open files: a client names itself with a random 64-bit client_id (hello) and keeps it alive
// (keepalive); every open/create returns a handle that the client releases. The server so knows
// which client has which file open for what (close-to-open and write-sharing callbacks use
// it), keeps an unlinked file until its last handle is released, and releases the handles of
// a client it has not heard from for its client timeout. Reads and writes name the inode, not
// the handle, so they work across a server restart for every file that still has a name.
//
// Cache callbacks: the kernel of every client caches names, attributes and data. Every change
// is also an invalidation event in the server's log (which entry, which inode, whether its data
// changed); each client long-polls wait_invalidations for the events made by the other clients,
// applies them to its kernel (fuse_lowlevel_notify_inval_entry/inode), and acknowledges them by
// its next poll. An event goes only to the clients that hold what it names: a client holds an
// inode once any call of it named the inode (a lookup holds the directory and the child found),
// until the server forgets the client; a directory's entry events go to the directory's
// holders. A change returns only once every holder that listens has acknowledged its events (or
// a short timeout passed: a client that does not answer is logged and, after its client
// timeout, forgotten), so a stat on another host after the change returns sees it, while a
// change nobody else has looked at returns at once. Every call that changes something or hands
// the kernel something to cache names the client that made it (client_id); the maker's own
// kernel already knows.
//
// Write sharing: while a file is open on two clients and one of them writes, opens get
// OpenReply.cache = false and the client reads and writes that handle without the page cache
// (direct I/O); handles opened earlier are kept right by the data invalidations.
//
// Durability: every call that changes the namespace or attributes returns after its change is
// in the server's synced write-ahead log. A write returns once it is in the log, which a crash
// of the server process (kill -9) does not lose; fsync makes it survive a crash of the machine.
//
// Locks (version 2): POSIX (fcntl) and BSD (flock) locks are the server's, so they exclude
// across hosts. A lock belongs to (client_id, owner): `owner` is the kernel's lock owner (a
// process's file table for fcntl locks, an open file description for flock and OFD locks). The
// two kinds never conflict with each other, as on Linux. setlk never holds a lock request
// longer than wait_ms: a client waits for a lock with repeated bounded calls, which it can stop
// when the waiting process is interrupted. Locks of a client the server expires are released.
// After a server restart (a new incarnation) the server is in its grace period: clients reclaim
// the locks they held (setlk with reclaim) and reopen their open files (open without O_TRUNC);
// until the grace period ends other lock requests are refused with ENOLCK and code
// Unavailable (retry later), and every open gets cache = false (the server does not yet know
// who else has the file open). An unlinked file that was open when the server stopped is kept
// for the grace period, for its clients to reopen.
//
// Compatibility: fields are only ever added, never renumbered; hello() carries
// FS_PROTOCOL_VERSION both ways. Version 2 added setlk/getlk and OpenReply.incarnation;
// version 3 the client_id of lookup, getattr, readlink, read and readdir, and hold(): a server
// refuses clients older than FS_MIN_PROTOCOL_VERSION (they would miss invalidations).
// Version 4: entry invalidations carry the child they replaced (Invalidation.child).
// Version 5: changes carry a RequestId (exactly-once across a lost reply and a server restart);
// a client before version 5 sends none (seq 0) and gets the old at-most-once resends.
//
// Exactly-once changes (version 5): every change whose resend could give another answer than
// the first send (mknod, mkdir, symlink, link, unlink, rmdir, rename, create, setattr, an
// append, setxattr, removexattr) carries a RequestId: the client's sequence number for it. The
// server records the outcome of each change that succeeded, in the same atomic write as the
// change itself (so it survives a kill -9 exactly when the change does), and answers a request
// whose (client_id, seq) it has recorded with that outcome instead of doing it again: a mkdir
// resent after its reply was lost returns the directory it made, not EEXIST; an unlink returns
// success, not ENOENT. A failed change changed nothing, so it is not recorded: a resend does it
// again. So a client resends these changes like idempotent calls. The table is bounded by the
// client: RequestId.acked_below says it has the reply of every lower seq, and the server drops
// those outcomes; it also drops a client's outcomes when it expires the client. A resend whose
// seq is below what the client acknowledged is a stale copy: EALREADY.

namespace cpp kite.fsrpc

const i32 FS_PROTOCOL_VERSION = 5
// The oldest client version a server serves.
const i32 FS_MIN_PROTOCOL_VERSION = 3
const i64 ROOT_INO = 1
const i32 MAX_NAME_BYTES = 255
const i32 MAX_SYMLINK_BYTES = 4095
// Largest read or write in one call.
const i32 MAX_IO_BYTES = 4194304
// SetAttr times: "now, by the server's clock".
const i64 TIME_NOW = -1
// FileLock.kind
const i32 LOCK_POSIX = 0     // fcntl F_SETLK/F_SETLKW/F_GETLK (and OFD locks)
const i32 LOCK_FLOCK = 1     // flock(2): always the whole file
// The longest setlk wait.
const i32 MAX_LOCK_WAIT_MS = 10000

exception FsError {
  1: i32 err         // Linux errno value: what the kernel tells the application
  2: i32 code        // kite::StatusCode: retry, give up, fix the state first ...
  3: string message
}

// A change's request id (version 5; see "Exactly-once changes" above).
struct RequestId {
  1: i64 seq           // 1, 2, 3, ... per client_id, one per change (its resends keep it); 0: none
  2: i64 acked_below   // the client has the reply of every change of its with a lower seq
}

// The process on whose behalf a client creates something: it owns the new inode. The client
// host vouches for it (TLS proved the client is a cluster host; there is no root squash).
struct Caller {
  1: i32 uid
  2: i32 gid
}

struct Attr {
  1: i64 ino
  2: i64 generation
  3: i32 mode           // file type and permission bits, as st_mode
  4: i32 nlink
  5: i32 uid
  6: i32 gid
  7: i64 size
  8: i64 blocks         // 512-byte units the data takes
  9: i64 atime_ns
  10: i64 mtime_ns
  11: i64 ctime_ns
  12: i64 rdev
  13: i64 data_version  // grows with every change of the data (write, truncate, fallocate)
}

// setattr: only the fields that are set change; ctime is always the server's now.
struct SetAttr {
  1: optional i32 mode   // permission bits (07777); the file type cannot change
  2: optional i32 uid
  3: optional i32 gid
  4: optional i64 size   // truncate or extend (sparse)
  5: optional i64 atime_ns   // or TIME_NOW
  6: optional i64 mtime_ns   // or TIME_NOW
}

struct OpenReply {
  1: i64 handle
  2: Attr attr          // after the open (after O_TRUNC's truncation)
  3: bool cache = true  // false: the file is write-shared: do not cache its data
  4: i64 incarnation    // the server's incarnation the handle belongs to (version 2)
}

// A byte-range lock (fcntl) or a whole-file lock (flock: first 0, last "to EOF"). A lock that
// runs to the end of the file, whatever it becomes, has last = 2^63 - 1 (INT64_MAX).
struct FileLock {
  1: i32 kind           // LOCK_POSIX or LOCK_FLOCK
  2: i32 type           // F_RDLCK (0), F_WRLCK (1), F_UNLCK (2): Linux values
  3: i64 first          // first byte
  4: i64 last           // last byte (inclusive), or INT64_MAX: to the end of file
  5: i64 owner          // the client's lock owner
  6: i32 pid            // the locking process, on the client's host
  7: i64 client_id      // getlk's answer: the client that holds the lock
}

// One invalidation: an entry (parent, name) and/or an inode (its attributes, and its data too
// when `data`). 0 means none.
struct Invalidation {
  1: i64 ino
  2: bool data
  3: i64 parent
  4: binary name
  // For an entry (parent, name): the inode the name led to before the change; 0: none (a new
  // name, so only a negative entry could be stale). Absent from servers before version 4.
  5: optional i64 child
}

struct Invalidations {
  1: list<Invalidation> items
  2: i64 next_seq       // pass as after_seq to the next wait_invalidations
  3: bool overflow      // events were lost (the client fell too far behind, or the server
                        // restarted): drop everything cached
  4: i64 incarnation
}

struct WriteReply {
  1: i32 written
  2: i64 offset         // where the data landed (the end of file for an append)
  3: Attr attr          // after the write
}

struct DirEntry {
  1: binary name
  2: i64 ino
  3: i32 type           // the file type bits of st_mode (S_IFREG, S_IFDIR, ...)
  4: i64 next_cookie    // pass to readdir to continue after this entry
}

// A page of a directory listing. Cookies are stable: an entry keeps its place while others
// come and go (telldir/seekdir), and a new entry is listed after all older ones.
struct DirPage {
  1: list<DirEntry> entries   // "." and ".." first, for cookie 0
  2: bool eof
}

struct FsStats {
  1: i64 block_size
  2: i64 blocks
  3: i64 blocks_free
  4: i64 blocks_avail
  5: i64 files
  6: i64 files_free
  7: i32 name_max
}

struct ServerInfo {
  1: i32 protocol_version
  2: i64 root_ino
  3: i64 incarnation    // changes every time the server starts: open handles were forgotten
  4: i32 max_io_bytes
  5: i32 client_timeout_ms   // keepalive at least this often
  6: i64 invalidation_seq    // the client's first wait_invalidations passes this
}

service FileService {
  // Registers (or re-registers, after a server restart) a client. `client_name` is for logs.
  ServerInfo hello(1: i64 client_id, 2: string client_name, 3: i32 protocol_version)
      throws (1: FsError e)
  // Proves the client is alive; unknown clients (after a server restart) are registered again.
  void keepalive(1: i64 client_id) throws (1: FsError e)

  // Calls that hand the kernel something to cache (lookup, getattr, readlink, read, readdir
  // and every change) make the caller a holder of the inodes they name (version 3): only
  // holders are sent, and waited for, invalidations of an inode or of a directory's entries.
  Attr lookup(1: i64 parent, 2: binary name, 3: i64 client_id) throws (1: FsError e)
  Attr getattr(1: i64 ino, 2: i64 client_id) throws (1: FsError e)
  Attr setattr(1: i64 ino, 2: SetAttr attr, 3: i64 client_id, 4: RequestId request) throws (1: FsError e)

  // mode carries the file type (S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK).
  Attr mknod(1: i64 parent, 2: binary name, 3: i32 mode, 4: i64 rdev, 5: Caller caller,
             6: i64 client_id, 7: RequestId request) throws (1: FsError e)
  Attr mkdir(1: i64 parent, 2: binary name, 3: i32 mode, 4: Caller caller, 5: i64 client_id,
             6: RequestId request)
      throws (1: FsError e)
  Attr symlink(1: i64 parent, 2: binary name, 3: binary target, 4: Caller caller,
               5: i64 client_id, 6: RequestId request) throws (1: FsError e)
  binary readlink(1: i64 ino, 2: i64 client_id) throws (1: FsError e)
  void unlink(1: i64 parent, 2: binary name, 3: i64 client_id, 4: RequestId request) throws (1: FsError e)
  void rmdir(1: i64 parent, 2: binary name, 3: i64 client_id, 4: RequestId request) throws (1: FsError e)
  // Atomic; replaces an existing target as rename(2) does. flags: RENAME_NOREPLACE (1) and
  // RENAME_EXCHANGE (2), Linux values.
  void rename(1: i64 parent, 2: binary name, 3: i64 new_parent, 4: binary new_name, 5: i32 flags,
              6: i64 client_id, 7: RequestId request) throws (1: FsError e)
  Attr link(1: i64 ino, 2: i64 new_parent, 3: binary new_name, 4: i64 client_id,
            5: RequestId request)
      throws (1: FsError e)

  // flags: open(2)'s, Linux values (O_ACCMODE, O_EXCL, O_TRUNC, O_APPEND are used).
  // A resent create gets the handle of its first send while the server has not restarted,
  // else a new one (the old handle died with the server).
  OpenReply create(1: i64 client_id, 2: i64 parent, 3: binary name, 4: i32 mode, 5: i32 flags,
                   6: Caller caller, 7: RequestId request) throws (1: FsError e)
  OpenReply open(1: i64 client_id, 2: i64 ino, 3: i32 flags) throws (1: FsError e)
  // Releasing an unknown handle (one from before a server restart) is not an error.
  void release(1: i64 client_id, 2: i64 handle) throws (1: FsError e)

  // Up to `size` bytes (at most MAX_IO_BYTES); fewer only at the end of the file. Holes read
  // as zeros.
  binary read(1: i64 ino, 2: i64 offset, 3: i32 size, 4: i64 client_id) throws (1: FsError e)
  // append: write at the end of the file, atomically with respect to every other writer;
  // `offset` is then ignored. EFBIG past the largest file size. Only appends need a request id
  // (a write at an offset does the same when sent again).
  WriteReply write(1: i64 ino, 2: i64 offset, 3: binary data, 4: bool append, 5: i64 client_id,
                   6: RequestId request)
      throws (1: FsError e)
  void fsync(1: i64 ino, 2: bool datasync) throws (1: FsError e)
  // mode: 0 (allocate, extending the size), FALLOC_FL_KEEP_SIZE (1),
  // FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE (3), FALLOC_FL_ZERO_RANGE (16, with or without
  // KEEP_SIZE). Others: EOPNOTSUPP. Space is never reserved: allocating only sets the size.
  Attr fallocate(1: i64 ino, 2: i32 mode, 3: i64 offset, 4: i64 length, 5: i64 client_id)
      throws (1: FsError e)

  // Entries from `cookie` on (0: the start), at most max_entries of them.
  DirPage readdir(1: i64 ino, 2: i64 cookie, 3: i32 max_entries, 4: i64 client_id)
      throws (1: FsError e)
  FsStats statfs() throws (1: FsError e)

  // Extended attributes. flags: XATTR_CREATE (1), XATTR_REPLACE (2). ENODATA: no such
  // attribute. "system.*" names (ACLs) are refused with EOPNOTSUPP: nothing would enforce them.
  void setxattr(1: i64 ino, 2: binary name, 3: binary value, 4: i32 flags, 5: i64 client_id,
                6: RequestId request)
      throws (1: FsError e)
  binary getxattr(1: i64 ino, 2: binary name) throws (1: FsError e)
  list<binary> listxattr(1: i64 ino) throws (1: FsError e)
  void removexattr(1: i64 ino, 2: binary name, 3: i64 client_id, 4: RequestId request) throws (1: FsError e)

  // Takes, changes (upgrade, downgrade, split, merge: fcntl's rules) or releases (F_UNLCK) a
  // lock of (client_id, lock.owner) on ino. A conflicting lock of another owner is waited for up
  // to wait_ms (0: not at all; at most MAX_LOCK_WAIT_MS), then EAGAIN. flock conversions are
  // not atomic (the old lock goes first), as on Linux. During the grace period after a restart,
  // only unlocks and reclaims are served; the rest wait up to wait_ms, then get ENOLCK with code
  // Unavailable. ESTALE: no such inode; EINVAL: a bad kind, type or range.
  void setlk(1: i64 client_id, 2: i64 ino, 3: FileLock lock, 4: i32 wait_ms, 5: bool reclaim)
      throws (1: FsError e)
  // The first lock of another owner that conflicts with `lock`, or one of type F_UNLCK. During
  // the grace period: ENOLCK with code Unavailable.
  FileLock getlk(1: i64 client_id, 2: i64 ino, 3: FileLock lock) throws (1: FsError e)

  // Makes the client a holder of these inodes again: after a server restart (a new
  // incarnation) the client names every inode its kernel may still cache (version 3).
  void hold(1: i64 client_id, 2: list<i64> inos) throws (1: FsError e)

  // The invalidations made by other clients after `after_seq`, waiting up to wait_ms (at most
  // 30000) for one. Calling it acknowledges every event up to after_seq: the client has applied
  // them. A client that has never called it is not waited for.
  Invalidations wait_invalidations(1: i64 client_id, 2: i64 after_seq, 3: i32 wait_ms)
      throws (1: FsError e)
}
