// MakeSummary: log lines are "<where> job", "home make", "<to> migrated" or "<to> requeued".
#include "cli/make_summary.h"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace kite {

std::string MakeSummary::Record(std::string_view where, bool sub_make) {
  std::string line(where.empty() ? std::string_view(kHome) : where);
  line += sub_make ? " make\n" : " job\n";
  return line;
}

std::string MakeSummary::MoveRecord(std::string_view to, bool requeued) {
  std::string line(to.empty() ? std::string_view(kHome) : to);
  line += requeued ? " requeued\n" : " migrated\n";
  return line;
}

int MakeSummary::AddLog(std::string_view log) {
  int bad = 0;
  size_t start = 0;
  while (start < log.size()) {
    size_t end = log.find('\n', start);
    if (end == std::string_view::npos) end = log.size();
    std::string_view line = log.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    std::string_view where = line.substr(0, sp), kind = sp == std::string_view::npos ? "" : line.substr(sp + 1);
    if (where.empty() || where.size() > 255 ||
        (kind != "job" && kind != "make" && kind != "migrated" && kind != "requeued")) {
      ++bad;
      continue;
    }
    if (kind == "make") ++sub_makes_;
    else if (kind == "migrated") ++migrated_;
    else if (kind == "requeued") ++requeued_;
    else ++by_host_[std::string(where)];
  }
  return bad;
}

int MakeSummary::recipes() const {
  int n = sub_makes_;
  for (const auto& [host, count] : by_host_) n += count;
  return n;
}

int MakeSummary::on(const std::string& where) const {
  auto it = by_host_.find(where);
  return it == by_host_.end() ? 0 : it->second;
}

std::string MakeSummary::Format(double wall_seconds) const {
  char buf[512];
  snprintf(buf, sizeof buf, "kite make: %d recipe%s, wall time %.1f s\n", recipes(), recipes() == 1 ? "" : "s",
           wall_seconds);
  std::string out = buf;
  std::vector<std::pair<std::string, int>> rows;
  size_t width = 4;
  for (const auto& [host, count] : by_host_) {
    if (host != kHome) rows.emplace_back(host, count);
    width = std::max(width, host.size());
  }
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (on(kHome) > 0 || sub_makes_ > 0) rows.emplace_back(kHome, on(kHome));
  for (const auto& [host, count] : rows) {
    snprintf(buf, sizeof buf, "  %-*s %6d recipe%s", static_cast<int>(width), host.c_str(), count, count == 1 ? "" : "s");
    out += buf;
    if (host == kHome && sub_makes_ > 0) out += ", " + std::to_string(sub_makes_) + " sub-make" + (sub_makes_ == 1 ? "" : "s");
    out += "\n";
  }
  // Said whenever recipes went to other hosts, zeros included: a host whose owner came back
  // while its guests were ending on their own is cleared with nothing moved.
  const bool remote = std::any_of(by_host_.begin(), by_host_.end(),
                                  [](const auto& e) { return e.first != kHome && e.second > 0; });
  if (remote || migrated_ > 0 || requeued_ > 0) {
    snprintf(buf, sizeof buf, "  evicted while running: %d migrated, %d requeued (rerun from the start)\n", migrated_,
             requeued_);
    out += buf;
  }
  return out;
}

}  // namespace kite
