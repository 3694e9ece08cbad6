// kite's configuration: /etc/kite/kite.toml (or $KITE_CONFIG, or --config), one file per host.
// Every field has a sane default so a minimal file names only the cluster's hosts.
// See docs/config.md for the file format with an example.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace kite {

struct Config {
  // [cluster]
  std::string cluster_name = "kite";
  std::string ca_file = "/etc/kite/ca.pem";
  std::string cert_file = "/etc/kite/host.pem";
  std::string key_file = "/etc/kite/host.key";
  bool allow_root = false;                   // may jobs run as uid 0 on another host?
  std::vector<std::string> shared_paths = {"/kite"};  // same files on every host

  // [host]
  std::string host_name;                     // default: this machine's host name
  int slots = 0;                             // guest slots; 0: the number of CPUs
  std::string listen_address = "0.0.0.0";

  // [hosts]: every host of the cluster, name → address
  std::map<std::string, std::string> hosts;

  // [ports]
  int home_port = 7070;
  int remote_port = 7071;

  // [remoted]
  int64_t guest_memory_limit_mb = 0;         // 0: no limit
  int guest_cpu_shares = 128;                // cgroup v1 cpu.shares of guests (owner: 1024)
  int idle_after_s = 60;                     // quiet period before the host counts as idle
  double owner_load_threshold = 0.5;         // non-guest load above this: the owner is active
  std::string owner_detect = "auto";         // "auto": ttys, input devices, load; "none": manual
  std::string cgroup_parent = "kite";        // below each controller's mount point
  std::string shim_path;                     // default: libkite-shim.so beside the binary
  bool stream_pages = true;                  // a move's pages go from the source host straight into the restoring process

  // [homed]
  std::string evict_to = "home";             // where evicted jobs go: "home" or "idle" (another idle host, else home)

  // [paths]
  std::string run_dir = "/run/kite";         // homed.sock lives here
  // Where guest jobs' checkpoint images are written, on this host's own disk (not tmpfs: an
  // image is as large as the job's memory). The same path on every host: a restored job keeps
  // writing its images under the path it was started with (remoted/job_checkpoint.h).
  std::string checkpoint_dir = "/var/lib/kite/checkpoints";

  std::string socket_path() const { return run_dir + "/homed.sock"; }
  // Address of `host`, or NotFound naming the hosts that exist.
  StatusOr<std::string> AddressOf(const std::string& host) const;
};

// Parses TOML text; `origin` names the source in error messages.
StatusOr<Config> ParseConfig(const std::string& text, const std::string& origin);
// Loads `path`; an empty path means $KITE_CONFIG, else /etc/kite/kite.toml.
StatusOr<Config> LoadConfig(const std::string& path);
// Directory of the running executable (for finding the shim beside it).
std::string ExecutableDir();

}  // namespace kite
