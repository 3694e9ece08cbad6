// OwnerMonitor: is this host's owner at the machine? Decides the host's state (IDLE: takes
// guests; OWNER_ACTIVE: takes none; DRAINING: shutting down or evicting) from the override
// set by `kite owner`, and, with owner_detect = "auto", from the owner's terminals and CPU
// load. Thread-safe.
//
// Activity (auto): a terminal not created by remoted for a guest (/dev/pts/N, /dev/ttyN)
// whose atime (last input) is recent, or a non-guest CPU load above owner_load_threshold.
// The load is all busy CPU time (/proc/stat) minus what the guests used (their cpuacct
// group), averaged like the kernel's load1 (one-minute exponential decay); without cpuacct,
// load1 from /proc/loadavg minus the number of running guests. The owner counts as active
// until idle_after_s seconds have passed since the last activity.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "kite/rpc/kite_types.h"

namespace kite {

class OwnerMonitor {
 public:
  // What the guests are doing, supplied by the caller at every Update (from JobManager).
  struct GuestSample {
    std::set<std::string> ttys;   // pty slaves remoted made for guests: not the owner's input
    std::optional<int64_t> cpu_ns;  // CPU time all guests used so far, if known
    int running = 0;              // guest jobs whose root still runs
  };
  // Where the measurements come from; tests point these at files of their own.
  struct Sources {
    std::vector<std::string> tty_globs = {"/dev/pts/[0-9]*", "/dev/tty[0-9]*"};
    std::string proc_stat = "/proc/stat";
    std::string proc_loadavg = "/proc/loadavg";
  };

  explicit OwnerMonitor(const Config& config);
  OwnerMonitor(const Config& config, Sources sources);

  // Takes a measurement (call about once a second) and updates the state. `now_ms` is wall
  // clock milliseconds (terminal atimes are wall clock).
  void Update(const GuestSample& guests);
  void UpdateAt(const GuestSample& guests, int64_t now_ms);

  rpc::HostState::type state() const;
  rpc::OwnerOverride::type override_mode() const;
  // How long the owner has been away; 0 while the owner counts as active.
  int64_t owner_idle_ms() const;
  // The non-guest load last measured (CPUs busy, one-minute average).
  double owner_load() const;

  // `kite owner HOST auto|active|idle`. INVALID_ARGUMENT for a value outside the enum.
  // Callers are cluster hosts (every connection is mutual TLS with the cluster CA).
  Status SetOverride(rpc::OwnerOverride::type mode);
  // remoted is shutting down: take no more guests, whatever the owner does.
  void BeginDrain();

 private:
  rpc::HostState::type StateLocked() const;  // REQUIRES(mu_)
  void NoteStateChange();  // REQUIRES(mu_): logs a change of state()
  int64_t NewestOwnerTtyMs(const std::set<std::string>& guest_ttys) const;
  std::optional<int64_t> BusyCpuNs() const;
  std::optional<double> Load1() const;

  const bool detect_;          // owner_detect == "auto"
  const int64_t idle_after_ms_;
  const double load_threshold_;
  const Sources sources_;

  mutable std::mutex mu_;
  rpc::OwnerOverride::type override_ = rpc::OwnerOverride::AUTO;  // GUARDED_BY(mu_)
  bool draining_ = false;        // GUARDED_BY(mu_)
  bool owner_active_ = false;    // GUARDED_BY(mu_): last measured (auto)
  int64_t last_activity_ms_ = 0;  // GUARDED_BY(mu_): wall clock; 0: never seen
  int64_t now_ms_ = 0;           // GUARDED_BY(mu_): time of the last update
  int64_t start_ms_ = 0;         // GUARDED_BY(mu_)
  double load_ = 0;              // GUARDED_BY(mu_): non-guest load, exponential average
  bool have_load_ = false;       // GUARDED_BY(mu_)
  int64_t prev_ms_ = 0;          // GUARDED_BY(mu_): previous sample
  std::optional<int64_t> prev_busy_ns_, prev_guest_ns_;  // GUARDED_BY(mu_)
  rpc::HostState::type reported_ = rpc::HostState::IDLE;  // GUARDED_BY(mu_): for logging changes
};

}  // namespace kite
