// FairShare: how a host gives its guest slots fairly among competing homes (DESIGN §7).
// A home "competes" while it has asked for a slot here in the last kDemandWindow (a refused
// request counts: it is demand). While several homes compete, a home already holding
// ceil(slots / competing homes) is refused; otherwise any free slot is given (work-conserving:
// a lone home may use every slot). Not thread-safe: JobManager calls it under its mutex.
#pragma once

#include <chrono>
#include <map>
#include <string>

namespace kite {

class FairShare {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kDemandWindow{2000};

  explicit FairShare(int slots) : slots_(slots) {}

  // `home` asks for a slot at `now` (recorded as demand either way). False, with the reason
  // in *why, when the home holds its share while another home competes.
  bool Admit(const std::string& home, Clock::time_point now, std::string* why);
  // A slot was taken / given back by `home`.
  void Acquired(const std::string& home) { ++held_[home]; }
  void Released(const std::string& home);

  int held(const std::string& home) const;
  // Homes that asked within the window before `now`.
  int Competing(Clock::time_point now) const;

 private:
  const int slots_;
  std::map<std::string, int> held_;                     // homes holding > 0 slots
  std::map<std::string, Clock::time_point> last_ask_;   // recent demand, pruned in Admit
};

}  // namespace kite
