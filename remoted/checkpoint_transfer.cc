// CheckpointTransfer: listing, serving, fetching, exporting and sweeping checkpoint files.
#include "remoted/checkpoint_transfer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "common/log.h"
#include "kite/rpc/Remote.h"
#include "remoted/job_checkpoint.h"
#include "remoted/unique_fd.h"
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

Status CheckpointTransfer::Fetch(const rpc::RestoreSpec& spec) const {
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
  for (const rpc::CheckpointFile& f : files) {
    const std::string path = *dir + "/" + f.name;
    // Never over an existing file: a name taken here is another checkpoint's.
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) return fail(PosixError("creating " + path, errno));
    made.push_back(path);
    if (::fchown(fd.get(), static_cast<uid_t>(spec.creds.uid), static_cast<gid_t>(spec.creds.gid)) < 0)
      return fail(PosixError("chown " + path, errno));
    const std::string remote = at->dir + "/" + f.name;
    for (int64_t off = 0; off < f.size;) {
      const int32_t want = static_cast<int32_t>(std::min<int64_t>(kMaxChunkBytes, f.size - off));
      if (Status s = Call("read_checkpoint_file", [&] { c.read_checkpoint_file(chunk, remote, off, want); }); !s.ok())
        return fail(s.With(f.name));
      if (chunk.empty() || static_cast<int64_t>(chunk.size()) > want)
        return fail(Aborted(f.name + " changed size while it was copied"));
      if (Status s = WriteAllAt(fd.get(), chunk.data(), chunk.size(), off); !s.ok()) return fail(s.With(path));
      off += static_cast<int64_t>(chunk.size());
    }
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  KLOG_INFO("fetched checkpoint {} from {}: {} file(s), {} bytes in {} ms", spec.image_path, from, files.size(), total,
            ms);
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
