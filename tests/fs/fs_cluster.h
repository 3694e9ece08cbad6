// FsCluster: a kitefs "cluster" on one machine for integration tests — a real kite-fsd on
// 127.0.0.1 (certificates from InitCluster in a temporary directory) and N real kitefs clients
// mounted at N temporary mount points, each with its own host certificate, as N hosts would.
// Everything it started is unmounted and killed by the destructor, also after a failure.
// Needs root (FUSE mounts with allow_other) and the built kite-fsd and kitefs.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "fs/server_pool.h"
#include "tests/support/subprocess.h"

namespace kite::fs::testing {

struct FsClusterOptions {
  int clients = 2;
  int client_timeout_ms = 30000;        // kite-fsd --client-timeout-ms
  std::vector<std::string> client_args = {};  // more kitefs flags, for every client
  std::vector<std::string> server_args = {};  // more kite-fsd flags (--grace-ms ...)
};

class FsCluster {
 public:
  // Makes the directory, the CA and the configs, starts kite-fsd and mounts every client.
  static StatusOr<std::unique_ptr<FsCluster>> Start(const FsClusterOptions& options);
  ~FsCluster();

  const std::filesystem::path& dir() const { return dir_; }
  // Mount point of client i (0-based); paths under it with Path(i, "a/b").
  std::string mount(int i) const;
  std::string Path(int i, const std::string& rel) const { return mount(i) + "/" + rel; }
  int port() const { return port_; }

  // kite-fsd: kill it with `sig` and wait for its death; start it again on the same store
  // (`env`: "NAME=value" for this start only, e.g. a KITE_FSD_FAULT fault point).
  Status KillServer(int sig);
  Status StartServer(const std::vector<std::string>& env = {});
  // Waits up to `timeout` for kite-fsd to end by itself (a fault point killed it).
  StatusOr<kite::testing::ProcessResult> WaitForServerExit(std::chrono::milliseconds timeout);
  kite::testing::Subprocess* server() { return server_.get(); }
  std::string ServerLog() const;

  // kitefs client i: kill -9 it (its mount is left dead, as a crashed host's would be), or
  // unmount it cleanly.
  Status KillClient(int i);
  Status Unmount(int i);
  std::string ClientLog(int i) const;
  // kitefs client i's process (to stop it with SIGSTOP, as a host that hangs).
  kite::testing::Subprocess* client(int i) { return clients_[static_cast<size_t>(i)].get(); }

  // A FileService connection of a third host (node9), for calls the kernel would never make.
  StatusOr<std::unique_ptr<ServerPool>> DirectClient();
  // A kitefs command line for client i (more flags in `extra`), not started.
  std::vector<std::string> ClientArgv(int i, const std::vector<std::string>& extra) const;

 private:
  FsCluster() = default;
  Status Init(const FsClusterOptions& options);
  Status Mount(int i);

  FsClusterOptions options_;
  std::filesystem::path dir_;
  int port_ = 0;
  std::unique_ptr<kite::testing::Subprocess> server_;
  std::string server_log_;  // stderr of earlier server processes
  std::vector<std::unique_ptr<kite::testing::Subprocess>> clients_;
  std::vector<bool> mounted_;
};

// `n` bytes that depend on `seed` (file contents that tell two versions apart).
inline std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

// True when `path` is a mount point of type fuse.kitefs in this mount namespace.
bool IsKitefsMount(const std::string& path);

// A test with a cluster of one kite-fsd and two mounts ("hosts" A and B), started by
// StartCluster() and always torn down; a failed test prints every process's log.
class FsClusterTest : public ::testing::Test {
 protected:
  void StartCluster(FsClusterOptions o = {}) {
    auto c = FsCluster::Start(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    cluster_ = std::move(c).value();
  }
  void TearDown() override {
    if (HasFailure() && cluster_) {
      std::cerr << "---- kite-fsd log ----\n" << cluster_->ServerLog();
      for (int i = 0; i < 2; ++i) std::cerr << "---- kitefs " << i << " log ----\n" << cluster_->ClientLog(i);
    }
    cluster_.reset();
  }
  std::string A(const std::string& rel) { return cluster_->Path(0, rel); }  // host 1
  std::string B(const std::string& rel) { return cluster_->Path(1, rel); }  // host 2

  std::unique_ptr<FsCluster> cluster_;
};

}  // namespace kite::fs::testing
