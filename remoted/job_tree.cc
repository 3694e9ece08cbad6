// JobTree: a job's processes from /proc (see job_tree.h).
#include "remoted/job_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

#include "remoted/unique_fd.h"

namespace kite {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string TreeProcess::Describe() const { return "pid " + std::to_string(pid) + " (" + comm + ")"; }

StatusOr<TreeProcess> JobTree::Read(pid_t pid) {
  const std::string stat = Slurp("/proc/" + std::to_string(pid) + "/stat");
  const size_t open = stat.find('('), close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size())
    return NotFound("process " + std::to_string(pid) + " is gone");
  TreeProcess p;
  p.pid = pid;
  p.comm = stat.substr(open + 1, close - open - 1);
  std::istringstream f(stat.substr(close + 2));
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  for (std::string w; f >> w;) fields.push_back(w);
  if (fields.size() < 50) return NotFound("process " + std::to_string(pid) + " is gone");
  p.state = fields[0][0];
  p.ppid = std::atoi(fields[1].c_str());
  p.pgid = std::atoi(fields[2].c_str());
  p.sid = std::atoi(fields[3].c_str());
  p.exit_code = std::atoi(fields[49].c_str());  // field 52
  return p;
}

StatusOr<std::vector<TreeProcess>> JobTree::List(pid_t root) {
  std::vector<TreeProcess> out;
  KITE_ASSIGN_OR_RETURN(TreeProcess r, Read(root));
  out.push_back(r);
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].zombie()) continue;
    const std::string task_dir = "/proc/" + std::to_string(out[i].pid) + "/task";
    DIR* d = ::opendir(task_dir.c_str());
    if (d == nullptr) continue;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::istringstream kids(Slurp(task_dir + "/" + e->d_name + "/children"));
      for (pid_t kid; kids >> kid;) {
        auto p = Read(kid);
        if (p.ok() && p->ppid == out[i].pid) out.push_back(*p);
      }
    }
    ::closedir(d);
  }
  return out;
}

bool JobTree::Catches(pid_t pid, int signo) {
  std::istringstream status(Slurp("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("SigCgt:", 0) != 0) continue;
    const uint64_t mask = std::strtoull(line.c_str() + 7, nullptr, 16);
    return (mask >> (signo - 1)) & 1;
  }
  return false;
}

bool JobTree::PreloadListHas(std::string_view list, std::string_view lib) {
  if (lib.empty()) return false;
  for (size_t i = 0; i <= list.size();) {
    size_t j = list.find_first_of(": ", i);
    if (j == std::string_view::npos) j = list.size();
    if (list.substr(i, j - i) == lib) return true;
    i = j + 1;
  }
  return false;
}

bool JobTree::Preloads(pid_t pid, const std::string& lib) {
  const std::string environ = Slurp("/proc/" + std::to_string(pid) + "/environ");
  for (size_t at = 0; at < environ.size();) {
    size_t end = environ.find('\0', at);
    if (end == std::string::npos) end = environ.size();
    std::string_view var(environ.data() + at, end - at);
    if (var.rfind("LD_PRELOAD=", 0) == 0 && PreloadListHas(var.substr(11), lib)) return true;
    at = end + 1;
  }
  return false;
}

std::map<int, uint64_t> JobTree::PipeFds(pid_t pid) {
  std::map<int, uint64_t> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[256];
    ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    unsigned long long ino;
    if (std::sscanf(target, "pipe:[%llu]", &ino) == 1) out[std::atoi(e->d_name)] = ino;
  }
  ::closedir(d);
  return out;
}

std::vector<JobTree::SharedFile> JobTree::SharedFiles(const std::vector<pid_t>& pids) {
  // Descriptors by the file they open; only a file's own descriptors can share a description.
  std::map<std::pair<dev_t, ino_t>, std::vector<std::pair<pid_t, int>>> by_file;
  for (pid_t pid : pids) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) continue;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      struct stat st;
      if (::stat((dir + "/" + e->d_name).c_str(), &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink == 0) continue;
      by_file[{st.st_dev, st.st_ino}].push_back({pid, std::atoi(e->d_name)});
    }
    ::closedir(d);
  }
  std::vector<SharedFile> out;
  for (auto& [file, fds] : by_file) {
    if (fds.size() < 2) continue;
    std::vector<SharedFile> descriptions;  // of this file; holders[0] stands for each
    for (const auto& [pid, fd] : fds) {
      SharedFile* same = nullptr;
      for (SharedFile& s : descriptions) {
        const auto& [rpid, rfd] = s.holders.front();
        if (::syscall(SYS_kcmp, rpid, pid, KCMP_FILE, rfd, fd) == 0) {
          same = &s;
          break;
        }
      }
      if (same == nullptr) same = &descriptions.emplace_back();
      same->holders.push_back({pid, fd});
    }
    for (SharedFile& s : descriptions) {
      if (s.holders.size() < 2) continue;
      const auto& [pid, fd] = s.holders.front();
      std::istringstream info(Slurp("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd)));
      for (std::string line; std::getline(info, line);) {
        if (line.rfind("pos:", 0) == 0) s.pos = std::strtoll(line.c_str() + 4, nullptr, 10);
      }
      out.push_back(std::move(s));
    }
  }
  return out;
}

StatusOr<std::string> JobTree::DrainPipe(pid_t pid, int fd) {
  const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  UniqueFd p(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!p.valid()) return PosixError("opening " + path, errno);
  std::string bytes;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(p.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) return PosixError("draining " + path, errno);
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
    if (bytes.size() > (16u << 20)) return FailedPrecondition("a pipe of the job holds more than 16 MiB");
  }
  return bytes;
}

Status JobTree::RefillPipe(pid_t pid, int fd, const std::string& bytes) {
  if (bytes.empty()) return OkStatus();
  const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  UniqueFd p(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!p.valid()) return PosixError("opening " + path, errno);
  if (int err = WriteAll(p.get(), bytes)) return PosixError("refilling " + path, err);
  return OkStatus();
}

}  // namespace kite
