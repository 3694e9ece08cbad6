// PidTable: real <-> virtual translation and parents.
#include "syscall-shim/pids/pid_table.h"

#include <gtest/gtest.h>

namespace kite::shim {
namespace {

TEST(PidTableTest, EmptyTableIsIdentity) {
  PidTable t;
  EXPECT_EQ(t.ToVirtual(123), 123);
  EXPECT_EQ(t.ToReal(123), 123);
  EXPECT_FALSE(t.HasVirtual(123));
  EXPECT_EQ(t.ParentOf(5, 6), 6);
}

TEST(PidTableTest, TranslatesTheRoot) {
  PidTable t;
  ASSERT_TRUE(t.Add(/*real=*/900, /*vpid=*/4242, /*vparent=*/4000));
  EXPECT_EQ(t.ToVirtual(900), 4242);
  EXPECT_EQ(t.ToReal(4242), 900);
  EXPECT_TRUE(t.HasVirtual(4242));
  EXPECT_FALSE(t.HasVirtual(900));
  EXPECT_EQ(t.ToVirtual(901), 901);     // another job process: its real pid
  EXPECT_EQ(t.ParentOf(900, 1), 4000);  // the root's parent is at home
  EXPECT_EQ(t.ParentOf(901, 900), 4242);  // a child of the root sees the vpid
  EXPECT_EQ(t.ParentOf(901, 77), 77);
}

TEST(PidTableTest, ZeroAndNegativeUnchanged) {
  PidTable t;
  ASSERT_TRUE(t.Add(900, 4242, 4000));
  EXPECT_EQ(t.ToVirtual(0), 0);
  EXPECT_EQ(t.ToReal(0), 0);
  EXPECT_EQ(t.ToVirtual(-1), -1);
  EXPECT_EQ(t.ToReal(-4242), -4242);
  EXPECT_FALSE(t.HasVirtual(-4242));
}

TEST(PidTableTest, RejectsBadAndDuplicateEntries) {
  PidTable t;
  EXPECT_FALSE(t.Add(0, 1, 1));
  EXPECT_FALSE(t.Add(1, 0, 1));
  EXPECT_FALSE(t.Add(1, 1, -2));
  ASSERT_TRUE(t.Add(10, 20, 1));
  EXPECT_FALSE(t.Add(10, 21, 1));  // real already mapped
  EXPECT_FALSE(t.Add(11, 20, 1));  // vpid already taken
  EXPECT_EQ(t.size(), 1);
}

// A restored job's processes: the root's parent is at home, the others' parents are in the job
// and found by translating their real parent.
TEST(PidTableTest, RestoredProcessesTranslateTheirRealParent) {
  PidTable t;
  ASSERT_TRUE(t.Add(700, 4242, 17));                     // the root, its parent at home
  ASSERT_TRUE(t.Add(701, 5001, PidTable::kRealParent));  // a child of the root
  ASSERT_TRUE(t.Add(702, 5002, PidTable::kRealParent));  // a grandchild
  EXPECT_EQ(t.ParentOf(700, 1), 17);
  EXPECT_EQ(t.ParentOf(701, 700), 4242);
  EXPECT_EQ(t.ParentOf(702, 701), 5001);
  EXPECT_EQ(t.ParentOf(703, 702), 5002);  // forked after the restore: known by its real pid
  EXPECT_EQ(t.ToVirtual(703), 703);
  EXPECT_EQ(t.ToReal(5002), 702);
}

TEST(PidTableTest, GrowsToCapacity) {
  PidTable t;
  for (int i = 0; i < PidTable::kCapacity; ++i) ASSERT_TRUE(t.Add(1000 + i, 5000 + i, 1));
  EXPECT_FALSE(t.Add(3000, 7000, 1));
  for (int i = 0; i < PidTable::kCapacity; ++i) {
    EXPECT_EQ(t.ToVirtual(1000 + i), 5000 + i);
    EXPECT_EQ(t.ToReal(5000 + i), 1000 + i);
  }
}

}  // namespace
}  // namespace kite::shim
