// JobCgroups: plain file I/O on cgroup control files, and one clone3 probe. Errors are logged,
// never fatal: a job that cannot be put in a group still runs, it is only less contained.
#include "remoted/job_cgroups.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
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

// Every v1 controller kite uses. cpuacct only serves GuestCpuNs(); the freezer only attach
// mode's kill.
constexpr const char* kControllers[] = {"cpu", "cpuacct", "memory", "freezer", "pids"};
// This process's oom_score_adj in unified mode with a memory limit: it shares the guests'
// memory group, and a guest reaching the limit must be the one the OOM killer picks.
constexpr int kOwnOomScoreAdj = -500;

std::atomic<bool> g_disable_clone_into_cgroup{false};

// Writes `value` to a control file; returns 0 or the errno.
int WriteFile(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  // One write(2): the kernel's answer to it is the control file's answer.
  int err = 0;
  if (::write(fd, value.data(), value.size()) != static_cast<ssize_t>(value.size())) err = errno ? errno : EIO;
  ::close(fd);
  return err;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// This process's group in the hierarchy of v1 `controller`, or on the unified hierarchy for
// controller "" (the "0::<path>" line), from /proc/self/cgroup ("/" if unknown).
std::string OwnGroup(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    // "<id>:<controller,controller>:<path>"
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string names_field = line.substr(a + 1, b - a - 1);
    if (controller.empty()) {
      if (line.compare(0, a, "0") == 0 && names_field.empty()) return line.substr(b + 1);
      continue;
    }
    std::stringstream names(names_field);
    std::string name;
    while (std::getline(names, name, ',')) {
      if (name == controller) return line.substr(b + 1);
    }
  }
  return "/";
}

// A process already in its host group (a second JobCgroups in one process) nests from where
// the first one started, not below its own host group.
std::string StripHostSuffix(std::string own, const std::string& parent, const std::string& host) {
  const std::string suffix = "/" + parent + "/" + host;
  if (own.size() >= suffix.size() && own.compare(own.size() - suffix.size(), suffix.size(), suffix) == 0)
    own.resize(own.size() - suffix.size());
  return own.empty() ? "/" : own;
}

// The mount point of the unified (cgroup2) hierarchy: /sys/fs/cgroup/unified in the hybrid
// layout, /sys/fs/cgroup on a pure v2 system. "" if none is mounted (with its root visible).
std::string UnifiedMount() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fstype> ..."
    std::istringstream fields(line);
    std::string id, parent, dev, root, point, field;
    if (!(fields >> id >> parent >> dev >> root >> point)) continue;
    while (fields >> field && field != "-") {
    }
    std::string fstype;
    if (fields >> fstype && fstype == "cgroup2" && root == "/") return point;
  }
  return "";
}

int MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return 0;
  return errno;
}

std::string JoinPath(std::string a, const std::string& b) {
  while (!a.empty() && a.back() == '/') a.pop_back();
  return b.empty() || b == "/" ? a : a + (b.front() == '/' ? "" : "/") + b;
}

std::string JobName(int64_t id) { return "job-" + std::to_string(id); }

std::vector<pid_t> ReadPids(const std::string& procs_file) {
  std::vector<pid_t> pids;
  std::ifstream in(procs_file);
  pid_t pid;
  while (in >> pid) pids.push_back(pid);
  return pids;
}

// "<key> <0|1>" in a v2 cgroup.events file; nullopt if the file or the key is missing.
std::optional<bool> EventFlag(const std::string& dir, const std::string& key) {
  auto text = ReadFile(dir + "/cgroup.events");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string k;
  int v;
  while (in >> k >> v) {
    if (k == key) return v != 0;
  }
  return std::nullopt;
}

// Starts a child that exits at once in the v2 group `dir` with clone3(CLONE_INTO_CGROUP), and
// reaps it. Returns 0 or the errno.
int ProbeCloneIntoCgroup(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errno;
  struct clone_args args;
  std::memset(&args, 0, sizeof args);
  args.flags = CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<uint64_t>(fd.get());
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) ::syscall(SYS_exit_group, 0);  // no libc in a raw clone's child
  if (pid < 0) return errno;
  int status;
  while (::waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
  }
  return 0;
}

}  // namespace

void JobCgroups::TEST_DisableCloneIntoCgroup(bool disable) { g_disable_clone_into_cgroup = disable; }

JobCgroups::JobCgroups(Options options) : options_(std::move(options)) {
  std::string why_not = SetUpUnified();
  if (why_not.empty()) {
    mode_ = Mode::kUnified;
  } else {
    KLOG_WARN("cgroups: {}; guest jobs are started by attaching them to their cgroups after fork "
              "(several ms per job start)", why_not);
  }
  std::set<std::string> mounts_seen;
  for (const char* name : kControllers) {
    std::string mount = options_.mount_root + "/" + name;
    char real[PATH_MAX];
    if (!::realpath(mount.c_str(), real) || ::access((mount + "/cgroup.procs").c_str(), F_OK) != 0) {
      WarnOnce(name, "cgroup controller " + std::string(name) + ": not mounted at " + mount + "; guest jobs run without it");
      continue;
    }
    if (!mounts_seen.insert(real).second) continue;  // co-mounted with one already in use
    Controller c;
    c.name = name;
    c.own_dir = JoinPath(mount, StripHostSuffix(OwnGroup(name), options_.parent, options_.host));
    c.parent_dir = JoinPath(c.own_dir, options_.parent);
    c.host_dir = c.parent_dir + "/" + options_.host;
    if (!EnsureHostDir(c)) continue;
    ApplyLimits(c, c.host_dir);
    usable_.push_back(std::move(c));
  }
  if (mode_ == Mode::kUnified) {
    JoinHostGroups();
    bool limits = false;
    for (const Controller& c : usable_) limits |= c.name == "cpu" || c.name == "memory";
    // TODO(pure v2): cpu.weight and memory.max on the v2 host group. That group holds this
    // process, so the limits need it in a leaf of its own first (no internal processes).
    if (!limits)
      KLOG_WARN("cgroups: no v1 cpu or memory controller (a pure cgroup v2 system?): guests run without "
                "their low CPU weight and memory limit (not implemented on cgroup v2 yet)");
  }
}

JobCgroups::~JobCgroups() {
  if (joined_) {
    const std::string pid = std::to_string(::getpid());
    for (const Controller& c : usable_) {
      if (int err = WriteFile(c.own_dir + "/cgroup.procs", pid))
        KLOG_WARN("cannot move back to cgroup {}: {}", c.own_dir, std::strerror(err));
    }
    if (oom_score_adj_) WriteFile("/proc/self/oom_score_adj", std::to_string(*oom_score_adj_));
  }
  for (const Controller& c : usable_) {
    if (::rmdir(c.host_dir.c_str()) != 0 && errno != ENOENT)
      KLOG_WARN("cannot remove cgroup {}: {}", c.host_dir, std::strerror(errno));
    ::rmdir(c.parent_dir.c_str());  // fails while another host's group lives there: fine
  }
  if (mode_ == Mode::kUnified) {
    if (::rmdir(v2_host_dir_.c_str()) != 0 && errno != ENOENT)
      KLOG_WARN("cannot remove cgroup {}: {}", v2_host_dir_, std::strerror(errno));
    ::rmdir(v2_parent_dir_.c_str());
  }
}

std::string JobCgroups::SetUpUnified() {
  if (g_disable_clone_into_cgroup) return "clone3(CLONE_INTO_CGROUP) disabled by a test";
  std::string mount = UnifiedMount();
  if (mount.empty()) return "no cgroup v2 (unified) hierarchy is mounted";
  std::string own = StripHostSuffix(OwnGroup(""), options_.parent, options_.host);
  v2_parent_dir_ = JoinPath(JoinPath(mount, own), options_.parent);
  v2_host_dir_ = v2_parent_dir_ + "/" + options_.host;
  for (const std::string& dir : {v2_parent_dir_, v2_host_dir_}) {
    if (int err = MakeDir(dir)) return "cannot create " + dir + ": " + std::strerror(err);
  }
  if (int err = ProbeCloneIntoCgroup(v2_host_dir_)) {
    ::rmdir(v2_host_dir_.c_str());
    ::rmdir(v2_parent_dir_.c_str());
    return std::string("clone3(CLONE_INTO_CGROUP) does not work here (kernel >= 5.7 needed): ") + std::strerror(err);
  }
  return "";
}

void JobCgroups::JoinHostGroups() {
  const std::string pid = std::to_string(::getpid());
  bool memory = false;
  for (const Controller& c : usable_) {
    // The whole process, every thread: jobs forked by any of them inherit the groups.
    if (int err = WriteFile(c.host_dir + "/cgroup.procs", pid)) {
      KLOG_WARN("cannot move kite-remoted into cgroup {}: {}; its guest jobs run outside it", c.host_dir,
                std::strerror(err));
      continue;
    }
    joined_ = true;
    memory |= c.name == "memory";
  }
  if (!memory || options_.memory_limit_mb <= 0) return;
  auto text = ReadFile("/proc/self/oom_score_adj");
  if (!text) return;
  int own = std::atoi(text->c_str());
  if (own <= kOwnOomScoreAdj) return;
  if (int err = WriteFile("/proc/self/oom_score_adj", std::to_string(kOwnOomScoreAdj))) {
    KLOG_WARN("cannot lower kite-remoted's oom_score_adj: {}; a guest at its memory limit may make the OOM "
              "killer pick kite-remoted", std::strerror(err));
    return;
  }
  oom_score_adj_ = own;
}

void JobCgroups::WarnOnce(const std::string& key, const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  if (warned_.insert(key).second) KLOG_WARN("{}", what);
}

bool JobCgroups::EnsureHostDir(const Controller& c) {
  for (const std::string& dir : {c.parent_dir, c.host_dir}) {
    if (int err = MakeDir(dir)) {
      WarnOnce(c.name, "cgroup controller " + c.name + ": cannot create " + dir + ": " + std::strerror(err) +
                           "; guest jobs run without it");
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
  if (mode_ != Mode::kAttach) return "";
  return HostDir(controller).empty() ? "" : HostDir(controller) + "/" + JobName(id);
}

std::string JobCgroups::UnifiedJobDir(int64_t id) const {
  return mode_ == Mode::kUnified ? v2_host_dir_ + "/" + JobName(id) : "";
}

std::string JobCgroups::HostDir(const std::string& controller) const {
  for (const Controller& c : usable_) {
    if (c.name == controller) return c.host_dir;
  }
  return "";
}

std::vector<std::string> JobCgroups::controllers() const {
  std::vector<std::string> names;
  for (const Controller& c : usable_) names.push_back(c.name);
  return names;
}

UniqueFd JobCgroups::CreateJob(int64_t id) {
  if (mode_ == Mode::kUnified) {
    std::string dir = UnifiedJobDir(id);
    int err = MakeDir(dir);
    if (err == ENOENT) {  // the host group vanished (removed by hand): make it again
      MakeDir(v2_parent_dir_);
      MakeDir(v2_host_dir_);
      err = MakeDir(dir);
    }
    UniqueFd fd(err == 0 ? ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1);
    if (!fd.valid())
      KLOG_WARN("cannot create cgroup {}: {}; job {} runs in its host's group", dir, std::strerror(err ? err : errno), id);
    return fd;
  }
  for (const Controller& c : usable_) {
    std::string dir = JobDir(c.name, id);
    if (int err = MakeDir(dir)) {
      KLOG_WARN("cannot create cgroup {}: {}", dir, std::strerror(err));
      continue;
    }
    ApplyLimits(c, dir);
  }
  return UniqueFd();
}

void JobCgroups::AddProcess(int64_t id, pid_t pid) {
  if (mode_ != Mode::kAttach) return;
  for (const Controller& c : usable_) {
    std::string file = JobDir(c.name, id) + "/cgroup.procs";
    if (int err = WriteFile(file, std::to_string(pid)))
      KLOG_WARN("cannot move pid {} into {}: {}", pid, file, std::strerror(err));
  }
}

std::vector<pid_t> JobCgroups::Processes(int64_t id) const {
  if (mode_ == Mode::kUnified) return ReadPids(UnifiedJobDir(id) + "/cgroup.procs");
  std::set<pid_t> pids;
  for (const Controller& c : usable_) {
    for (pid_t pid : ReadPids(JobDir(c.name, id) + "/cgroup.procs")) pids.insert(pid);
  }
  return {pids.begin(), pids.end()};
}

bool JobCgroups::KillV2(const std::string& dir, std::chrono::milliseconds timeout) const {
  auto populated = [&] { return EventFlag(dir, "populated").value_or(false); };
  if (!populated()) return true;
  // cgroup.kill (Linux 5.14) kills the whole group at once, forks in flight included. Without
  // it: freeze (nothing forks meanwhile), SIGKILL what is listed, thaw so they can die.
  const bool kill_file = WriteFile(dir + "/cgroup.kill", "1") == 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    if (!kill_file) {
      bool frozen = WriteFile(dir + "/cgroup.freeze", "1") == 0;
      for (int i = 0; frozen && i < 100 && !EventFlag(dir, "frozen").value_or(true); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      for (pid_t pid : ReadPids(dir + "/cgroup.procs")) ::kill(pid, SIGKILL);
      if (frozen) WriteFile(dir + "/cgroup.freeze", "0");
    }
    if (!populated()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

bool JobCgroups::KillV1(const std::vector<std::string>& dirs, const std::string& freezer_dir,
                        std::chrono::milliseconds timeout) const {
  auto processes = [&] {
    std::set<pid_t> pids;
    for (const std::string& d : dirs) {
      for (pid_t pid : ReadPids(d + "/cgroup.procs")) pids.insert(pid);
    }
    return pids;
  };
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    if (processes().empty()) return true;
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
    for (pid_t pid : processes()) ::kill(pid, SIGKILL);
    // SIGKILL is acted on when the task runs again: thaw so it can die.
    if (frozen) WriteFile(freezer_dir + "/freezer.state", "THAWED");
    if (std::chrono::steady_clock::now() >= deadline) return processes().empty();
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

bool JobCgroups::KillAll(int64_t id, std::chrono::milliseconds timeout) {
  if (mode_ == Mode::kUnified) return KillV2(UnifiedJobDir(id), timeout);
  if (usable_.empty()) return true;
  std::vector<std::string> dirs;
  for (const Controller& c : usable_) dirs.push_back(JobDir(c.name, id));
  return KillV1(dirs, JobDir("freezer", id), timeout);
}

void JobCgroups::RemoveDir(const std::string& dir) {
  // A task that was just killed may still be on its way out of the group (EBUSY).
  int err = 0;
  for (int i = 0; i < 100; ++i) {
    if (::rmdir(dir.c_str()) == 0) {
      err = 0;
      break;
    }
    err = errno;
    if (err != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (err != 0 && err != ENOENT) KLOG_WARN("cannot remove cgroup {}: {}", dir, std::strerror(err));
}

void JobCgroups::RemoveJob(int64_t id) {
  if (mode_ == Mode::kUnified) {
    RemoveDir(UnifiedJobDir(id));
    return;
  }
  for (const Controller& c : usable_) RemoveDir(JobDir(c.name, id));
}

int JobCgroups::RemoveStale() {
  // Both modes' places: the previous remoted may have run in the other mode.
  std::set<std::string> names;
  std::vector<std::string> host_dirs;
  if (mode_ == Mode::kUnified) host_dirs.push_back(v2_host_dir_);
  for (const Controller& c : usable_) host_dirs.push_back(c.host_dir);
  for (const std::string& host_dir : host_dirs) {
    DIR* d = ::opendir(host_dir.c_str());
    if (!d) continue;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strncmp(e->d_name, "job-", 4) != 0) continue;
      char* end = nullptr;
      std::strtoll(e->d_name + 4, &end, 10);
      if (end && *end == '\0' && end != e->d_name + 4) names.insert(e->d_name);
    }
    ::closedir(d);
  }
  for (const std::string& name : names) {
    bool dead = true;
    if (mode_ == Mode::kUnified && ::access((v2_host_dir_ + "/" + name).c_str(), F_OK) == 0)
      dead &= KillV2(v2_host_dir_ + "/" + name, std::chrono::seconds(2));
    std::vector<std::string> dirs;
    std::string freezer;
    for (const Controller& c : usable_) {
      std::string dir = c.host_dir + "/" + name;
      if (::access(dir.c_str(), F_OK) != 0) continue;
      dirs.push_back(dir);
      if (c.name == "freezer") freezer = dir;
    }
    if (!dirs.empty()) dead &= KillV1(dirs, freezer, std::chrono::seconds(2));
    if (!dead) KLOG_WARN("stale job group {}: processes survive SIGKILL", name);
    if (mode_ == Mode::kUnified) RemoveDir(v2_host_dir_ + "/" + name);
    for (const std::string& dir : dirs) RemoveDir(dir);
  }
  return static_cast<int>(names.size());
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
