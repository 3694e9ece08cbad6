// JobCgroups: the cgroups guest jobs run in, made so that starting a job attaches nothing.
//
// Unified mode (the default): each job has its own group on the unified (v2) hierarchy,
//   <unified>/<own v2>/<parent>/<host>/job-<id>/
// which the launcher starts the job's root in with clone3(CLONE_INTO_CGROUP) (JobFd()): no
// cgroup attach, whose global rwsem costs 4-18 ms per write on this kernel. The group needs no
// controller: it gives membership (Processes), kill (cgroup.kill; cgroup.freeze and SIGKILL
// rounds on kernels without it) and removal. Resource control stays in the v1 controllers, at
// the host level only: the constructor moves this whole process (every thread) into
//   <mount>/<controller>/<own v1>/<parent>/<host>/
// of each usable controller, and every job it forks inherits those groups. The process's own
// CPU and memory then count as guests' (its CPU is small next to the jobs'; its oom_score_adj
// is lowered so a guest at the memory limit is killed before it, see oom_score_adj()), and it
// goes back to its original groups in the destructor. On a pure v2 machine (no v1 controllers)
// the guests' limits are not applied yet (warned once: TODO cpu.weight/memory.max there).
//
// Attach mode (the fallback, with a one-time warning, when the unified hierarchy, cgroup
// creation there or clone3(CLONE_INTO_CGROUP) is unusable, or TEST_DisableCloneIntoCgroup()):
// the earlier behaviour. Each job has a v1 group per controller below the host group,
// <...>/<host>/job-<id>/, that the caller moves the root into after fork (AddProcess), and
// the freezer stops it from forking while it is killed.
//
// <own> is this process's group in that hierarchy at start-up ("/" in the root group; nesting
// below it keeps guests inside any limit remoted itself runs under). A v1 controller that is
// not mounted or not writable is warned about once and left out. Thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "remoted/unique_fd.h"

namespace kite {

class JobCgroups {
 public:
  struct Options {
    std::string mount_root = "/sys/fs/cgroup";  // v1 controllers at <mount_root>/<controller>
    std::string parent = "kite";  // Config::cgroup_parent
    std::string host;             // Config::host_name
    int cpu_shares = 128;         // Config::guest_cpu_shares
    int64_t memory_limit_mb = 0;  // Config::guest_memory_limit_mb; 0: none
  };
  enum class Mode { kUnified, kAttach };

  explicit JobCgroups(Options options);
  // Returns to the original groups (unified mode), removes the host groups (and the parent
  // groups when no other host uses them). Job groups must have been removed first.
  ~JobCgroups();
  JobCgroups(const JobCgroups&) = delete;
  JobCgroups& operator=(const JobCgroups&) = delete;

  // Creates the job's group(s) (and the host group if it vanished). Unified mode: returns an
  // fd of the job's v2 group for clone3(CLONE_INTO_CGROUP), invalid if the group could not
  // be made (logged; the job then runs in the host's group). Attach mode: invalid.
  UniqueFd CreateJob(int64_t id);
  // Attach mode: moves `pid` into the job's v1 groups (failures logged; the job runs anyway).
  // Unified mode: nothing (the job was started in its group).
  void AddProcess(int64_t id, pid_t pid);
  // Every process in the job's group(s).
  std::vector<pid_t> Processes(int64_t id) const;
  // Kills every process in the job's group(s), then waits until none is left or `timeout`
  // passes. Returns true when the groups are empty.
  bool KillAll(int64_t id, std::chrono::milliseconds timeout);
  // Removes the job's group(s) (after KillAll). Logs what it cannot remove.
  void RemoveJob(int64_t id);
  // Kills and removes job groups a previous remoted left behind (it crashed), in both modes'
  // places. Returns how many it found.
  int RemoveStale();

  // CPU time used by every guest under <parent> (all hosts' guests when several simulated
  // hosts share one machine, and in unified mode the remoteds themselves), from cpuacct;
  // nullopt without a usable cpuacct.
  std::optional<int64_t> GuestCpuNs() const;

  Mode mode() const { return mode_; }
  // Whether jobs can be killed as a whole (a v2 job group or some v1 controller).
  bool contains_jobs() const { return mode_ == Mode::kUnified || !usable_.empty(); }
  // The job's v1 directory under `controller`: attach mode only, "" if that controller is
  // not used (or in unified mode, where jobs are in HostDir()).
  std::string JobDir(const std::string& controller, int64_t id) const;
  // The job's v2 directory: unified mode only, else "".
  std::string UnifiedJobDir(int64_t id) const;
  // The host-level v1 group of `controller` ("" if not used): every job's group in unified
  // mode (and this process's own), the parent of the job groups in attach mode.
  std::string HostDir(const std::string& controller) const;
  // The v1 controllers in use.
  std::vector<std::string> controllers() const;
  // Unified mode with a memory limit: the oom_score_adj this process had (a job's root sets
  // it back), nullopt when this process left its own alone.
  std::optional<int> oom_score_adj() const { return oom_score_adj_; }

  // Forces attach mode on every JobCgroups made afterwards in this process (tests).
  static void TEST_DisableCloneIntoCgroup(bool disable);

 private:
  struct Controller {
    std::string name;
    std::string parent_dir;  // <mount>/<name>/<own>/<parent>
    std::string host_dir;    // parent_dir/<host>
    std::string own_dir;     // <mount>/<name>/<own>: where this process was
  };
  bool EnsureHostDir(const Controller& c);
  void ApplyLimits(const Controller& c, const std::string& dir);
  void WarnOnce(const std::string& key, const std::string& what);
  // Unified mode set-up: finds the v2 hierarchy, makes the host group, probes clone3. Returns
  // why it cannot be used, or "".
  std::string SetUpUnified();
  void JoinHostGroups();
  bool KillV1(const std::vector<std::string>& dirs, const std::string& freezer_dir,
              std::chrono::milliseconds timeout) const;
  bool KillV2(const std::string& dir, std::chrono::milliseconds timeout) const;
  static void RemoveDir(const std::string& dir);

  const Options options_;
  Mode mode_ = Mode::kAttach;                    // fixed after construction
  std::vector<Controller> usable_;               // fixed after construction
  std::string v2_parent_dir_, v2_host_dir_;      // unified mode
  bool joined_ = false;                          // this process moved into the host groups
  std::optional<int> oom_score_adj_;
  mutable std::mutex mu_;
  std::set<std::string> warned_;  // GUARDED_BY(mu_)
};

}  // namespace kite
