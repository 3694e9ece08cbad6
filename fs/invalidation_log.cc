// InvalidationLog: a bounded deque of events with their recipients, each listener's acknowledged
// position, and who holds which inode.
#include "fs/invalidation_log.h"

#include <algorithm>

namespace kite::fs {

namespace {
constexpr size_t kMaxBatch = 4096;

void InsertSorted(std::vector<uint64_t>* v, uint64_t x) {
  auto it = std::lower_bound(v->begin(), v->end(), x);
  if (it == v->end() || *it != x) v->insert(it, x);
}
bool Contains(const std::vector<uint64_t>& v, uint64_t x) { return std::binary_search(v.begin(), v.end(), x); }
}  // namespace

InvalidationLog::InvalidationLog(size_t capacity) : capacity_(capacity) {}

void InvalidationLog::Hold(uint64_t client, uint64_t ino) {
  if (ino == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  InsertSorted(&holders_[ino], client);
}

void InvalidationLog::Hold(uint64_t client, const std::vector<uint64_t>& inos) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t ino : inos) {
    if (ino != 0) InsertSorted(&holders_[ino], client);
  }
}

InvalidationLog::Published InvalidationLog::Append(uint64_t origin, std::vector<Event> events) {
  std::lock_guard<std::mutex> lock(mu_);
  Published p;
  for (auto& e : events) {
    std::vector<uint64_t> to;
    for (uint64_t ino : {e.ino, e.parent}) {
      if (ino == 0) continue;
      auto it = holders_.find(ino);
      if (it == holders_.end()) continue;
      for (uint64_t c : it->second) {
        if (c != origin) InsertSorted(&to, c);
      }
    }
    if (to.empty()) continue;  // nobody else may cache it
    for (uint64_t c : to) InsertSorted(&p.recipients, c);
    log_.push_back(Entry{++last_seq_, std::move(to), std::move(e)});
    if (log_.size() > capacity_) log_.pop_front();
  }
  p.seq = last_seq_;
  if (!p.recipients.empty()) cv_.notify_all();
  return p;
}

InvalidationLog::Batch InvalidationLog::Wait(uint64_t client, uint64_t after, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mu_);
  Listener& l = listeners_[client];
  if (after > l.acked || l.acked > last_seq_) l.acked = std::min(after, last_seq_);
  l.lagging = false;
  cv_.notify_all();  // WaitAcked may be waiting for this acknowledgement
  Batch b;
  const auto deadline = Clock::now() + wait;
  for (;;) {
    uint64_t first = log_.empty() ? last_seq_ + 1 : log_.front().seq;
    // Events it has not seen are gone, or it counts from before a restart.
    if ((after + 1 < first && after < last_seq_) || after > last_seq_) {
      b.overflow = true;
      b.next_seq = last_seq_;
      return b;
    }
    // Events after `after`; those for others are skipped but still move it on.
    b.next_seq = after;
    auto it = std::lower_bound(log_.begin(), log_.end(), after + 1,
                               [](const Entry& e, uint64_t seq) { return e.seq < seq; });
    for (; it != log_.end() && b.events.size() < kMaxBatch; ++it) {
      b.next_seq = it->seq;
      if (Contains(it->recipients, client)) b.events.push_back(it->event);
    }
    if (!b.events.empty() || shutdown_) return b;
    if (b.next_seq > after) {
      // Nothing for it: acknowledged at once, nothing to apply.
      listeners_[client].acked = std::max(listeners_[client].acked, b.next_seq);
      after = b.next_seq;
      cv_.notify_all();
    }
    bool timed_out = cv_.wait_until(lock, deadline) == std::cv_status::timeout;
    if (!listeners_.count(client)) return b;  // forgotten meanwhile
    if (timed_out) {
      b.next_seq = std::max(b.next_seq, after);
      return b;
    }
  }
}

std::vector<uint64_t> InvalidationLog::WaitAcked(const Published& p, std::chrono::milliseconds timeout) {
  if (p.recipients.empty()) return {};
  std::unique_lock<std::mutex> lock(mu_);
  auto pending = [&] {
    std::vector<uint64_t> behind;
    for (uint64_t id : p.recipients) {
      auto it = listeners_.find(id);
      if (it != listeners_.end() && !it->second.lagging && it->second.acked < p.seq) behind.push_back(id);
    }
    return behind;
  };
  cv_.wait_for(lock, timeout, [&] { return shutdown_ || pending().empty(); });
  if (shutdown_) return {};
  std::vector<uint64_t> behind = pending();
  for (uint64_t id : behind) listeners_[id].lagging = true;
  return behind;
}

void InvalidationLog::Forget(uint64_t client) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.erase(client);
  for (auto it = holders_.begin(); it != holders_.end();) {
    auto& v = it->second;
    auto pos = std::lower_bound(v.begin(), v.end(), client);
    if (pos != v.end() && *pos == client) v.erase(pos);
    it = v.empty() ? holders_.erase(it) : std::next(it);
  }
  cv_.notify_all();
}

size_t InvalidationLog::held_inodes() {
  std::lock_guard<std::mutex> lock(mu_);
  return holders_.size();
}

uint64_t InvalidationLog::last_seq() {
  std::lock_guard<std::mutex> lock(mu_);
  return last_seq_;
}

void InvalidationLog::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

}  // namespace kite::fs
