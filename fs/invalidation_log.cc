// InvalidationLog: a bounded deque of events and each listener's acknowledged position.
#include "fs/invalidation_log.h"

#include <algorithm>

namespace kite::fs {

namespace {
constexpr size_t kMaxBatch = 4096;
}

InvalidationLog::InvalidationLog(size_t capacity) : capacity_(capacity) {}

uint64_t InvalidationLog::Append(uint64_t origin, std::vector<Event> events) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& e : events) {
    log_.push_back(Entry{++last_seq_, origin, std::move(e)});
    if (log_.size() > capacity_) log_.pop_front();
  }
  if (!events.empty()) cv_.notify_all();
  return last_seq_;
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
    // Events after `after`; the client's own are skipped but still move it on.
    b.next_seq = after;
    auto it = std::lower_bound(log_.begin(), log_.end(), after + 1,
                               [](const Entry& e, uint64_t seq) { return e.seq < seq; });
    for (; it != log_.end() && b.events.size() < kMaxBatch; ++it) {
      b.next_seq = it->seq;
      if (it->origin != client) b.events.push_back(it->event);
    }
    if (!b.events.empty() || shutdown_) return b;
    if (b.next_seq > after) {
      // Only its own events: acknowledged at once, nothing to apply.
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

std::vector<uint64_t> InvalidationLog::WaitAcked(uint64_t origin, uint64_t seq, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  auto pending = [&] {
    std::vector<uint64_t> behind;
    for (const auto& [id, l] : listeners_) {
      if (id != origin && !l.lagging && l.acked < seq) behind.push_back(id);
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
  cv_.notify_all();
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
