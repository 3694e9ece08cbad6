// ServerPool: the kitefs client's connections to its kite-fsd — mutual-TLS Thrift connections
// (common/rpc.h) kept open and shared by the FUSE worker threads, one call at a time each.
//
// Call() runs one FileService call and turns what it throws into a Status: FsError keeps its
// errno (fs/fs_errors.h), a transport failure is Unavailable. A server that is restarting is
// waited for, up to retry_for_ms, and every call is sent again after a transport failure: each
// is idempotent (lookup, read, write at an offset, ...) or a change with a request id (mkdir,
// create, rename, an append, ...: the server answers a resend with the first send's outcome,
// fs/change_ids.h). A new call that is not idempotent must carry a request id too.
//
// Thread safety: Call() from any number of threads; each gets its own connection.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <thrift/transport/TTransportException.h>

#include "common/rpc.h"
#include "common/status.h"
#include "kite/fsrpc/FileService.h"

namespace kite::fs {

class ServerPool {
 public:
  struct Options {
    std::string host;
    int port = 7072;
    int connect_timeout_ms = 3000;
    int call_timeout_ms = 60000;  // a read that takes longer means the server is gone
    int retry_for_ms = 20000;     // how long a call waits for a restarting server
    size_t max_idle = 16;         // connections kept open between calls
  };
  using Client = fsrpc::FileServiceClient;

  ServerPool(std::shared_ptr<TlsContext> tls, Options options);

  // Runs fn(Client&) (one Thrift call) on a pooled connection; see the header comment.
  template <typename Fn>
  Status Call(std::string_view op, Fn&& fn);

  const std::string& peer() const { return peer_; }
  // From now on calls fail at once instead of waiting for the server (unmounting).
  void Shutdown() { shutdown_ = true; }

 private:
  // An idle connection, or a new one.
  StatusOr<std::unique_ptr<Conn<Client>>> Acquire();
  void Return(std::unique_ptr<Conn<Client>> conn);
  void DropIdle();  // after a transport failure: the other idle connections are likely dead too
  Status FromFsError(const fsrpc::FsError& e, std::string_view op);

  const std::shared_ptr<TlsContext> tls_;
  const Options options_;
  const std::string peer_;
  std::atomic<bool> shutdown_{false};
  std::mutex mu_;
  std::vector<std::unique_ptr<Conn<Client>>> idle_;  // GUARDED_BY(mu_)
};

template <typename Fn>
Status ServerPool::Call(std::string_view op, Fn&& fn) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.retry_for_ms);
  auto backoff = std::chrono::milliseconds(50);
  for (;;) {
    Status failure;
    auto conn = Acquire();
    if (!conn.ok()) {
      failure = conn.status();  // not sent: always worth another try
    } else {
      try {
        fn(*(*conn)->client);
        Return(std::move(*conn));
        return OkStatus();
      } catch (const fsrpc::FsError& e) {
        Return(std::move(*conn));
        return FromFsError(e, op);
      } catch (const apache::thrift::transport::TTransportException& e) {
        DropIdle();
        failure = Unavailable(std::string(op) + ": " + peer_ + ": " + e.what());
      } catch (const std::exception& e) {
        return Internal(std::string(op) + ": " + peer_ + ": " + e.what());
      }
    }
    if (shutdown_ || Clock::now() + backoff > deadline) return failure.With("kite-fsd unreachable");
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

}  // namespace kite::fs
