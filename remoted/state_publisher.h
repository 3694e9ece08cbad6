// StatePublisher: about once a second, measures the host (OwnerMonitor::Update with the
// guests' usage), builds its HostStatus and sends it to the homed of every cluster host
// (Home.report_state, oneway). Each peer has its own thread and kept-open connection, with
// backoff while it is unreachable, so a dead peer never delays the others.
// Thread-safe; BuildStatus() is also what Remote.status() answers.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/rpc.h"
#include "kite/rpc/kite_types.h"
#include "remoted/evictor.h"
#include "remoted/job_manager.h"
#include "remoted/owner_monitor.h"

namespace kite {

class StatePublisher {
 public:
  static constexpr std::chrono::milliseconds kPeriod{1000};
  static constexpr int kConnectTimeoutMs = 1000;
  static constexpr int kSendTimeoutMs = 2000;
  static constexpr std::chrono::seconds kMaxBackoff{30};

  // `jobs` and `owner` outlive the publisher. `tls` may be null: then nothing is sent
  // (the measurements still run).
  StatePublisher(const Config& config, std::shared_ptr<TlsContext> tls, JobManager* jobs, OwnerMonitor* owner,
                 const Evictor* evictor = nullptr);
  ~StatePublisher();  // Stop()

  void Start();
  void Stop();  // idempotent; waits for the threads (a connect in progress ends by timeout)

  // The host as of now.
  rpc::HostStatus BuildStatus() const;

 private:
  struct Peer {
    std::string host;
    std::string address;
    std::thread thread;
  };
  void TickLoop();
  void PeerLoop(Peer* peer);

  const Config& config_;
  const std::shared_ptr<TlsContext> tls_;
  JobManager* const jobs_;
  OwnerMonitor* const owner_;
  const Evictor* const evictor_;  // may be null
  std::vector<std::unique_ptr<Peer>> peers_;
  std::thread tick_thread_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;           // GUARDED_BY(mu_)
  bool started_ = false;        // GUARDED_BY(mu_)
  rpc::HostStatus latest_;      // GUARDED_BY(mu_)
  uint64_t generation_ = 0;     // GUARDED_BY(mu_): bumped with every new latest_
};

}  // namespace kite
