// RemotePool: a free list of connections per host.
#include "homed/remote_pool.h"

namespace kite {

StatusOr<std::unique_ptr<RemoteConn>> RemotePool::Acquire(const std::string& host) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& list = idle_[host];
    if (!list.empty()) {
      auto conn = std::move(list.back());
      list.pop_back();
      return conn;
    }
  }
  KITE_ASSIGN_OR_RETURN(std::string address, config_.AddressOf(host));
  return Connect<rpc::RemoteClient>(*tls_, address, config_.remote_port, 2000, kRecvTimeoutMs);
}

StatusOr<std::unique_ptr<RemoteConn>> RemotePool::ConnectLong(const std::string& host, int recv_timeout_ms) {
  KITE_ASSIGN_OR_RETURN(std::string address, config_.AddressOf(host));
  return Connect<rpc::RemoteClient>(*tls_, address, config_.remote_port, 2000, recv_timeout_ms);
}

void RemotePool::Release(const std::string& host, std::unique_ptr<RemoteConn> conn) {
  if (!conn || !conn->transport->isOpen()) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto& list = idle_[host];
  if (list.size() < kMaxIdlePerHost) list.push_back(std::move(conn));
}

}  // namespace kite
