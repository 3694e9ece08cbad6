// FairShare: the share is recomputed at every request from the homes seen asking recently,
// so it follows homes that come and go without any message between homes.
#include "remoted/fair_share.h"

namespace kite {

bool FairShare::Admit(const std::string& home, Clock::time_point now, std::string* why) {
  last_ask_[home] = now;
  for (auto it = last_ask_.begin(); it != last_ask_.end();) {
    if (now - it->second > kDemandWindow) it = last_ask_.erase(it);
    else ++it;
  }
  const int competing = static_cast<int>(last_ask_.size());
  if (competing <= 1) return true;
  const int share = (slots_ + competing - 1) / competing;
  const int mine = held(home);
  if (mine < share) return true;
  *why = "fair share: " + home + " holds " + std::to_string(mine) + " of " + std::to_string(slots_) +
         " slots while " + std::to_string(competing) + " homes want them (share " + std::to_string(share) + ")";
  return false;
}

void FairShare::Released(const std::string& home) {
  auto it = held_.find(home);
  if (it == held_.end()) return;
  if (--it->second <= 0) held_.erase(it);
}

int FairShare::held(const std::string& home) const {
  auto it = held_.find(home);
  return it == held_.end() ? 0 : it->second;
}

int FairShare::Competing(Clock::time_point now) const {
  int n = 0;
  for (const auto& [home, at] : last_ask_) n += now - at <= kDemandWindow;
  return n;
}

}  // namespace kite
