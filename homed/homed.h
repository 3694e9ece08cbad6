// kite-homed, the home-node daemon (DESIGN §1, §2, §7): the authority for every process whose
// home is this host. It keeps the host table from the remoteds' reports, places jobs, relays a
// placed job's stdio and signals between its deputy and the host it runs on, answers the
// `kite` CLI, and delivers signals that guest jobs send to processes at home.
//
// This header is the whole public surface: main() and the tests use only HomeDaemon.
#pragma once

#include <memory>

#include "common/config.h"
#include "common/status.h"

namespace kite {

class HomeDaemonImpl;

class HomeDaemon {
 public:
  // Loads TLS material and binds the Unix socket (config.socket_path()) and the Thrift port.
  static StatusOr<std::unique_ptr<HomeDaemon>> Create(const Config& config);
  ~HomeDaemon();

  // Serves until Stop(); returns the reason serving ended.
  Status Run();
  // Callable from any thread (a signal-handling thread in main): ends Run(), kills and
  // releases the jobs this home placed.
  void Stop();

 private:
  explicit HomeDaemon(std::unique_ptr<HomeDaemonImpl> impl);
  std::unique_ptr<HomeDaemonImpl> impl_;
};

}  // namespace kite
