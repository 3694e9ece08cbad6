// SimCluster: a simulated kite cluster for one integration test, made and removed with
// scripts/cluster (DESIGN.md §9). Each SimCluster has its own instance name, so tests and test
// binaries can run clusters side by side; a cluster left behind by a crashed test binary is
// removed when the next SimCluster in any binary comes up (its owner pid is recorded).
//
// Thread safety: none; use one SimCluster from one thread. Needs root, like scripts/cluster.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "tests/support/subprocess.h"

namespace kite::testing {

struct SimClusterOptions {
  double cpu = 0.5;      // each host's CPU cap, in cores
  int slots = 0;         // guest slots per host; 0: `kite cluster init`'s default
  bool daemons = true;   // false: hosts without kite-homed/kite-remoted (KITE_SIM_NO_DAEMONS=1)
};

class SimCluster {
 public:
  static constexpr std::chrono::milliseconds kDefaultExecTimeout{std::chrono::minutes(2)};

  SimCluster();
  // Runs Down() if Up() was called; a failure is printed (call Down() to check it).
  ~SimCluster();
  SimCluster(const SimCluster&) = delete;
  SimCluster& operator=(const SimCluster&) = delete;

  // Brings up node1..node`hosts` (scripts/cluster up). On failure the script has removed what
  // it made; the error carries its output, daemon logs included. FailedPrecondition: already up.
  Status Up(int hosts, const SimClusterOptions& options = {});
  // scripts/cluster down: kills every process of the cluster and removes all it made.
  // Idempotent. Internal: something could not be removed (the message says what).
  Status Down();

  // Runs argv inside `host` to completion (scripts/cluster exec), feeding it `stdin_data`.
  // A non-zero exit is a result, not an error. DeadlineExceeded: still running after `timeout`
  // (then it is killed).
  StatusOr<ProcessResult> Exec(const std::string& host, const std::vector<std::string>& argv,
                               const std::string& stdin_data = "",
                               std::chrono::milliseconds timeout = kDefaultExecTimeout);
  // Starts argv inside `host` and returns at once. The handle's pid is the local
  // `scripts/cluster exec` process; Kill() signals its process group, which includes the
  // command inside the host. stdin stays open until CloseStdin() (or Wait on a pty).
  StatusOr<std::unique_ptr<Subprocess>> Spawn(const std::string& host,
                                              const std::vector<std::string>& argv,
                                              const Subprocess::Options& options = {});

  const std::string& name() const { return name_; }
  // "node1".."nodeN" once up.
  std::vector<std::string> hosts() const;
  // The host's address on the cluster's private network. NotFound: no such host.
  StatusOr<std::string> Address(const std::string& host) const;
  std::string StateDir() const;   // /run/kite-sim/<name>: logs, pki, hosts file
  std::string SharedDir() const;  // what every host sees at /kite, as seen from the test
  std::string LogPath(const std::string& host, const std::string& daemon) const;  // "homed"
  // The host's group in a cgroup v1 controller, e.g. CgroupPath("cpu", "node1"): every process
  // of the host is in it, and remoted's job groups below it. "" if the controller is not used
  // (see HOST_CONTROLLERS in scripts/cluster) or the cluster is not up.
  std::string CgroupPath(const std::string& controller, const std::string& host) const;

  static std::string SourceDir();   // the repository (compile definition KITE_SOURCE_DIR)
  static std::string BinDir();      // kite's binaries (KITE_BIN_DIR), passed as KITE_BIN
  static std::string ScriptPath();  // scripts/cluster
  // scripts/cluster down --stale: removes clusters whose owning process has exited. Up() runs
  // it once per process.
  static Status RemoveStaleClusters();

 private:
  // Runs scripts/cluster with `args`, returning its result; error if it could not run.
  static StatusOr<ProcessResult> RunScript(const std::vector<std::string>& args,
                                           const std::vector<std::string>& env = {});

  std::string name_;
  bool up_called_ = false;
};

}  // namespace kite::testing
