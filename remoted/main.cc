// kite-remoted: parses flags, loads the config and runs the remote daemon until
// SIGTERM/SIGINT, which kill every guest job before exiting.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <thread>

#include "common/config.h"
#include "common/log.h"
#include "remoted/remoted.h"

int main(int argc, char** argv) {
  CLI::App app{"kite-remoted: the remote daemon of a kite cluster (runs guest jobs; see kite(1))"};
  std::string config_path, log_level = "info";
  app.add_option("--config", config_path, "configuration file (default: $KITE_CONFIG or /etc/kite/kite.toml)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);

  kite::InitLogging("remoted", log_level);
  auto config = kite::LoadConfig(config_path);
  if (!config.ok()) {
    KLOG_ERROR("{}", config.status().message());
    return 2;
  }
  // Signals are taken by a dedicated thread, so the daemon's threads never see them (and
  // guest jobs get a clean mask from the launcher anyway).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto daemon = kite::RemoteDaemon::Create(*config);
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
  kite::Status s = daemon.value()->Run();
  if (!s.ok()) {
    KLOG_ERROR("{}", s.message());
    return 1;
  }
  return 0;
}
