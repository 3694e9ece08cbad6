// kite-fsd: serves a kitefs store until SIGTERM/SIGINT (common/daemon_main.h). Its own flags
// (--store, --port, --listen, --client-timeout-ms, --ack-timeout-ms, --unlinked-grace-ms,
// --grace-ms) are taken off the command line here; the
// shared main reads the rest (--config, --log-level) and the config (TLS, listen address).
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "common/daemon_main.h"
#include "fs/fsd.h"

namespace {

kite::fs::FileServerOptions g_options;

// RunDaemonMain builds the daemon from the config alone; this passes the flags along.
struct FsdWithFlags {
  static kite::StatusOr<std::unique_ptr<kite::fs::FileDaemon>> Create(const kite::Config& config) {
    return kite::fs::FileDaemon::Create(config, g_options);
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kite-fsd's own options"};
  app.set_help_flag();  // --help goes on to the shared main, after ours are printed
  app.allow_extras();
  app.add_option("--store", g_options.store_dir, "directory of the RocksDB store (made if missing)");
  app.add_option("--port", g_options.port, "FileService port (default 7072)");
  app.add_option("--listen", g_options.listen_address, "address to listen on (default: the config's [host] listen)");
  app.add_option("--client-timeout-ms", g_options.client_timeout_ms,
                 "a client silent this long is dead and its open files are released (default 30000)");
  app.add_option("--ack-timeout-ms", g_options.ack_timeout_ms,
                 "how long a change waits for the other clients to apply its invalidations (default 1000)");
  app.add_option("--unlinked-grace-ms", g_options.unlinked_grace_ms,
                 "an unlinked file nobody has open stays openable by number this long (default 5000)");
  app.add_option("--grace-ms", g_options.grace_ms,
                 "after a start, how long clients have to reclaim locks and reopen files (default 5000)");
  app.add_flag("--sync-metadata", g_options.sync_metadata,
               "sync the WAL at every namespace or attribute change before it returns (default: every "
               "--sync-interval-ms, and at fsync; every change survives kill -9 of kite-fsd either way)");
  app.add_option("--sync-interval-ms", g_options.sync_interval_ms,
                 "how often the WAL is synced when something was written (default 100; 0: only at fsync)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::vector<std::string> rest = app.remaining();
  for (const auto& a : rest) {
    if (a == "--help" || a == "-h") std::cout << app.help() << "\n";
  }
  std::vector<char*> args = {argv[0]};
  for (auto& a : rest) args.push_back(a.data());
  args.push_back(nullptr);
  return kite::RunDaemonMain<FsdWithFlags>(static_cast<int>(args.size() - 1), args.data(), "fsd",
                                           "kite-fsd: the kitefs file server of a kite cluster (see docs/kitefs.md)");
}
