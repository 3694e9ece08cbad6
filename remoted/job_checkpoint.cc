// JobCheckpoint: the image directories and restore_job's image checks.
#include "remoted/job_checkpoint.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "remoted/unique_fd.h"
#include "syscall-shim/image/image_format.h"
#include "syscall-shim/image/image_validate.h"
#include "syscall-shim/tree/job_manifest.h"

namespace kite {
namespace {

// mkdir, or check what is there: a real directory owned by `uid` (then chmod to `mode`).
Status EnsureDir(const std::string& path, uid_t uid, gid_t gid, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) {
    if (::chown(path.c_str(), uid, gid) < 0 || ::chmod(path.c_str(), mode) < 0) return PosixError(path, errno);
    return OkStatus();
  }
  if (errno != EEXIST) return PosixError("mkdir " + path, errno);
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return PosixError(path, errno);
  if (!S_ISDIR(st.st_mode) || st.st_uid != uid)
    return FailedPrecondition(path + " is not a directory owned by uid " +
                              std::to_string(uid));
  if ((st.st_mode & 07777) != mode && ::chmod(path.c_str(), mode) < 0) return PosixError(path, errno);
  return OkStatus();
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

std::string JobCheckpoint::Root(const Config& config) { return config.checkpoint_dir; }

Status JobCheckpoint::EnsureTree(const std::string& root, const std::string& host, uid_t uid, gid_t gid) {
  if (host.empty() || host.find('/') != std::string::npos || host[0] == '.')
    return InvalidArgument("host name '" + host + "' cannot name a directory");
  // The root's parents too (/var/lib/kite on a fresh host): root's, searchable.
  for (size_t slash = root.find('/', 1); slash != std::string::npos; slash = root.find('/', slash + 1)) {
    const std::string parent = root.substr(0, slash);
    if (::mkdir(parent.c_str(), 0755) < 0 && errno != EEXIST) return PosixError("mkdir " + parent, errno);
  }
  KITE_RETURN_IF_ERROR(EnsureDir(root, 0, 0, 0711));
  KITE_RETURN_IF_ERROR(EnsureDir(root + "/" + host, 0, 0, 0711));
  return EnsureDir(root + "/" + host + "/" + std::to_string(uid), uid, gid, 0700);
}

StatusOr<std::string> JobCheckpoint::PrepareDir(const Config& config, uid_t uid, gid_t gid) {
  return PrepareDir(config, config.host_name, uid, gid);
}

StatusOr<std::string> JobCheckpoint::PrepareDir(const Config& config, const std::string& host, uid_t uid,
                                                gid_t gid) {
  KITE_RETURN_IF_ERROR(EnsureTree(Root(config), host, uid, gid));
  return Root(config) + "/" + host + "/" + std::to_string(uid);
}

StatusOr<JobCheckpoint::Location> JobCheckpoint::Locate(const Config& config, const std::string& path) {
  const std::string root = Root(config) + "/";
  if (path.size() > PATH_MAX || path.find('\0') != std::string::npos || path.compare(0, root.size(), root) != 0)
    return InvalidArgument("checkpoint " + path + " is not in the checkpoint directory " + Root(config));
  const std::string rest = path.substr(root.size());
  const size_t a = rest.find('/');
  const size_t b = a == std::string::npos ? a : rest.find('/', a + 1);
  if (b == std::string::npos || rest.find('/', b + 1) != std::string::npos)
    return InvalidArgument("checkpoint " + path + " is not " + root + "<host>/<uid>/<file>");
  Location l;
  l.host = rest.substr(0, a);
  const std::string uid = rest.substr(a + 1, b - a - 1);
  l.name = rest.substr(b + 1);
  if (l.host.empty() || l.host[0] == '.' || l.name.empty() || l.name[0] == '.' || uid.empty() || uid.size() > 10 ||
      uid.find_first_not_of("0123456789") != std::string::npos || (uid.size() > 1 && uid[0] == '0'))
    return InvalidArgument("checkpoint " + path + " is not " + root + "<host>/<uid>/<file>");
  const unsigned long long n = std::stoull(uid);
  if (n > 0xfffffffeULL) return InvalidArgument("checkpoint " + path + ": uid " + uid + " is out of range");
  l.uid = static_cast<uid_t>(n);
  l.dir = root + l.host + "/" + uid;
  return l;
}

StatusOr<std::string> JobCheckpoint::PrepareTmpDir(const Config& config, const std::string& home, uid_t uid,
                                                   gid_t gid) {
  if (config.shared_paths.empty() || config.shared_paths.front().empty() || config.shared_paths.front()[0] != '/' ||
      !IsDir(config.shared_paths.front()))
    return NotFound("no shared path on " + config.host_name);
  if (home.empty() || home.find('/') != std::string::npos || home[0] == '.')
    return InvalidArgument("home name '" + home + "' cannot name a directory");
  std::string shared = config.shared_paths.front();
  if (shared.size() > 1 && shared.back() == '/') shared.pop_back();
  const std::string root = (shared == "/" ? "" : shared) + "/.kite-tmp";
  KITE_RETURN_IF_ERROR(EnsureDir(root, 0, 0, 0711));
  KITE_RETURN_IF_ERROR(EnsureDir(root + "/" + home, 0, 0, 0711));
  std::string dir = root + "/" + home + "/" + std::to_string(uid);
  KITE_RETURN_IF_ERROR(EnsureDir(dir, uid, gid, 0700));
  return dir;
}

namespace {

// The path and ownership rules every checkpoint file obeys; `fd` gets it opened.
Status CheckOwnedFile(const Config& config, const std::string& path, const std::string& suffix,
                      const rpc::Credentials& creds, UniqueFd* fd, struct stat* st) {
  if (creds.uid < 0 || creds.gid < 0) return InvalidArgument("negative uid or gid");
  if (creds.uid == 0 && !config.allow_root) return PermissionDenied("jobs may not run as root on " + config.host_name);
  if (path.empty() || path[0] != '/' || path.size() > PATH_MAX || path.find('\0') != std::string::npos)
    return InvalidArgument("checkpoint path must be an absolute path");
  if (path.find("/../") != std::string::npos || path.find("/./") != std::string::npos ||
      path.find("//") != std::string::npos)
    return InvalidArgument("checkpoint path " + path + " is not canonical ('.', '..' or '//')");
  // In the hosts' checkpoint directories, or anywhere on the shared tree (kite checkpoint
  // --to): ownership and the single link below make the file the user's own either way.
  const std::string root = JobCheckpoint::Root(config);
  bool under = path.compare(0, root.size() + 1, root + "/") == 0;
  for (const std::string& shared : config.shared_paths) {
    if (shared.empty() || shared[0] != '/') continue;
    const std::string base = shared.back() == '/' ? shared : shared + "/";
    under = under || path.compare(0, base.size(), base) == 0;
  }
  if (!under)
    return InvalidArgument("checkpoint " + path + " is not under the checkpoint directory " + root +
                           " nor on the shared file system");
  if (!suffix.empty() && (path.size() <= suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0))
    return InvalidArgument("checkpoint " + path + " is not named *" + suffix);
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) == nullptr) {
    if (errno == ENOENT) return NotFound("no checkpoint " + path);
    return PosixError("checkpoint " + path, errno);
  }
  if (path != real) return InvalidArgument("checkpoint path " + path + " is not canonical (symlink, '.' or '..')");
  *fd = UniqueFd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd->valid()) return PosixError("opening " + path, errno);
  if (::fstat(fd->get(), st) < 0) return PosixError(path, errno);
  if (!S_ISREG(st->st_mode)) return InvalidArgument(path + " is not a regular file");
  if (st->st_nlink != 1) return PermissionDenied(path + " has other links");
  if (st->st_uid != static_cast<uid_t>(creds.uid))
    return PermissionDenied(path + " belongs to uid " + std::to_string(st->st_uid) + ", not " +
                            std::to_string(creds.uid));
  return OkStatus();
}

}  // namespace

StatusOr<JobManifest> JobCheckpoint::ValidateCheckpoint(const Config& config, const std::string& path,
                                                        const rpc::Credentials& creds) {
  UniqueFd fd;
  struct stat st;
  KITE_RETURN_IF_ERROR(CheckOwnedFile(config, path, ".job", creds, &fd, &st));
  if (st.st_size > (1 << 20)) return InvalidArgument("job manifest " + path + " is larger than 1 MiB");
  std::string text(static_cast<size_t>(st.st_size), '\0');
  if (::pread(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    return PosixError("reading " + path, errno);
  auto m = JobManifest::Parse(text);
  if (!m.ok()) return InvalidArgument(path + ": " + m.status().message());
  const std::string dir = path.substr(0, path.rfind('/'));
  for (const JobManifest::Proc& p : m->procs) {
    if (!p.exited) KITE_RETURN_IF_ERROR(ValidateImage(config, dir + "/" + p.image, creds));
  }
  for (const JobManifest::Pipe& p : m->pipes) {
    if (p.data_file.empty()) continue;
    UniqueFd data;
    KITE_RETURN_IF_ERROR(CheckOwnedFile(config, dir + "/" + p.data_file, "", creds, &data, &st));
    if (st.st_size > (16 << 20)) return InvalidArgument(dir + "/" + p.data_file + " is larger than 16 MiB");
  }
  if (!m->ckpt_dir.empty()) {
    // remoted will look for the restored job's next images there (and rename them): only a
    // host's checkpoint directory of this very user, <root>/<host>/<uid>.
    const std::string root = Root(config), uid = "/" + std::to_string(creds.uid);
    const std::string& d = m->ckpt_dir;
    const bool ok = d.compare(0, root.size() + 1, root + "/") == 0 && d.size() > root.size() + 1 + uid.size() &&
                    d.compare(d.size() - uid.size(), uid.size(), uid) == 0 &&
                    d.find('/', root.size() + 1) == d.size() - uid.size();
    if (!ok) return InvalidArgument(path + ": ckpt-dir " + d + " is not a checkpoint directory of uid " + uid.substr(1));
  }
  return std::move(m).value();
}

Status JobCheckpoint::ValidateImage(const Config& config, const std::string& path, const rpc::Credentials& creds) {
  UniqueFd fd;
  struct stat st;
  KITE_RETURN_IF_ERROR(CheckOwnedFile(config, path, ".img", creds, &fd, &st));
  if (st.st_size < static_cast<off_t>(sizeof(kite_img_header)))
    return InvalidArgument("image " + path + " is truncated");

  const size_t size = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (map == MAP_FAILED) return PosixError("mapping image " + path, errno);
  kite_img_view view;
  kite_img_error err;
  const int rc = kite_img_validate_buffer(map, size, &view, &err);
  Status result = OkStatus();
  if (rc != 0) {
    result = InvalidArgument("image " + path + " is invalid: " + err.msg);
  } else {
    const kite_img_process* p = view.process;
    for (int i = 0; i < 3 && result.ok(); ++i) {
      if (p->uid[i] != static_cast<uint32_t>(creds.uid) || p->gid[i] != static_cast<uint32_t>(creds.gid))
        result = PermissionDenied("image " + path + " is of uid " + std::to_string(p->uid[0]) + " gid " +
                                  std::to_string(p->gid[0]) + ", not the requested uid " + std::to_string(creds.uid) +
                                  " gid " + std::to_string(creds.gid));
    }
  }
  ::munmap(map, size);
  return result;
}

}  // namespace kite
