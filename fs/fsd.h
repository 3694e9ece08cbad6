// kite-fsd, the kitefs file server (DESIGN §6): serves one namespace (a domain), kept in a
// RocksDB store, to the kitefs clients of the cluster over mutual-TLS Thrift (FileService,
// common/kitefs.thrift). The TLS material and the listen address come from kite's config;
// the store directory and the port are kite-fsd's own (FileServerOptions).
//
// This header is the whole public surface: main() and the tests use only FileDaemon.
#pragma once

#include <memory>
#include <string>

#include "common/config.h"
#include "common/status.h"

namespace kite::fs {

inline constexpr int kDefaultFsPort = 7072;

struct FileServerOptions {
  std::string store_dir;        // required
  int port = kDefaultFsPort;
  std::string listen_address;   // empty: the config's [host] listen
  int client_timeout_ms = 30000;  // a client silent this long is dead: its open files are released
  // Every change is in the WAL when it returns (it survives kill -9 of kite-fsd); the WAL is
  // synced every sync_interval_ms when something was written, at every fsync, and, with
  // sync_metadata, at every namespace/attribute change before it returns.
  bool sync_metadata = false;
  int sync_interval_ms = 100;
  int ack_timeout_ms = 1000;    // how long a change waits for the other clients' invalidations
  int unlinked_grace_ms = 5000;  // an unlinked file nobody has open stays openable this long
  // After a start, how long clients have to reclaim their locks and reopen their open files
  // (unlinked ones included) before other lock requests are served and open files forgotten.
  int grace_ms = 5000;
};

class FileDaemonImpl;

class FileDaemon {
 public:
  // Opens the store (removing orphans of a crash), loads TLS material and binds the port.
  static StatusOr<std::unique_ptr<FileDaemon>> Create(const Config& config, const FileServerOptions& options);
  ~FileDaemon();

  // Serves until Stop(); returns the reason serving ended.
  Status Run();
  // Callable from any thread (main's signal thread): ends Run().
  void Stop();

 private:
  explicit FileDaemon(std::unique_ptr<FileDaemonImpl> impl);
  std::unique_ptr<FileDaemonImpl> impl_;
};

}  // namespace kite::fs
