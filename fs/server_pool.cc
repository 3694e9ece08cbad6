// ServerPool: a stack of idle connections; a new one is made when none is idle.
#include "fs/server_pool.h"

#include "fs/fs_errors.h"

namespace kite::fs {

ServerPool::ServerPool(std::shared_ptr<TlsContext> tls, Options options)
    : tls_(std::move(tls)), options_(std::move(options)),
      peer_("kite-fsd " + options_.host + ":" + std::to_string(options_.port)) {}

StatusOr<std::unique_ptr<Conn<ServerPool::Client>>> ServerPool::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Conn<Client>> conn = std::move(idle_.back());
      idle_.pop_back();
      return conn;
    }
  }
  return Connect<Client>(*tls_, options_.host, options_.port, options_.connect_timeout_ms, options_.call_timeout_ms);
}

void ServerPool::Return(std::unique_ptr<Conn<Client>> conn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < options_.max_idle) idle_.push_back(std::move(conn));
}

void ServerPool::DropIdle() {
  std::vector<std::unique_ptr<Conn<Client>>> dead;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dead.swap(idle_);
  }
}

Status ServerPool::FromFsError(const fsrpc::FsError& e, std::string_view op) {
  Status s(static_cast<StatusCode>(e.code), std::string(op) + ": " + e.message);
  // The server's message names the errno; if it does not (an older server), add it.
  if (ErrnoOf(s) != e.err) s = FsError(e.err, std::string(op) + ": " + e.message);
  return s;
}

}  // namespace kite::fs
