// HomeDaemon: wires the Thrift server, the local socket and the shared context together.
#include <thread>

#include "common/log.h"
#include "common/rpc.h"
#include "homed/home_context.h"
#include "homed/home_handler.h"
#include "homed/homed.h"
#include "homed/local_server.h"
#include "kite/rpc/Home.h"

namespace kite {

class HomeDaemonImpl {
 public:
  HomeDaemonImpl(const Config& config, std::shared_ptr<TlsContext> tls) : ctx_(config, std::move(tls)), local_(ctx_) {}

  Status Init() {
    KITE_RETURN_IF_ERROR(local_.Listen());
    auto processor = std::make_shared<rpc::HomeProcessor>(std::make_shared<HomeHandler>(ctx_));
    KITE_ASSIGN_OR_RETURN(server_, MakeServer(*ctx_.tls, ctx_.config.listen_address, ctx_.config.home_port, processor));
    return OkStatus();
  }

  Status Run() {
    KLOG_INFO("kite-homed for {} serving {} and port {}", ctx_.config.host_name, ctx_.config.socket_path(),
              ctx_.config.home_port);
    std::thread thrift([this] {
      try {
        server_->serve();
      } catch (const std::exception& e) {
        KLOG_ERROR("Home service stopped: {}", e.what());
        local_.Stop();
      }
    });
    local_.Serve();
    server_->stop();
    thrift.join();
    return OkStatus();
  }

  void Stop() {
    local_.Stop();
    if (server_) server_->stop();
  }

 private:
  HomeContext ctx_;
  LocalServer local_;
  std::shared_ptr<apache::thrift::server::TServer> server_;
};

HomeDaemon::HomeDaemon(std::unique_ptr<HomeDaemonImpl> impl) : impl_(std::move(impl)) {}
HomeDaemon::~HomeDaemon() = default;

StatusOr<std::unique_ptr<HomeDaemon>> HomeDaemon::Create(const Config& config) {
  KITE_ASSIGN_OR_RETURN(auto tls, TlsContext::Create(config));
  auto impl = std::make_unique<HomeDaemonImpl>(config, std::move(tls));
  KITE_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<HomeDaemon>(new HomeDaemon(std::move(impl)));
}

Status HomeDaemon::Run() { return impl_->Run(); }
void HomeDaemon::Stop() { impl_->Stop(); }

}  // namespace kite
