// kitefs: mounts a kite-fsd's namespace (fs/fuse_mount.h). In the background once mounted,
// unless -f; unmount with `fusermount3 -u MOUNTPOINT` (or SIGTERM).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <string>

#include "common/config.h"
#include "common/log.h"
#include "fs/fuse_mount.h"

int main(int argc, char** argv) {
  CLI::App app{"kitefs: mount the kite cluster file system (see docs/kitefs.md)"};
  kite::fs::MountOptions o;
  std::string config_path, server, log_level = "info";
  bool foreground = false;
  app.add_option("mountpoint", o.mountpoint, "where to mount (an existing directory)")->required();
  app.add_option("--server", server, "kite-fsd's address, HOST or HOST:PORT (port default 7072)")->required();
  app.add_option("--config", config_path, "configuration file for the TLS files (default: $KITE_CONFIG or /etc/kite/kite.toml)");
  app.add_flag("-f,--foreground", foreground, "stay in the foreground");
  app.add_flag("-d,--debug", o.debug, "trace every FUSE request (implies -f)");
  app.add_option("--entry-timeout", o.entry_timeout_s, "seconds the kernel trusts a name (default 30; server callbacks invalidate it)");
  app.add_option("--attr-timeout", o.attr_timeout_s, "seconds the kernel trusts attributes (default 30; server callbacks invalidate them)");
  app.add_option("--threads", o.max_threads, "FUSE worker threads at most (default 16)");
  app.add_option("--connect-wait-ms", o.connect_wait_ms, "how long to wait for the server at mount (default 10000)");
  app.add_option("--retry-ms", o.retry_for_ms, "how long a call waits for a restarting server (default 20000)");
  app.add_option("--name", o.client_name, "this client's name in the server's log (default host:mountpoint)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);

  kite::InitLogging("kitefs", log_level);
  size_t colon = server.rfind(':');
  o.server_host = server.substr(0, colon);
  if (colon != std::string::npos) {
    try {
      o.server_port = std::stoi(server.substr(colon + 1));
    } catch (const std::exception&) {
      KLOG_ERROR("bad server address '{}': HOST or HOST:PORT", server);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  auto config = kite::LoadConfig(config_path);
  if (!config.ok()) {
    KLOG_ERROR("{}", config.status().message());
    return 2;
  }
  auto mount = kite::fs::FuseMount::Create(*config, o);
  if (!mount.ok()) {
    KLOG_ERROR("cannot mount: {}", mount.status().message());
    return 1;
  }
  if (!foreground && !o.debug) {
    kite::Status s = (*mount)->Daemonize();
    if (!s.ok()) {
      KLOG_ERROR("{}", s.message());
      return 1;
    }
  }
  kite::Status s = (*mount)->Run();
  if (!s.ok()) {
    KLOG_ERROR("{}", s.message());
    return 1;
  }
  return 0;
}
