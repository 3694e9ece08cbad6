// MoveCheckpoint: see checkpoint_file.h.
#include "cli/checkpoint_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "syscall-shim/tree/job_manifest.h"

namespace kite {
namespace {

Status CopyFile(const std::string& from, const std::string& to) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0) return PosixError("opening " + from, errno);
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (out < 0) {
    Status s = PosixError("creating " + to, errno);
    ::close(in);
    return s;
  }
  Status s = OkStatus();
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      s = PosixError("reading " + from, errno);
      break;
    }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out, buf + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        s = PosixError("writing " + to, errno);
        break;
      }
      done += w;
    }
    if (!s.ok()) break;
  }
  if (s.ok() && ::fsync(out) < 0) s = PosixError("syncing " + to, errno);
  ::close(in);
  if (::close(out) < 0 && s.ok()) s = PosixError("closing " + to, errno);
  return s;
}

// rename, or (another file system) copy: the original stays until the whole move is done.
Status Place(const std::string& from, const std::string& to, bool* copied) {
  if (::rename(from.c_str(), to.c_str()) == 0) return OkStatus();
  if (errno != EXDEV) return PosixError("moving " + from + " to " + to, errno);
  *copied = true;
  Status s = CopyFile(from, to);
  if (!s.ok()) ::unlink(to.c_str());
  return s;
}

}  // namespace

StatusOr<std::string> AbsolutePath(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) return PosixError("cannot get the working directory", errno);
  return std::string(cwd) + "/" + path;
}

Status MoveCheckpoint(const std::string& manifest, const std::string& dest) {
  constexpr char kSuffix[] = ".job";
  if (dest.empty() || dest[0] != '/') return InvalidArgument("the checkpoint file must be an absolute path");
  if (dest.size() <= 4 || dest.compare(dest.size() - 4, 4, kSuffix) != 0 || dest.back() == '/')
    return InvalidArgument("the checkpoint file must be named *.job (not " + dest + ")");
  const std::string stem = dest.substr(0, dest.size() - 4);
  const std::string stem_name = stem.substr(stem.rfind('/') + 1);
  const std::string dest_dir = dest.substr(0, dest.rfind('/') + 1);
  struct stat st;
  if (::stat(dest_dir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
    return InvalidArgument("no directory " + dest_dir + " for the checkpoint");

  std::ifstream in(manifest);
  if (!in) return NotFound("the checkpoint " + manifest + " is gone");
  std::stringstream text;
  text << in.rdbuf();
  KITE_ASSIGN_OR_RETURN(JobManifest m, JobManifest::Parse(text.str()));
  const std::string src_dir = manifest.substr(0, manifest.rfind('/') + 1);

  // Images and pipe data first, under their new names; the manifest last.
  std::vector<std::pair<std::string, std::string>> moves;  // from, to
  for (JobManifest::Proc& p : m.procs) {
    if (p.exited) continue;
    std::string name = stem_name + "." + std::to_string(p.vpid) + ".img";
    for (const auto& [fd, copy] : DeletedFileCopies(src_dir + p.image))
      moves.emplace_back(copy, dest_dir + name + ".fd" + std::to_string(fd));
    moves.emplace_back(src_dir + p.image, dest_dir + name);
    p.image = name;
  }
  for (JobManifest::Pipe& p : m.pipes) {
    if (p.data_file.empty()) continue;
    std::string name = stem_name + ".pipe-" + std::to_string(p.inode);
    moves.emplace_back(src_dir + p.data_file, dest_dir + name);
    p.data_file = name;
  }
  std::vector<bool> copied(moves.size(), false);
  // Puts back the first `n` moves (a copy is simply removed): the original stays whole.
  auto undo = [&](size_t n) {
    for (size_t k = 0; k < n; ++k) {
      if (copied[k]) {
        ::unlink(moves[k].second.c_str());
      } else {
        ::rename(moves[k].second.c_str(), moves[k].first.c_str());
      }
    }
  };
  for (size_t i = 0; i < moves.size(); ++i) {
    bool c = false;
    Status s = Place(moves[i].first, moves[i].second, &c);
    copied[i] = c;
    if (!s.ok()) {
      undo(i);
      return s;
    }
  }
  const std::string tmp = dest + ".tmp";
  std::string serialized = m.Serialize();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  Status s = fd < 0 ? PosixError("creating " + tmp, errno) : OkStatus();
  if (s.ok() && (::write(fd, serialized.data(), serialized.size()) != static_cast<ssize_t>(serialized.size()) ||
                 ::fsync(fd) < 0))
    s = PosixError("writing " + tmp, errno);
  if (fd >= 0 && ::close(fd) < 0 && s.ok()) s = PosixError("closing " + tmp, errno);
  if (s.ok() && ::rename(tmp.c_str(), dest.c_str()) < 0) s = PosixError("renaming " + tmp + " to " + dest, errno);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    undo(moves.size());
    return s;
  }
  for (size_t k = 0; k < moves.size(); ++k) {
    if (copied[k]) ::unlink(moves[k].first.c_str());
  }
  ::unlink(manifest.c_str());
  return OkStatus();
}

}  // namespace kite
