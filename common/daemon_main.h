// The shared main() of kite's daemons: flags (--config, --log-level), config, logging, and a
// dedicated thread that turns SIGTERM/SIGINT/SIGHUP into Daemon::Stop(). The daemon's own
// threads never see those signals (they are blocked before any thread starts), and SIGPIPE is
// ignored: a peer hanging up is an error return, not a death.
//
// Daemon must provide: static StatusOr<std::unique_ptr<Daemon>> Create(const Config&);
// Status Run(); void Stop() (callable from another thread).
#pragma once

#include <signal.h>

#include <CLI/CLI.hpp>
#include <string>
#include <thread>

#include "common/config.h"
#include "common/log.h"

namespace kite {

template <typename Daemon>
int RunDaemonMain(int argc, char** argv, const std::string& component, const std::string& description) {
  CLI::App app{description};
  std::string config_path, log_level = "info";
  app.add_option("--config", config_path, "configuration file (default: $KITE_CONFIG or /etc/kite/kite.toml)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);

  InitLogging(component, log_level);
  auto config = LoadConfig(config_path);
  if (!config.ok()) {
    KLOG_ERROR("{}", config.status().message());
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto daemon = Daemon::Create(*config);
  if (!daemon.ok()) {
    KLOG_ERROR("cannot start: {}", daemon.status().message());
    return 1;
  }
  std::thread([&] {
    int sig = 0;
    sigwait(&set, &sig);
    KLOG_INFO("signal {}: shutting down", sig);
    daemon.value()->Stop();
  }).detach();
  Status s = daemon.value()->Run();
  if (!s.ok()) {
    KLOG_ERROR("{}", s.message());
    return 1;
  }
  return 0;
}

}  // namespace kite
