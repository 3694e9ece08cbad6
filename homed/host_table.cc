// HostTable: placement order is least load per slot first, with jitter (DESIGN §7).
#include "homed/host_table.h"

#include <algorithm>

namespace kite {

void HostTable::Update(const rpc::HostStatus& status) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = hosts_[status.host];
  e.status = status;
  e.received = Clock::now();
}

std::vector<HostTable::Entry> HostTable::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Entry> out;
  auto now = Clock::now();
  for (const auto& [name, e] : hosts_) {
    Entry copy = e;
    copy.reachable = now - e.received < kStaleAfter;
    out.push_back(std::move(copy));
  }
  return out;
}

std::vector<std::string> HostTable::Candidates(const std::string& home) {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = Clock::now();
  std::uniform_real_distribution<double> jitter(0.0, 0.25);
  std::vector<std::pair<double, std::string>> scored;
  for (const auto& [name, e] : hosts_) {
    const rpc::HostStatus& s = e.status;
    if (name == home || now - e.received >= kStaleAfter) continue;
    if (s.state != rpc::HostState::IDLE || s.slots <= 0) continue;
    int mine_reported = 0;
    for (const auto& g : s.guests) mine_reported += g.home_host == home;
    auto it = mine_.find(name);
    const int free = s.free_slots + mine_reported - (it == mine_.end() ? 0 : it->second);
    if (free <= 0) continue;
    double busy = static_cast<double>(s.slots - free) / s.slots;
    scored.emplace_back(busy + s.load1 / s.slots + jitter(rng_), name);
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (auto& [score, name] : scored) out.push_back(std::move(name));
  return out;
}

void HostTable::NoteClaimed(const std::string& host) {
  std::lock_guard<std::mutex> lock(mu_);
  ++mine_[host];
}

void HostTable::NoteReleased(const std::string& host) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = mine_.find(host);
  if (it != mine_.end() && --it->second <= 0) mine_.erase(it);
}

}  // namespace kite
