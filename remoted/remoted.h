// kite-remoted, the remote daemon (DESIGN §1, §5, §7): accepts guest jobs from other homes
// (Thrift service Remote over mutual TLS), runs them under the shim as their owner in
// cgroups, relays their stdio, watches for this host's owner and publishes the host's state.
//
// This header is what main() needs: RemoteDaemon. Unit tests use the component classes
// (job_manager.h, owner_monitor.h, ...) directly.
#pragma once

#include <memory>

#include "common/config.h"
#include "common/status.h"

namespace kite {

class RemoteDaemonImpl;

class RemoteDaemon {
 public:
  // Loads TLS material, prepares cgroups and binds the Remote port (config.remote_port).
  static StatusOr<std::unique_ptr<RemoteDaemon>> Create(const Config& config);
  ~RemoteDaemon();

  // Serves until Stop(). When it returns every guest job has been killed.
  Status Run();
  // Callable from any thread (main's signal thread): ends Run().
  void Stop();

 private:
  explicit RemoteDaemon(std::unique_ptr<RemoteDaemonImpl> impl);
  std::unique_ptr<RemoteDaemonImpl> impl_;
};

}  // namespace kite
