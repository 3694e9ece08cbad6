// JobCgroups: the cgroup v1 groups guest jobs run in, one per job and controller:
//   <mount>/<controller>/<own>/<parent>/<host>/job-<id>/
// where <own> is remoted's own group in that hierarchy ("/" for a daemon in the root group;
// nesting below it keeps guests inside any limit remoted itself runs under).
// The host-level group carries the guests' limits together (cpu.shares, memory limit) so the
// owner keeps the machine; each job's group repeats them and lets a job be killed as a whole.
// A controller that is not mounted or not writable is warned about once and left out; with
// none at all, jobs run without cgroups (killing then relies on the process group).
// Thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kite {

class JobCgroups {
 public:
  struct Options {
    std::string mount_root = "/sys/fs/cgroup";
    std::string parent = "kite";  // Config::cgroup_parent
    std::string host;             // Config::host_name
    int cpu_shares = 128;         // Config::guest_cpu_shares
    int64_t memory_limit_mb = 0;  // Config::guest_memory_limit_mb; 0: none
  };

  explicit JobCgroups(Options options);
  // Removes the host group (and the parent group when no other host uses it). Job groups
  // must have been removed first.
  ~JobCgroups();
  JobCgroups(const JobCgroups&) = delete;
  JobCgroups& operator=(const JobCgroups&) = delete;

  // Creates the job's group in every usable controller (and the host group if it vanished).
  void CreateJob(int64_t id);
  // Moves `pid` into the job's groups. Failures are logged; the job runs anyway.
  void AddProcess(int64_t id, pid_t pid);
  // Every process in the job's groups (union over controllers).
  std::vector<pid_t> Processes(int64_t id) const;
  // SIGKILLs every process in the job's groups until none is left or `timeout` passes;
  // freezes the group around each round when the freezer is usable, so nothing forks
  // meanwhile. Returns true when the groups are empty.
  bool KillAll(int64_t id, std::chrono::milliseconds timeout);
  // Removes the job's groups (after KillAll). Logs what it cannot remove.
  void RemoveJob(int64_t id);
  // Kills and removes job groups a previous remoted left behind (it crashed). Returns how
  // many it found.
  int RemoveStale();

  // CPU time used by every guest under <parent> (all hosts' guests when several simulated
  // hosts share one machine), from cpuacct; nullopt without a usable cpuacct.
  std::optional<int64_t> GuestCpuNs() const;

  // The job's directory under `controller`, or "" if that controller is not used.
  std::string JobDir(const std::string& controller, int64_t id) const;
  std::vector<std::string> controllers() const;

 private:
  struct Controller {
    std::string name;
    std::string parent_dir;  // <mount>/<name>/<own>/<parent>
    std::string host_dir;    // parent_dir/<host>
  };
  bool EnsureHostDir(const Controller& c);
  void ApplyLimits(const Controller& c, const std::string& dir);
  void WarnOnce(const std::string& controller, const std::string& what);
  bool KillRound(int64_t id, const std::string& freezer_dir);

  const Options options_;
  std::vector<Controller> usable_;  // fixed after construction
  mutable std::mutex mu_;
  std::set<std::string> warned_;  // GUARDED_BY(mu_)
};

}  // namespace kite
