// MakeSummary: the tally `kite make` prints at the end: how many recipes ran on each host
// ("home" for the home host) and the wall time. kite-shell appends one Record() line per
// recipe to a log file that `kite make` reads back. Not thread-safe.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace kite {

class MakeSummary {
 public:
  static constexpr const char* kHome = "home";

  // One log line: where a recipe ran (a host name, or kHome) and whether it was a sub-make
  // (a recursive make, kept at home). Short enough for one atomic O_APPEND write.
  static std::string Record(std::string_view where, bool sub_make);
  // One log line: a running recipe was evicted to `to`, migrated or requeued (rerun).
  static std::string MoveRecord(std::string_view to, bool requeued);

  // Adds every well-formed line of a log; returns how many lines were malformed (ignored).
  int AddLog(std::string_view log);

  int recipes() const;          // all recipes, sub-makes included
  int on(const std::string& where) const;  // recipes (not sub-makes) that ran there
  int sub_makes() const { return sub_makes_; }
  int migrated() const { return migrated_; }
  int requeued() const { return requeued_; }

  // "kite make: 412 recipes, wall time 34.2 s\n  node2  180 recipes\n ... home  ... , 12 sub-makes\n"
  // Hosts by count, most first; home last.
  std::string Format(double wall_seconds) const;

 private:
  std::map<std::string, int> by_host_;
  int sub_makes_ = 0;
  int migrated_ = 0;
  int requeued_ = 0;
};

}  // namespace kite
