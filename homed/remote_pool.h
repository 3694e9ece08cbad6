// RemotePool: kept-open mutual-TLS connections to the remoteds, so a job start costs round
// trips, not a TLS handshake. Thread-safe; a leased connection belongs to one thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/rpc.h"
#include "kite/rpc/Remote.h"

namespace kite {

using RemoteConn = Conn<rpc::RemoteClient>;

class RemotePool {
 public:
  // Reads on a pooled connection time out after this long: a long poll waits at most
  // kLongPollMs, so a silent peer this long is a dead host.
  static constexpr int kRecvTimeoutMs = 6000;
  static constexpr int kLongPollMs = 1000;

  RemotePool(const Config& config, std::shared_ptr<TlsContext> tls) : config_(config), tls_(std::move(tls)) {}

  // A connection to `host`'s remoted: an idle pooled one, or a new one.
  StatusOr<std::unique_ptr<RemoteConn>> Acquire(const std::string& host);
  // A fresh connection whose reads wait up to `recv_timeout_ms`, for the long calls of a move
  // (checkpoint_job and restore_job wait up to 30 s at the remoted): not pooled.
  StatusOr<std::unique_ptr<RemoteConn>> ConnectLong(const std::string& host, int recv_timeout_ms);
  // Gives a healthy connection back. Drop (destroy) one whose call failed instead.
  void Release(const std::string& host, std::unique_ptr<RemoteConn> conn);
  // Runs `fn(client)` on a pooled connection; retries once on a fresh connection when a
  // pooled one turns out to be dead (the peer restarted).
  template <typename Fn>
  Status With(const std::string& host, const std::string& what, Fn&& fn) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto conn = Acquire(host);
      if (!conn.ok()) return conn.status();
      Status s = Call(what + " on " + host, [&] { fn(*conn.value()->client); });
      if (s.code() != StatusCode::kUnavailable) {
        Release(host, std::move(conn).value());
        return s;
      }
      if (attempt == 1) return s;
    }
    return OkStatus();
  }

 private:
  static constexpr size_t kMaxIdlePerHost = 32;
  const Config& config_;
  std::shared_ptr<TlsContext> tls_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::unique_ptr<RemoteConn>>> idle_;  // GUARDED_BY(mu_)
};

}  // namespace kite
