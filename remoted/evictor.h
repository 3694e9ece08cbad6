// Evictor: automatic eviction (DESIGN §5). When this host's owner is back (OwnerMonitor's
// state is no longer IDLE, by detection or `kite owner HOST active`), it asks the home of
// every guest job to move the job away (Home.evict_jobs), repeats that every kRepeat while
// guests stay, and measures how long the host took to clear. The homes do the moving
// (checkpoint here, restore elsewhere, or requeue): only a home can switch its deputy's relay.
//
// A guest whose home answers that it does not know the job, or whose home cannot be reached
// for kOrphanAfter, is killed: nothing would ever collect it, and the owner wants the machine.
// Thread-safe; one thread, polling the owner's state every kPoll so that a forced override
// starts the eviction within that time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/config.h"
#include "common/rpc.h"
#include "kite/rpc/Home.h"
#include "remoted/job_manager.h"
#include "remoted/owner_monitor.h"

namespace kite {

class Evictor {
 public:
  static constexpr std::chrono::milliseconds kPoll{50};
  static constexpr std::chrono::milliseconds kRepeat{1000};
  static constexpr std::chrono::seconds kOrphanAfter{10};

  // `jobs` and `owner` outlive the evictor. `tls` may be null (no homes can be asked: guests
  // are only counted).
  Evictor(const Config& config, std::shared_ptr<TlsContext> tls, JobManager* jobs, const OwnerMonitor* owner);
  ~Evictor();  // Stop()
  void Start();
  void Stop();  // idempotent

  // Guests are being sent away right now (the host reports DRAINING).
  bool evicting() const;
  // How long the last completed eviction took, from the owner's return to the last guest
  // gone; -1 before the first.
  int64_t last_clear_ms() const;

 private:
  struct HomeLink {
    std::unique_ptr<Conn<rpc::HomeClient>> conn;
    std::chrono::steady_clock::time_point last_asked{};
    std::chrono::steady_clock::time_point unreachable_since{};
  };
  void Loop();
  // Asks `home` to move `ids`; kills the ones it disowns, or all of them once it has been
  // unreachable for kOrphanAfter.
  void AskHome(const std::string& home, const std::vector<int64_t>& ids, HomeLink* link);

  const Config& config_;
  const std::shared_ptr<TlsContext> tls_;
  JobManager* const jobs_;
  const OwnerMonitor* const owner_;
  std::thread thread_;
  std::map<std::string, HomeLink> links_;  // the loop's thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;          // GUARDED_BY(mu_)
  bool evicting_ = false;      // GUARDED_BY(mu_)
  int64_t last_clear_ms_ = -1; // GUARDED_BY(mu_)
};

}  // namespace kite
