// MakeSummary: records round-trip, malformed lines are counted and ignored, the format.
#include "cli/make_summary.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kite {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MakeSummary, TalliesRecordsByHost) {
  std::string log;
  for (int i = 0; i < 5; ++i) log += MakeSummary::Record("node2", false);
  for (int i = 0; i < 3; ++i) log += MakeSummary::Record("node3", false);
  log += MakeSummary::Record("", false);  // at home
  log += MakeSummary::Record(MakeSummary::kHome, true);
  log += MakeSummary::Record(MakeSummary::kHome, true);
  MakeSummary s;
  EXPECT_EQ(s.AddLog(log), 0);
  EXPECT_EQ(s.on("node2"), 5);
  EXPECT_EQ(s.on("node3"), 3);
  EXPECT_EQ(s.on("home"), 1);
  EXPECT_EQ(s.sub_makes(), 2);
  EXPECT_EQ(s.recipes(), 11);
  EXPECT_EQ(s.Format(12.34),
            "kite make: 11 recipes, wall time 12.3 s\n"
            "  node2      5 recipes\n"
            "  node3      3 recipes\n"
            "  home       1 recipe, 2 sub-makes\n"
            "  evicted while running: 0 migrated, 0 requeued (rerun from the start)\n");
}

TEST(MakeSummary, RecordsAreShortSingleLines) {
  std::string r = MakeSummary::Record("node17", false);
  EXPECT_EQ(r, "node17 job\n");
  EXPECT_LT(r.size(), 512u);
}

TEST(MakeSummary, MalformedLinesAreCountedNotTallied) {
  MakeSummary s;
  EXPECT_EQ(s.AddLog("node2 job\ngarbage\nnode2 jobs\n job\nnode3 job"), 3);
  EXPECT_EQ(s.on("node2"), 1);
  EXPECT_EQ(s.on("node3"), 1);  // the last line needs no newline
  EXPECT_EQ(s.recipes(), 2);
}

TEST(MakeSummary, EmptyBuildSaysSo) {
  MakeSummary s;
  EXPECT_EQ(s.Format(0.04), "kite make: 0 recipes, wall time 0.0 s\n");
  s.AddLog("node4 job\n");
  EXPECT_THAT(s.Format(1), HasSubstr("kite make: 1 recipe, "));
}

TEST(MakeSummary, EvictedRecipesAreCountedButNotAsMoreRecipes) {
  MakeSummary s;
  s.AddLog("node2 job\nnode3 job\n" + MakeSummary::MoveRecord("node1", false) + MakeSummary::MoveRecord("node2", true) +
           MakeSummary::MoveRecord("node2", true));
  EXPECT_EQ(s.recipes(), 2);
  EXPECT_EQ(s.migrated(), 1);
  EXPECT_EQ(s.requeued(), 2);
  EXPECT_THAT(s.Format(3), HasSubstr("  evicted while running: 1 migrated, 2 requeued (rerun from the start)\n"));
  MakeSummary remote;
  remote.AddLog("node2 job\n");
  EXPECT_THAT(remote.Format(1), HasSubstr("  evicted while running: 0 migrated, 0 requeued"));
  MakeSummary local;
  local.AddLog(MakeSummary::Record("", false) + MakeSummary::Record(MakeSummary::kHome, true));
  EXPECT_THAT(local.Format(1), Not(HasSubstr("evicted")));
}

}  // namespace
}  // namespace kite
