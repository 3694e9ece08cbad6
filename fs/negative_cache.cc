#include "fs/negative_cache.h"

#include <cstring>

namespace kite::fs {

std::string NegativeCache::Key(uint64_t parent, std::string_view name) {
  std::string k(sizeof parent + name.size(), '\0');
  std::memcpy(k.data(), &parent, sizeof parent);
  std::memcpy(k.data() + sizeof parent, name.data(), name.size());
  return k;
}

uint64_t NegativeCache::Ticket(uint64_t parent) {
  std::lock_guard<std::mutex> lock(mu_);
  // A clear counts for every bucket: the ticket is the sum.
  return changes_[Bucket(parent)] + clears_;
}

void NegativeCache::Insert(uint64_t parent, std::string_view name, uint64_t ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  if (changes_[Bucket(parent)] + clears_ != ticket) return;  // overtaken by an invalidation
  if (names_.size() >= capacity_) names_.clear();            // crude, and always safe
  names_.insert(Key(parent, name));
}

bool NegativeCache::Contains(uint64_t parent, std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  return names_.count(Key(parent, name)) != 0;
}

void NegativeCache::Erase(uint64_t parent, std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  ++changes_[Bucket(parent)];
  names_.erase(Key(parent, name));
}

void NegativeCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  ++clears_;
  names_.clear();
}

size_t NegativeCache::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return names_.size();
}

}  // namespace kite::fs
