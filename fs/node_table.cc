// NodeTable: per-inode cache bookkeeping of the FUSE client.
#include "fs/node_table.h"

namespace kite::fs {

void NodeTable::Entered(uint64_t ino, int64_t ctime_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  Node& n = nodes_[ino];
  ++n.nlookup;
  n.kernel_ctime_ns = ctime_ns;
}

void NodeTable::AttrGiven(uint64_t ino, int64_t ctime_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(ino);
  if (it != nodes_.end()) it->second.kernel_ctime_ns = ctime_ns;
}

void NodeTable::Forget(uint64_t ino, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  if (it->second.nlookup <= n) {
    nodes_.erase(it);  // the kernel holds nothing of it any more: no cache to keep right
  } else {
    it->second.nlookup -= n;
  }
}

NodeTable::OpenDecision NodeTable::Opened(uint64_t ino, int64_t data_version, int64_t ctime_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  Node& n = nodes_[ino];
  OpenDecision d;
  d.keep_cache = n.cache_version == data_version;
  d.invalidate_attr = n.kernel_ctime_ns != ctime_ns;
  n.cache_version = data_version;
  return d;
}

void NodeTable::Changed(uint64_t ino, int64_t new_data_version, int64_t versions_added) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  Node& n = it->second;
  // Our change went through this kernel's page cache, so the cache is still right exactly when
  // nobody else changed the data in between.
  n.cache_version = (n.cache_version >= 0 && n.cache_version + versions_added == new_data_version) ? new_data_version : -1;
  n.kernel_ctime_ns = -1;  // the kernel invalidates its attributes after a write itself
}

void NodeTable::Distrust(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(ino);
  if (it != nodes_.end()) it->second.cache_version = -1;
}

bool NodeTable::Trusted(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(ino);
  return it != nodes_.end() && it->second.cache_version >= 0;
}

bool NodeTable::Known(uint64_t ino) {
  if (ino == 1) return true;  // FUSE_ROOT_ID
  std::lock_guard<std::mutex> lock(mu_);
  return nodes_.count(ino) != 0;
}

std::vector<uint64_t> NodeTable::Inodes() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> out;
  out.reserve(nodes_.size() + 1);
  out.push_back(1);
  for (const auto& [ino, n] : nodes_) {
    if (ino != 1) out.push_back(ino);
  }
  return out;
}

size_t NodeTable::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return nodes_.size();
}

}  // namespace kite::fs
