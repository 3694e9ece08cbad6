// JobCgroups: plain file I/O on cgroup v1 control files. Errors are logged, never fatal:
// a job that cannot be put in a group still runs, it is only less contained.
#include "remoted/job_cgroups.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/log.h"

namespace kite {
namespace {

// Every controller a guest job is placed in. cpuacct only serves GuestCpuNs().
constexpr const char* kControllers[] = {"cpu", "cpuacct", "memory", "freezer", "pids"};

// Writes `value` to a control file; returns 0 or the errno.
int WriteFile(const std::string& path, const std::string& value) {
  FILE* f = std::fopen(path.c_str(), "we");
  if (!f) return errno;
  // Unbuffered, so the kernel's answer to this very write(2) is what fclose reports.
  std::setvbuf(f, nullptr, _IONBF, 0);
  int err = 0;
  if (std::fwrite(value.data(), 1, value.size(), f) != value.size()) err = errno ? errno : EIO;
  if (std::fclose(f) != 0 && err == 0) err = errno;
  return err;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// remoted's own group in `controller`'s hierarchy, from /proc/self/cgroup ("/" if unknown).
std::string OwnGroup(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    // "<id>:<controller,controller>:<path>"
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::stringstream names(line.substr(a + 1, b - a - 1));
    std::string name;
    while (std::getline(names, name, ',')) {
      if (name == controller) return line.substr(b + 1);
    }
  }
  return "/";
}

int MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return 0;
  return errno;
}

std::string JoinPath(std::string a, const std::string& b) {
  while (!a.empty() && a.back() == '/') a.pop_back();
  return b.empty() || b == "/" ? a : a + (b.front() == '/' ? "" : "/") + b;
}

}  // namespace

JobCgroups::JobCgroups(Options options) : options_(std::move(options)) {
  std::set<std::string> mounts_seen;
  for (const char* name : kControllers) {
    std::string mount = options_.mount_root + "/" + name;
    char real[PATH_MAX];
    if (!::realpath(mount.c_str(), real) || ::access((mount + "/cgroup.procs").c_str(), F_OK) != 0) {
      WarnOnce(name, "not mounted at " + mount);
      continue;
    }
    if (!mounts_seen.insert(real).second) continue;  // co-mounted with one already in use
    Controller c;
    c.name = name;
    c.parent_dir = JoinPath(JoinPath(mount, OwnGroup(name)), options_.parent);
    c.host_dir = c.parent_dir + "/" + options_.host;
    if (!EnsureHostDir(c)) continue;
    ApplyLimits(c, c.host_dir);
    usable_.push_back(std::move(c));
  }
}

JobCgroups::~JobCgroups() {
  for (const Controller& c : usable_) {
    if (::rmdir(c.host_dir.c_str()) != 0 && errno != ENOENT)
      KLOG_WARN("cannot remove cgroup {}: {}", c.host_dir, std::strerror(errno));
    ::rmdir(c.parent_dir.c_str());  // fails while another host's group lives there: fine
  }
}

void JobCgroups::WarnOnce(const std::string& controller, const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  if (warned_.insert(controller).second)
    KLOG_WARN("cgroup controller {}: {}; guest jobs run without it", controller, what);
}

bool JobCgroups::EnsureHostDir(const Controller& c) {
  for (const std::string& dir : {c.parent_dir, c.host_dir}) {
    if (int err = MakeDir(dir)) {
      WarnOnce(c.name, "cannot create " + dir + ": " + std::strerror(err));
      return false;
    }
  }
  return true;
}

void JobCgroups::ApplyLimits(const Controller& c, const std::string& dir) {
  auto set = [&](const std::string& file, const std::string& value) {
    if (int err = WriteFile(dir + "/" + file, value))
      KLOG_WARN("cannot set {}/{} to {}: {}", dir, file, value, std::strerror(err));
  };
  // The guests' CPU weight is the host-level group's alone: jobs inside it weigh the same, so a
  // per-job cpu.shares would change nothing, and writing it costs 4-18 ms on this kernel (the
  // scheduler updates every CPU's share), which every job start would wait for.
  if (c.name == "cpu" && dir == c.host_dir) set("cpu.shares", std::to_string(options_.cpu_shares));
  if (c.name == "memory" && options_.memory_limit_mb > 0)
    set("memory.limit_in_bytes", std::to_string(options_.memory_limit_mb << 20));
}

std::string JobCgroups::JobDir(const std::string& controller, int64_t id) const {
  for (const Controller& c : usable_) {
    if (c.name == controller) return c.host_dir + "/job-" + std::to_string(id);
  }
  return "";
}

std::vector<std::string> JobCgroups::controllers() const {
  std::vector<std::string> names;
  for (const Controller& c : usable_) names.push_back(c.name);
  return names;
}

void JobCgroups::CreateJob(int64_t id) {
  for (const Controller& c : usable_) {
    std::string dir = JobDir(c.name, id);
    if (int err = MakeDir(dir)) {
      KLOG_WARN("cannot create cgroup {}: {}", dir, std::strerror(err));
      continue;
    }
    ApplyLimits(c, dir);
  }
}

void JobCgroups::AddProcess(int64_t id, pid_t pid) {
  for (const Controller& c : usable_) {
    std::string file = JobDir(c.name, id) + "/cgroup.procs";
    if (int err = WriteFile(file, std::to_string(pid)))
      KLOG_WARN("cannot move pid {} into {}: {}", pid, file, std::strerror(err));
  }
}

std::vector<pid_t> JobCgroups::Processes(int64_t id) const {
  std::set<pid_t> pids;
  for (const Controller& c : usable_) {
    std::ifstream in(JobDir(c.name, id) + "/cgroup.procs");
    pid_t pid;
    while (in >> pid) pids.insert(pid);
  }
  return {pids.begin(), pids.end()};
}

bool JobCgroups::KillRound(int64_t id, const std::string& freezer_dir) {
  if (Processes(id).empty()) return true;
  // Frozen tasks cannot fork, so one pass over cgroup.procs sees every member. A task stuck
  // in uninterruptible sleep can keep the group FREEZING: then kill what we see and retry.
  bool frozen = !freezer_dir.empty() && WriteFile(freezer_dir + "/freezer.state", "FROZEN") == 0;
  if (frozen) {
    for (int i = 0; i < 100; ++i) {
      auto state = ReadFile(freezer_dir + "/freezer.state");
      if (!state || state->rfind("FROZEN", 0) == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  for (pid_t pid : Processes(id)) ::kill(pid, SIGKILL);
  // SIGKILL is acted on when the task runs again: thaw so it can die.
  if (frozen) WriteFile(freezer_dir + "/freezer.state", "THAWED");
  return false;
}

bool JobCgroups::KillAll(int64_t id, std::chrono::milliseconds timeout) {
  if (usable_.empty()) return true;
  std::string freezer = JobDir("freezer", id);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  while (!KillRound(id, freezer)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
  return true;
}

void JobCgroups::RemoveJob(int64_t id) {
  for (const Controller& c : usable_) {
    std::string dir = JobDir(c.name, id);
    // A task that was just killed may still be on its way out of the group (EBUSY).
    int err = 0;
    for (int i = 0; i < 100; ++i) {
      if (::rmdir(dir.c_str()) == 0) { err = 0; break; }
      err = errno;
      if (err != EBUSY) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (err != 0 && err != ENOENT) KLOG_WARN("cannot remove cgroup {}: {}", dir, std::strerror(err));
  }
}

int JobCgroups::RemoveStale() {
  std::set<int64_t> ids;
  for (const Controller& c : usable_) {
    DIR* d = ::opendir(c.host_dir.c_str());
    if (!d) continue;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strncmp(e->d_name, "job-", 4) != 0) continue;
      char* end = nullptr;
      long long id = std::strtoll(e->d_name + 4, &end, 10);
      if (end && *end == '\0' && end != e->d_name + 4) ids.insert(id);
    }
    ::closedir(d);
  }
  for (int64_t id : ids) {
    if (!KillAll(id, std::chrono::seconds(2)))
      KLOG_WARN("stale job group job-{}: processes survive SIGKILL", id);
    RemoveJob(id);
  }
  return static_cast<int>(ids.size());
}

std::optional<int64_t> JobCgroups::GuestCpuNs() const {
  for (const Controller& c : usable_) {
    if (auto text = ReadFile(c.parent_dir + "/cpuacct.usage")) {
      char* end = nullptr;
      long long ns = std::strtoll(text->c_str(), &end, 10);
      if (end != text->c_str()) return ns;
    }
  }
  return std::nullopt;
}

}  // namespace kite
