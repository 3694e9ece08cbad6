// CheckpointTransfer: listing, serving, fetching, exporting and sweeping checkpoint files.
#include "remoted/checkpoint_transfer.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "common/log.h"
#include "kite/rpc/Remote.h"
#include "remoted/job_checkpoint.h"
#include "remoted/unique_fd.h"
#include "syscall-shim/image/crc32c.h"
#include "syscall-shim/image/image_format.h"
#include "syscall-shim/tree/job_manifest.h"

namespace kite {
namespace {

constexpr int kConnectTimeoutMs = 3000;
constexpr int kCallTimeoutMs = 30000;    // one chunk: a peer that stops answering is dead
constexpr int kMaxFiles = 4096;          // 64 processes, their deleted-file copies, 256 pipes
constexpr int64_t kMaxFileBytes = int64_t{1} << 40;
constexpr int64_t kSpaceMargin = int64_t{64} << 20;  // left free on the target's disk

bool EndsWith(const std::string& s, const std::string& tail) {
  return s.size() > tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A manifest just fetched (the Remote service's own limit bounds it: one 4 MiB chunk per call).
std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool PlainName(const std::string& name) {
  return !name.empty() && name.size() <= NAME_MAX && name[0] != '.' && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

Status WriteAllAt(int fd, const char* data, size_t n, off_t at) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, data, n, at);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return PosixError("write", errno);
    data += w;
    n -= static_cast<size_t>(w);
    at += w;
  }
  return OkStatus();
}

// Copies the regular file `from` to a new file `to` owned by `creds`, synced.
Status CopyFileSynced(const std::string& from, const std::string& to, const rpc::Credentials& creds) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in.valid()) return PosixError("opening " + from, errno);
  ::unlink(to.c_str());
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.valid()) return PosixError("creating " + to, errno);
  if (::fchown(out.get(), static_cast<uid_t>(creds.uid), static_cast<gid_t>(creds.gid)) < 0)
    return PosixError("chown " + to, errno);
  std::string buf(1 << 20, '\0');
  for (off_t at = 0;;) {
    const ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("reading " + from, errno);
    if (n == 0) break;
    KITE_RETURN_IF_ERROR(WriteAllAt(out.get(), buf.data(), static_cast<size_t>(n), at).With(to));
    at += n;
  }
  if (::fsync(out.get()) < 0) return PosixError("syncing " + to, errno);
  return OkStatus();
}

}  // namespace

StatusOr<std::vector<rpc::CheckpointFile>> CheckpointTransfer::List(const std::string& manifest_path) const {
  KITE_ASSIGN_OR_RETURN(auto at, JobCheckpoint::Locate(config_, manifest_path));
  if (!EndsWith(at.name, ".job")) return InvalidArgument("checkpoint " + manifest_path + " is not a manifest (*.job)");
  KITE_ASSIGN_OR_RETURN(CheckpointFiles files, ListCheckpointFiles(manifest_path));
  std::vector<rpc::CheckpointFile> out;
  for (const std::string& path : files.paths) {
    struct stat st;
    if (::lstat(path.c_str(), &st) < 0) {
      if (errno == ENOENT) return NotFound("checkpoint " + manifest_path + " lacks " + path);
      return PosixError(path, errno);
    }
    if (!S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
    rpc::CheckpointFile f;
    f.name = path.substr(path.rfind('/') + 1);
    f.size = st.st_size;
    out.push_back(std::move(f));
  }
  return out;
}

StatusOr<std::string> CheckpointTransfer::Read(const std::string& path, int64_t offset, int32_t max_bytes) const {
  KITE_ASSIGN_OR_RETURN(auto at, JobCheckpoint::Locate(config_, path));
  (void)at;
  if (offset < 0 || max_bytes < 0) return InvalidArgument("negative offset or length");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) {
    if (errno == ENOENT) return NotFound("no checkpoint file " + path + " on " + config_.host_name);
    return PosixError("opening " + path, errno);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return PosixError(path, errno);
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
  std::string data;
  if (offset >= st.st_size) return data;
  data.resize(static_cast<size_t>(std::min<int64_t>({max_bytes, kMaxChunkBytes, st.st_size - offset})));
  size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::pread(fd.get(), data.data() + got, data.size() - got, offset + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("reading " + path, errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  return data;
}

Status CheckpointTransfer::Drop(const std::string& manifest_path) const {
  KITE_ASSIGN_OR_RETURN(auto at, JobCheckpoint::Locate(config_, manifest_path));
  if (!EndsWith(at.name, ".job")) return InvalidArgument("checkpoint " + manifest_path + " is not a manifest (*.job)");
  RemoveCheckpoint(manifest_path);
  return OkStatus();
}

Status CheckpointTransfer::Fetch(const rpc::RestoreSpec& spec) const { return FetchFiles(spec, false, nullptr); }

StatusOr<std::unique_ptr<PageStream>> CheckpointTransfer::FetchStreaming(const rpc::RestoreSpec& spec) const {
  std::unique_ptr<PageStream> stream;
  KITE_RETURN_IF_ERROR(FetchFiles(spec, true, &stream));
  return stream;
}

namespace {

// Where the page data of an image from another host is: the header read off its first
// bytes, checked as far as a copy needs (kite-restore validates the whole image anyway).
StatusOr<std::pair<int64_t, int64_t>> PageDataRange(const std::string& head, int64_t file_size) {
  kite_img_header h;
  if (head.size() < sizeof h) return InvalidArgument("shorter than an image header");
  std::memcpy(&h, head.data(), sizeof h);
  const uint32_t crc = h.header_crc;
  h.header_crc = 0;
  if (std::memcmp(h.magic, KITE_IMG_MAGIC, sizeof h.magic) != 0 || h.version != KITE_IMG_VERSION ||
      h.header_size != sizeof h || h.section_entry_size != sizeof(kite_img_section) ||
      kite_crc32c(0, &h, sizeof h) != crc)
    return InvalidArgument("not a kite image of version " + std::to_string(KITE_IMG_VERSION) + " (bad header)");
  if (h.file_size != static_cast<uint64_t>(file_size))
    return InvalidArgument("its header says " + std::to_string(h.file_size) + " bytes, its listing " +
                           std::to_string(file_size));
  for (const kite_img_section& sec : h.sections) {
    if (sec.type != KITE_SEC_PAGE_DATA) continue;
    if (sec.offset < KITE_IMG_HEADER_RESERVED || sec.offset % KITE_IMG_PAGE_SIZE != 0 || sec.offset > h.file_size ||
        sec.size > h.file_size - sec.offset)
      return InvalidArgument("its page data section lies outside the file");
    return std::make_pair(static_cast<int64_t>(sec.offset), static_cast<int64_t>(sec.size));
  }
  return InvalidArgument("it has no page data section");
}

}  // namespace

Status CheckpointTransfer::FetchFiles(const rpc::RestoreSpec& spec, bool stream_pages,
                                      std::unique_ptr<PageStream>* stream) const {
  if (!Fetches(spec)) return OkStatus();
  const auto t0 = std::chrono::steady_clock::now();
  const std::string from = spec.image_host;
  auto context = [&](const Status& s) { return s.With("fetching checkpoint " + spec.image_path + " from " + from); };
  auto at = JobCheckpoint::Locate(config_, spec.image_path);
  if (!at.ok()) return context(at.status());
  if (!EndsWith(at->name, ".job")) return InvalidArgument("checkpoint " + spec.image_path + " is not a manifest (*.job)");
  if (spec.creds.uid < 0 || spec.creds.gid < 0) return InvalidArgument("negative uid or gid");
  if (at->uid != static_cast<uid_t>(spec.creds.uid))
    return PermissionDenied("checkpoint " + spec.image_path + " is in the directory of uid " + std::to_string(at->uid) +
                            ", not of the job's uid " + std::to_string(spec.creds.uid));
  auto address = config_.AddressOf(from);
  if (!address.ok()) return context(address.status());
  auto conn = Connect<rpc::RemoteClient>(*tls_, *address, config_.remote_port, kConnectTimeoutMs, kCallTimeoutMs);
  if (!conn.ok()) return context(conn.status());
  rpc::RemoteClient& c = *(*conn)->client;

  std::vector<rpc::CheckpointFile> files;
  if (Status s = Call("checkpoint_files", [&] { c.checkpoint_files(files, spec.image_path); }); !s.ok())
    return context(s);
  // What the other host says is checked like any input: names in this one directory, sane sizes.
  if (files.empty() || files.front().name != at->name)
    return context(InvalidArgument("its file list does not start with the manifest"));
  if (files.size() > static_cast<size_t>(kMaxFiles))
    return context(InvalidArgument("more than " + std::to_string(kMaxFiles) + " files"));
  int64_t total = 0;
  for (const rpc::CheckpointFile& f : files) {
    if (!PlainName(f.name)) return context(InvalidArgument("file name '" + f.name + "' is not a plain name"));
    if (f.size < 0 || f.size > kMaxFileBytes) return context(InvalidArgument(f.name + ": absurd size"));
    total += f.size;
  }
  auto dir = JobCheckpoint::PrepareDir(config_, at->host, at->uid, static_cast<gid_t>(spec.creds.gid));
  if (!dir.ok()) return context(dir.status());
  struct statvfs vfs;
  if (::statvfs(dir->c_str(), &vfs) == 0 &&
      static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize) < total + kSpaceMargin)
    return context(ResourceExhausted(std::to_string(total >> 20) + " MiB do not fit in " + *dir + " on " +
                                     config_.host_name));

  std::vector<std::string> made;
  auto fail = [&](const Status& s) {
    for (const std::string& p : made) ::unlink(p.c_str());
    return context(s);
  };
  std::string chunk;
  // Copies [from_off, to_off) of the remote file into fd at the same place.
  auto copy = [&](int fd, const std::string& remote, const std::string& name, int64_t from_off,
                  int64_t to_off) -> Status {
    for (int64_t off = from_off; off < to_off;) {
      const int32_t want = static_cast<int32_t>(std::min<int64_t>(kMaxChunkBytes, to_off - off));
      if (Status s = Call("read_checkpoint_file", [&] { c.read_checkpoint_file(chunk, remote, off, want); }); !s.ok())
        return s.With(name);
      if (chunk.empty() || static_cast<int64_t>(chunk.size()) > want)
        return Aborted(name + " changed size while it was copied");
      KITE_RETURN_IF_ERROR(WriteAllAt(fd, chunk.data(), chunk.size(), off));
      off += static_cast<int64_t>(chunk.size());
    }
    return OkStatus();
  };
  std::set<std::string> images;  // names of the images, known once the manifest is here
  std::vector<PageStream::Piece> pieces;
  int64_t streamed = 0;
  for (const rpc::CheckpointFile& f : files) {
    const std::string path = *dir + "/" + f.name;
    // Never over an existing file: a name taken here is another checkpoint's.
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) return fail(PosixError("creating " + path, errno));
    made.push_back(path);
    if (::fchown(fd.get(), static_cast<uid_t>(spec.creds.uid), static_cast<gid_t>(spec.creds.gid)) < 0)
      return fail(PosixError("chown " + path, errno));
    const std::string remote = at->dir + "/" + f.name;
    if (!stream_pages || images.count(f.name) == 0) {
      if (Status s = copy(fd.get(), remote, f.name, 0, f.size); !s.ok()) return fail(s.With(path));
      if (stream_pages && &f == &files.front()) {
        // The manifest: which of the other files are images.
        auto m = JobManifest::Parse(ReadSmallFile(path));
        if (!m.ok()) return fail(m.status().With(f.name));
        for (const JobManifest::Proc& p : m->procs) {
          if (!p.exited) images.insert(p.image);
        }
      }
      continue;
    }
    // An image: its header and metadata now, its pages later, through the FIFO.
    std::string head;
    if (Status s = Call("read_checkpoint_file",
                        [&] { c.read_checkpoint_file(head, remote, 0, KITE_IMG_HEADER_RESERVED); });
        !s.ok())
      return fail(s.With(f.name));
    auto range = PageDataRange(head, f.size);
    if (!range.ok()) return fail(range.status().With(f.name));
    const auto [pages_at, pages_len] = *range;
    if (::ftruncate(fd.get(), f.size) < 0) return fail(PosixError("sizing " + path, errno));
    // The header page is here already (PAGE_DATA starts at or after its end).
    if (Status s = WriteAllAt(fd.get(), head.data(), head.size(), 0); !s.ok()) return fail(s.With(path));
    if (Status s = copy(fd.get(), remote, f.name, static_cast<int64_t>(head.size()), pages_at); !s.ok())
      return fail(s.With(path));
    if (Status s = copy(fd.get(), remote, f.name, pages_at + pages_len, f.size); !s.ok()) return fail(s.With(path));
    const std::string fifo = path + ".pages";
    if (::mkfifo(fifo.c_str(), 0600) < 0) return fail(PosixError("making " + fifo, errno));
    made.push_back(fifo);
    if (::chown(fifo.c_str(), static_cast<uid_t>(spec.creds.uid), static_cast<gid_t>(spec.creds.gid)) < 0)
      return fail(PosixError("chown " + fifo, errno));
    pieces.push_back({remote, fifo, pages_at, pages_len});
    streamed += pages_len;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  if (stream_pages) {
    KLOG_INFO("fetched checkpoint {} from {}: {} file(s), {} bytes in {} ms; {} bytes of pages to stream", spec.image_path,
              from, files.size(), total - streamed, ms, streamed);
    *stream = std::make_unique<PageStream>(std::move(*conn), from, std::move(pieces));
  } else {
    KLOG_INFO("fetched checkpoint {} from {}: {} file(s), {} bytes in {} ms", spec.image_path, from, files.size(), total,
              ms);
  }
  return OkStatus();
}

// --- PageStream ---------------------------------------------------------------------------

PageStream::PageStream(std::unique_ptr<Conn<rpc::RemoteClient>> conn, std::string from, std::vector<Piece> pieces)
    : conn_(std::move(conn)), from_(std::move(from)), pieces_(std::move(pieces)) {}

PageStream::~PageStream() { (void)Finish(); }

void PageStream::Start() {
  thread_ = std::thread([this] { result_ = Run(); });
}

Status PageStream::Finish() {
  if (finished_) return result_;
  finished_ = true;
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  for (const Piece& p : pieces_) ::unlink(p.fifo.c_str());
  return result_;
}

Status PageStream::Run() {
  const auto t0 = std::chrono::steady_clock::now();
  int64_t bytes = 0;
  for (const Piece& p : pieces_) {
    if (Status s = Pump(p); !s.ok()) return s.With("streaming the pages of " + p.remote + " from " + from_);
    bytes += p.size;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  KLOG_INFO("streamed {} bytes of pages of {} image(s) from {} in {} ms", bytes, pieces_.size(), from_, ms);
  return OkStatus();
}

Status PageStream::Pump(const Piece& piece) {
  // The reader (kite-restore, started by kite-restore-tree) opens the FIFO before it says it
  // is ready; until then an open for writing fails with ENXIO. Never blocking: a restore that
  // ends without reading (Finish) stops us.
  UniqueFd fd;
  for (;;) {
    fd = UniqueFd(::open(piece.fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    if (fd.valid()) break;
    if (errno != ENXIO && errno != EINTR) return PosixError("opening " + piece.fifo, errno);
    if (stop_) return Aborted("the restore ended before it read its pages");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // A deep pipe lets the next chunk come over the network while kite-restore drains this one
  // (remoted may exceed pipe-max-size; a smaller pipe only costs overlap).
  if (::fcntl(fd.get(), F_SETPIPE_SZ, CheckpointTransfer::kMaxChunkBytes * 2) < 0) (void)::fcntl(fd.get(), F_SETPIPE_SZ, 1 << 20);
  rpc::RemoteClient& c = *conn_->client;
  std::string chunk;
  const int64_t end = piece.offset + piece.size;
  for (int64_t off = piece.offset; off < end;) {
    const int32_t want = static_cast<int32_t>(std::min<int64_t>(CheckpointTransfer::kMaxChunkBytes, end - off));
    if (Status s = Call("read_checkpoint_file", [&] { c.read_checkpoint_file(chunk, piece.remote, off, want); });
        !s.ok())
      return s;
    if (chunk.empty() || static_cast<int64_t>(chunk.size()) > want) return Aborted("the image changed size while it was copied");
    for (size_t done = 0; done < chunk.size();) {
      const ssize_t w = ::write(fd.get(), chunk.data() + done, chunk.size() - done);
      if (w > 0) {
        done += static_cast<size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EPIPE) return Aborted("kite-restore stopped reading its pages (see its message)");
      if (w < 0 && errno != EAGAIN) return PosixError("writing " + piece.fifo, errno);
      if (stop_) return Aborted("the restore ended before it read all its pages");
      pollfd p{fd.get(), POLLOUT, 0};
      (void)::poll(&p, 1, 100);
    }
    off += static_cast<int64_t>(chunk.size());
  }
  return OkStatus();
}

StatusOr<std::string> CheckpointTransfer::Export(const std::string& manifest_path,
                                                 const rpc::Credentials& creds) const {
  KITE_ASSIGN_OR_RETURN(auto at, JobCheckpoint::Locate(config_, manifest_path));
  std::string shared = config_.shared_paths.empty() ? std::string() : config_.shared_paths.front();
  struct stat st;
  if (shared.empty() || shared[0] != '/' || ::stat(shared.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
    return NotFound("no shared tree on " + config_.host_name + " to export checkpoint " + manifest_path + " to");
  if (shared.size() > 1 && shared.back() == '/') shared.pop_back();
  const std::string root = (shared == "/" ? "" : shared) + "/.kite-ckpt";
  KITE_RETURN_IF_ERROR(
      JobCheckpoint::EnsureTree(root, config_.host_name, static_cast<uid_t>(creds.uid), static_cast<gid_t>(creds.gid)));
  const std::string dir = root + "/" + config_.host_name + "/" + std::to_string(creds.uid);
  KITE_ASSIGN_OR_RETURN(CheckpointFiles files, ListCheckpointFiles(manifest_path));
  std::vector<std::string> made;
  // The manifest last: an exported manifest names files that are all there.
  for (size_t k = 1; k <= files.paths.size(); ++k) {
    const std::string& from = files.paths[k % files.paths.size()];
    const std::string to = dir + "/" + from.substr(from.rfind('/') + 1);
    Status s = CopyFileSynced(from, to, creds);
    made.push_back(to);
    if (!s.ok()) {
      for (const std::string& p : made) ::unlink(p.c_str());
      return s.With("exporting checkpoint " + manifest_path);
    }
  }
  RemoveCheckpoint(manifest_path);
  return dir + "/" + at.name;
}

int CheckpointTransfer::Sweep() const {
  int removed = 0;
  const std::string root = JobCheckpoint::Root(config_);
  UniqueFd top(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!top.valid()) return 0;
  // Two levels (<host>/<uid>), never following a symlink; files only.
  auto entries = [](int dirfd) {
    std::vector<std::string> names;
    int dup = ::dup(dirfd);
    if (dup < 0) return names;
    DIR* d = ::fdopendir(dup);
    if (d == nullptr) {
      ::close(dup);
      return names;
    }
    while (dirent* e = ::readdir(d)) {
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") names.push_back(e->d_name);
    }
    ::closedir(d);
    return names;
  };
  for (const std::string& host : entries(top.get())) {
    UniqueFd h(::openat(top.get(), host.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!h.valid()) continue;
    for (const std::string& uid : entries(h.get())) {
      UniqueFd u(::openat(h.get(), uid.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!u.valid()) continue;
      for (const std::string& name : entries(u.get())) {
        struct stat st;
        if (::fstatat(u.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) &&
            ::unlinkat(u.get(), name.c_str(), 0) == 0)
          ++removed;
      }
    }
  }
  return removed;
}

}  // namespace kite
