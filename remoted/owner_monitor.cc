// OwnerMonitor: measurements (terminal atimes, /proc/stat, /proc/loadavg) and the state rule.
#include "remoted/owner_monitor.h"

#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include "common/log.h"

namespace kite {
namespace {

int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* StateName(rpc::HostState::type s) {
  switch (s) {
    case rpc::HostState::IDLE: return "IDLE";
    case rpc::HostState::OWNER_ACTIVE: return "OWNER_ACTIVE";
    case rpc::HostState::DRAINING: return "DRAINING";
  }
  return "?";
}

}  // namespace

OwnerMonitor::OwnerMonitor(const Config& config) : OwnerMonitor(config, Sources()) {}

OwnerMonitor::OwnerMonitor(const Config& config, Sources sources)
    : detect_(config.owner_detect == "auto"),
      idle_after_ms_(static_cast<int64_t>(config.idle_after_s) * 1000),
      load_threshold_(config.owner_load_threshold),
      sources_(std::move(sources)) {
  start_ms_ = now_ms_ = WallNowMs();
}

void OwnerMonitor::Update(const GuestSample& guests) { UpdateAt(guests, WallNowMs()); }

void OwnerMonitor::UpdateAt(const GuestSample& guests, int64_t now_ms) {
  // Read the sources before taking the lock: state() must never wait on file I/O.
  int64_t tty_ms = 0;
  std::optional<int64_t> busy;
  std::optional<double> load1;
  if (detect_) {
    tty_ms = NewestOwnerTtyMs(guests.ttys);
    busy = BusyCpuNs();
    load1 = Load1();
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (detect_) {
    const int64_t dt = now_ms - prev_ms_;
    if (busy && guests.cpu_ns && prev_busy_ns_ && prev_guest_ns_ && dt > 0) {
      // CPUs kept busy by everything but the guests over the last interval, folded into a
      // one-minute exponential average like the kernel's load1.
      double rate = static_cast<double>((*busy - *prev_busy_ns_) - (*guests.cpu_ns - *prev_guest_ns_)) /
                    (static_cast<double>(dt) * 1e6);
      rate = std::max(0.0, rate);
      double alpha = 1.0 - std::exp(-static_cast<double>(dt) / 60000.0);
      load_ += alpha * (rate - load_);
      have_load_ = true;
    } else if (!have_load_ || !guests.cpu_ns) {
      // First sample (seed the average) or no cpuacct: load1 minus one per running guest
      // (a guest job keeps at most about one CPU busy; an approximation).
      if (load1) {
        load_ = std::max(0.0, *load1 - guests.running);
        have_load_ = true;
      }
    }
    prev_ms_ = now_ms;
    prev_busy_ns_ = busy;
    prev_guest_ns_ = guests.cpu_ns;
    if (tty_ms > last_activity_ms_) last_activity_ms_ = std::min(tty_ms, now_ms);
    if (have_load_ && load_ > load_threshold_) last_activity_ms_ = now_ms;
    owner_active_ = last_activity_ms_ > 0 && now_ms - last_activity_ms_ < idle_after_ms_;
  }
  now_ms_ = now_ms;
  NoteStateChange();
}

rpc::HostState::type OwnerMonitor::StateLocked() const {
  if (draining_) return rpc::HostState::DRAINING;
  switch (override_) {
    case rpc::OwnerOverride::FORCE_ACTIVE: return rpc::HostState::OWNER_ACTIVE;
    case rpc::OwnerOverride::FORCE_IDLE: return rpc::HostState::IDLE;
    default: return detect_ && owner_active_ ? rpc::HostState::OWNER_ACTIVE : rpc::HostState::IDLE;
  }
}

void OwnerMonitor::NoteStateChange() {
  rpc::HostState::type after = StateLocked();
  if (after == reported_) return;
  KLOG_INFO("host state {} -> {} (override {}, owner load {:.2f}, owner idle {} s)", StateName(reported_),
            StateName(after), static_cast<int>(override_), load_,
            last_activity_ms_ > 0 ? (now_ms_ - last_activity_ms_) / 1000 : -1);
  // Eviction hook: when the state becomes OWNER_ACTIVE the host stops taking guests
  // (JobManager asks state() at every start). Guests already running keep running for now;
  // migration will evict them from here (DESIGN §5).
  reported_ = after;
}

rpc::HostState::type OwnerMonitor::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return StateLocked();
}

rpc::OwnerOverride::type OwnerMonitor::override_mode() const {
  std::lock_guard<std::mutex> lock(mu_);
  return override_;
}

int64_t OwnerMonitor::owner_idle_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (override_ == rpc::OwnerOverride::FORCE_ACTIVE || (detect_ && owner_active_)) return 0;
  int64_t since = last_activity_ms_ > 0 ? last_activity_ms_ : start_ms_;
  return std::max<int64_t>(0, now_ms_ - since);
}

double OwnerMonitor::owner_load() const {
  std::lock_guard<std::mutex> lock(mu_);
  return load_;
}

Status OwnerMonitor::SetOverride(rpc::OwnerOverride::type mode) {
  if (mode != rpc::OwnerOverride::AUTO && mode != rpc::OwnerOverride::FORCE_ACTIVE &&
      mode != rpc::OwnerOverride::FORCE_IDLE)
    return InvalidArgument("owner override " + std::to_string(static_cast<int>(mode)) + " is not AUTO, FORCE_ACTIVE or FORCE_IDLE");
  std::lock_guard<std::mutex> lock(mu_);
  override_ = mode;
  NoteStateChange();
  return OkStatus();
}

void OwnerMonitor::BeginDrain() {
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
  NoteStateChange();
}

int64_t OwnerMonitor::NewestOwnerTtyMs(const std::set<std::string>& guest_ttys) const {
  int64_t newest = 0;
  for (const std::string& pattern : sources_.tty_globs) {
    glob_t g{};
    if (::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g) == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) {
        if (guest_ttys.count(g.gl_pathv[i])) continue;
        struct stat st;
        if (::stat(g.gl_pathv[i], &st) != 0) continue;
        int64_t ms = static_cast<int64_t>(st.st_atim.tv_sec) * 1000 + st.st_atim.tv_nsec / 1000000;
        newest = std::max(newest, ms);
      }
    }
    ::globfree(&g);
  }
  return newest;
}

std::optional<int64_t> OwnerMonitor::BusyCpuNs() const {
  std::ifstream in(sources_.proc_stat);
  std::string label;
  // "cpu  user nice system idle iowait irq softirq steal guest guest_nice" (USER_HZ ticks);
  // guest time is already inside user and nice.
  int64_t v[8] = {};
  if (!(in >> label) || label != "cpu") return std::nullopt;
  for (int64_t& x : v) {
    if (!(in >> x)) return std::nullopt;
  }
  int64_t busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  static const long hz = ::sysconf(_SC_CLK_TCK);
  return busy * (1000000000 / (hz > 0 ? hz : 100));
}

std::optional<double> OwnerMonitor::Load1() const {
  std::ifstream in(sources_.proc_loadavg);
  double load;
  if (in >> load) return load;
  return std::nullopt;
}

}  // namespace kite
