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
  // little randomness among equals so that homes placing at once spread out. `home` (this
  // home's own host) is never returned.
  //
  // A host's free slots are its last report's, corrected by this home's own claims and
  // releases since then: the report lists the guests of each home, so this home's jobs in it
  // are replaced by the ones it holds now. Without that correction a build's short recipes
  // would see their own just-released slots as taken for up to a report period (1 s) and run
  // at home. Other homes' changes show with the next report; the remoted refuses a stale claim.
  std::vector<std::string> Candidates(const std::string& home);
  // This home claimed a slot at `host` / gave it back (the job was released there).
  void NoteClaimed(const std::string& host);
  void NoteReleased(const std::string& host);

 private:
  mutable std::mutex mu_;
  std::map<std::string, Entry> hosts_;  // GUARDED_BY(mu_)
  std::map<std::string, int> mine_;     // GUARDED_BY(mu_): this home's jobs on each host
  std::mt19937 rng_{std::random_device{}()};  // GUARDED_BY(mu_)
};

}  // namespace kite
