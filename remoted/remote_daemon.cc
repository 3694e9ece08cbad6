// RemoteDaemon: wires OwnerMonitor, JobManager, StatePublisher and the Thrift server.
#include <thread>

#include "common/log.h"
#include "common/rpc.h"
#include "kite/rpc/Remote.h"
#include "remoted/evictor.h"
#include "remoted/job_manager.h"
#include "remoted/owner_monitor.h"
#include "remoted/remote_handler.h"
#include "remoted/remoted.h"
#include "remoted/state_publisher.h"

namespace kite {

class RemoteDaemonImpl {
 public:
  RemoteDaemonImpl(const Config& config, std::shared_ptr<TlsContext> tls)
      : config_(config), tls_(std::move(tls)), owner_(config_) {}

  Status Init() {
    KITE_ASSIGN_OR_RETURN(jobs_, JobManager::Create(config_, &owner_));
    evictor_ = std::make_unique<Evictor>(config_, tls_, jobs_.get(), &owner_);
    publisher_ = std::make_unique<StatePublisher>(config_, tls_, jobs_.get(), &owner_, evictor_.get());
    transfer_ = std::make_unique<CheckpointTransfer>(config_, tls_);
    if (int n = transfer_->Sweep(); n > 0)
      KLOG_INFO("removed {} checkpoint file(s) left in {} by an earlier kite-remoted", n, config_.checkpoint_dir);
    auto handler = std::make_shared<RemoteHandler>(jobs_.get(), &owner_, publisher_.get(), transfer_.get(),
                                                   config_.stream_pages);
    auto processor = std::make_shared<rpc::RemoteProcessor>(handler);
    KITE_ASSIGN_OR_RETURN(server_, MakeServer(*tls_, config_.listen_address, config_.remote_port, processor));
    return OkStatus();
  }

  Status Run() {
    const JobCgroups& cg = jobs_->cgroups();
    std::string job_groups = "attached to v1 groups after fork";
    if (cg.mode() == JobCgroups::Mode::kUnified) {
      std::string dir = cg.UnifiedJobDir(0);
      job_groups = "started in v2 groups " + dir.substr(0, dir.rfind('/')) + "/job-N";
    }
    KLOG_INFO("kite-remoted for {} serving port {} with {} guest slot(s), cgroups: {} (host level), jobs {}",
              config_.host_name, config_.remote_port, config_.slots, Join(cg.controllers()), job_groups);
    publisher_->Start();
    evictor_->Start();
    Status result;
    try {
      server_->serve();
    } catch (const std::exception& e) {
      result = Unavailable(std::string("Remote service stopped: ") + e.what());
    }
    // No new guests while the old ones are killed; homes see DRAINING until we are gone.
    owner_.BeginDrain();
    evictor_->Stop();  // shutting down kills the guests; nobody is asked to move them
    jobs_->Shutdown();
    publisher_->Stop();
    return result;
  }

  void Stop() {
    if (server_) server_->stop();
  }

 private:
  static std::string Join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s.empty() ? "none" : s;
  }

  // Destruction runs bottom-up: the server (and its handler) first, the monitor last.
  const Config config_;
  std::shared_ptr<TlsContext> tls_;
  std::unique_ptr<CheckpointTransfer> transfer_;
  OwnerMonitor owner_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<Evictor> evictor_;
  std::unique_ptr<StatePublisher> publisher_;
  std::shared_ptr<apache::thrift::server::TServer> server_;
};

RemoteDaemon::RemoteDaemon(std::unique_ptr<RemoteDaemonImpl> impl) : impl_(std::move(impl)) {}
RemoteDaemon::~RemoteDaemon() = default;

StatusOr<std::unique_ptr<RemoteDaemon>> RemoteDaemon::Create(const Config& config) {
  KITE_ASSIGN_OR_RETURN(auto tls, TlsContext::Create(config));
  auto impl = std::make_unique<RemoteDaemonImpl>(config, std::move(tls));
  KITE_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<RemoteDaemon>(new RemoteDaemon(std::move(impl)));
}

Status RemoteDaemon::Run() { return impl_->Run(); }
void RemoteDaemon::Stop() { impl_->Stop(); }

}  // namespace kite
