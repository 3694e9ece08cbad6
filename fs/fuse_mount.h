// kitefs, the FUSE client of the cluster file system (DESIGN §6): mounts one kite-fsd's
// namespace at a mount point (default /kite) with libfuse3's low-level API, multi-threaded,
// talking FileService (common/kitefs.thrift) over mutual TLS.
//
// Mounted with allow_other and default_permissions: every user of the host sees the tree, and
// the kernel checks permissions against the caller's uid, gid and groups. The kernel caches
// entries, attributes and file data; the client keeps them right at every open
// (close-to-open, fs/node_table.h). Writes go through to the server before write(2) returns.
//
// This header is the whole public surface: main() and the tests use only FuseMount.
#pragma once

#include <memory>
#include <string>

#include "common/config.h"
#include "common/status.h"

namespace kite::fs {

struct MountOptions {
  std::string mountpoint;
  std::string server_host;      // kite-fsd's address
  int server_port = 7072;
  double entry_timeout_s = 30.0;  // how long the kernel trusts a name (callbacks keep it right)
  double attr_timeout_s = 30.0;   // how long it trusts attributes (the same)
  int max_threads = 16;          // FUSE worker threads at most
  int connect_wait_ms = 10000;   // at mount: how long to wait for the server to answer
  int retry_for_ms = 20000;      // later: how long a call waits for a restarting server
  std::string client_name;       // for the server's logs; default host:mountpoint
  bool debug = false;            // libfuse's request trace on stderr
};

class FuseMountImpl;

class FuseMount {
 public:
  // Checks /dev/fuse and the mount point, reaches the server (hello) and mounts. Each failure
  // says which of these it was: FailedPrecondition (no /dev/fuse, mount point not a directory),
  // NotFound (mount point missing), Unavailable (server unreachable), Internal (mount refused).
  static StatusOr<std::unique_ptr<FuseMount>> Create(const Config& config, const MountOptions& options);
  // Unmounts if still mounted.
  ~FuseMount();

  // Detaches from the terminal (fuse_daemonize): call before Run() to run in the background.
  Status Daemonize();
  // Serves requests until the file system is unmounted (fusermount3 -u) or SIGINT/SIGTERM/
  // SIGHUP arrives, then unmounts.
  Status Run();

 private:
  explicit FuseMount(std::unique_ptr<FuseMountImpl> impl);
  std::unique_ptr<FuseMountImpl> impl_;
};

}  // namespace kite::fs
