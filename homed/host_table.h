// HostTable: what this home knows of every host, from the remoteds' periodic reports.
// Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "kite/rpc/kite_types.h"

namespace kite {

class HostTable {
 public:
  using Clock = std::chrono::steady_clock;
  // A host whose last report is older than this is unreachable and gets no job.
  static constexpr std::chrono::milliseconds kStaleAfter{3500};

  struct Entry {
    rpc::HostStatus status;
    Clock::time_point received;
    bool reachable = false;
  };

  // Records a report (the newest wins).
  void Update(const rpc::HostStatus& status);
  // Every host that ever reported, sorted by name.
  std::vector<Entry> Snapshot() const;
  // Hosts that can take a guest now, best first: idle, with a free slot, least loaded, with a
  // little randomness among equals so that homes placing at once spread out. `exclude` is
  // never returned (this home's own host).
  std::vector<std::string> Candidates(const std::string& exclude);
  // A slot was claimed at `host`: count it until the host's next report says so itself.
  void NoteClaimed(const std::string& host);

 private:
  mutable std::mutex mu_;
  std::map<std::string, Entry> hosts_;  // GUARDED_BY(mu_)
  std::mt19937 rng_{std::random_device{}()};  // GUARDED_BY(mu_)
};

}  // namespace kite
