// OpenTable: handles and client liveness, in memory. A server restart forgets them; clients
// re-register with their next call, and reads and writes do not need a handle.
#include "fs/open_table.h"

#include <fcntl.h>

#include "common/log.h"

namespace kite::fs {

OpenTable::OpenTable(Store* store, std::chrono::milliseconds client_timeout)
    : store_(store), client_timeout_(client_timeout) {}

void OpenTable::Touch(uint64_t client_id, const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  Client& c = clients_[client_id];
  if (!name.empty() && c.name != name) {
    KLOG_INFO("client {:016x} is {}", client_id, name);
    c.name = name;
  }
  c.last_seen = Clock::now();
}

uint64_t OpenTable::Add(uint64_t client_id, uint64_t ino, int flags) {
  uint64_t h = NewHandle();
  Add(client_id, ino, flags, h);
  return h;
}

uint64_t OpenTable::NewHandle() {
  std::lock_guard<std::mutex> lock(mu_);
  return next_handle_++;
}

void OpenTable::Add(uint64_t client_id, uint64_t ino, int flags, uint64_t h) {
  std::lock_guard<std::mutex> lock(mu_);
  handles_[h] = Handle{client_id, ino, flags};
  by_ino_[ino].insert(h);
  Client& c = clients_[client_id];
  c.handles.insert(h);
  c.last_seen = Clock::now();
}

bool OpenTable::Knows(uint64_t client_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return clients_.count(client_id) != 0;
}

Status OpenTable::RemoveLocked(uint64_t handle) {
  auto it = handles_.find(handle);
  if (it == handles_.end()) return OkStatus();
  uint64_t ino = it->second.ino;
  auto c = clients_.find(it->second.client_id);
  if (c != clients_.end()) c->second.handles.erase(handle);
  auto bi = by_ino_.find(ino);
  if (bi != by_ino_.end() && bi->second.erase(handle) && bi->second.empty()) by_ino_.erase(bi);
  handles_.erase(it);
  return store_->Release(ino);
}

Status OpenTable::Remove(uint64_t client_id, uint64_t handle) {
  std::lock_guard<std::mutex> lock(mu_);
  Client& c = clients_[client_id];
  c.last_seen = Clock::now();
  auto it = handles_.find(handle);
  if (it == handles_.end()) return OkStatus();
  if (it->second.client_id != client_id)
    return PermissionDenied("release handle " + std::to_string(handle) + ": it belongs to another client");
  return RemoveLocked(handle);
}

std::vector<uint64_t> OpenTable::ExpireIdle(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> expired;
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (now - it->second.last_seen <= client_timeout_) {
      ++it;
      continue;
    }
    KLOG_WARN("client {:016x} ({}) silent for over {} ms: releasing its {} open file(s)", it->first,
              it->second.name.empty() ? "unnamed" : it->second.name, client_timeout_.count(),
              it->second.handles.size());
    std::set<uint64_t> handles = std::move(it->second.handles);
    for (uint64_t h : handles) {
      Status s = RemoveLocked(h);
      if (!s.ok()) KLOG_WARN("releasing handle {}: {}", h, s.message());
    }
    expired.push_back(it->first);
    it = clients_.erase(it);
  }
  return expired;
}

OpenTable::Usage OpenTable::UsageOf(uint64_t ino, uint64_t except) {
  std::lock_guard<std::mutex> lock(mu_);
  Usage u;
  auto bi = by_ino_.find(ino);
  if (bi == by_ino_.end()) return u;
  for (uint64_t h : bi->second) {
    const Handle& handle = handles_.at(h);
    if (except != 0 && handle.client_id == except) continue;
    int acc = handle.flags & O_ACCMODE;
    if (acc == O_RDONLY || acc == O_RDWR) ++u.readers;
    if (acc == O_WRONLY || acc == O_RDWR) ++u.writers;
    u.clients.insert(handle.client_id);
  }
  return u;
}

size_t OpenTable::client_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return clients_.size();
}

}  // namespace kite::fs
