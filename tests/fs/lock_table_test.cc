// LockSet's fcntl/flock rules and LockTable's bounded waits and grace period.
#include "fs/lock_table.h"

#include <fcntl.h>

#include <gtest/gtest.h>

#include <thread>

#include "fs/fs_errors.h"
#include "tests/support/status_matchers.h"

namespace kite::fs {
namespace {

using std::chrono::milliseconds;

HeldLock Posix(uint64_t client, uint64_t owner, int type, int64_t start, int64_t end) {
  return HeldLock{kLockPosix, type, start, end, LockOwner{client, owner}, 100};
}
HeldLock Flock(uint64_t client, uint64_t owner, int type) {
  return HeldLock{kLockFlock, type, 0, kLockToEof, LockOwner{client, owner}, 100};
}

// The locks held on `ino`, as "owner:type:start-end" strings (type r or w).
std::vector<std::string> Held(const LockSet& set, uint64_t ino) {
  std::vector<std::string> out;
  for (const auto& [i, l] : set.All()) {
    if (i != ino) continue;
    out.push_back(std::to_string(l.owner.owner) + ":" + (l.type == F_WRLCK ? "w" : "r") + ":" + std::to_string(l.start) +
                  "-" + (l.end == kLockToEof ? "eof" : std::to_string(l.end)));
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(LockSetTest, RangesSplitMergeAndConvertLikeFcntl) {
  LockSet s;
  s.Apply(1, Posix(7, 1, F_WRLCK, 0, 99));
  s.Apply(1, Posix(7, 1, F_UNLCK, 40, 59));  // splits
  EXPECT_EQ(Held(s, 1), (std::vector<std::string>{"1:w:0-39", "1:w:60-99"}));
  s.Apply(1, Posix(7, 1, F_RDLCK, 30, 69));  // downgrade across the hole
  EXPECT_EQ(Held(s, 1), (std::vector<std::string>{"1:r:30-69", "1:w:0-29", "1:w:70-99"}));
  s.Apply(1, Posix(7, 1, F_WRLCK, 30, 69));  // adjacent write ranges merge back into one
  EXPECT_EQ(Held(s, 1), (std::vector<std::string>{"1:w:0-99"}));
  s.Apply(1, Posix(7, 1, F_WRLCK, 100, kLockToEof));
  EXPECT_EQ(Held(s, 1), (std::vector<std::string>{"1:w:0-eof"}));
  s.Apply(1, Posix(7, 1, F_UNLCK, 0, kLockToEof));
  EXPECT_TRUE(s.empty());
}

TEST(LockSetTest, ConflictsNeedAnotherOwnerOverlapAndAWriter) {
  LockSet s;
  s.Apply(1, Posix(7, 1, F_RDLCK, 0, 9));
  EXPECT_FALSE(s.Conflict(1, Posix(7, 1, F_WRLCK, 0, 9)));  // its own lock
  EXPECT_FALSE(s.Conflict(1, Posix(8, 1, F_RDLCK, 0, 9)));  // readers share
  EXPECT_FALSE(s.Conflict(1, Posix(8, 1, F_WRLCK, 10, 20)));  // no overlap
  EXPECT_FALSE(s.Conflict(2, Posix(8, 1, F_WRLCK, 0, 9)));  // another inode
  EXPECT_FALSE(s.Conflict(1, Flock(8, 1, F_WRLCK)));  // flock and fcntl locks do not meet
  auto c = s.Conflict(1, Posix(7, 2, F_WRLCK, 5, 5));  // same client, another owner (process)
  ASSERT_TRUE(c);
  EXPECT_EQ(c->owner.owner, 1u);
  EXPECT_TRUE(s.Conflict(1, Posix(8, 1, F_WRLCK, 9, kLockToEof)));
}

TEST(LockSetTest, FlockIsOneWholeFileLockPerOwner) {
  LockSet s;
  s.Apply(1, Flock(7, 1, F_RDLCK));
  s.Apply(1, Flock(8, 2, F_RDLCK));
  EXPECT_FALSE(s.Conflict(1, Flock(9, 3, F_RDLCK)));
  EXPECT_TRUE(s.Conflict(1, Flock(9, 3, F_WRLCK)));
  s.Apply(1, Flock(7, 1, F_WRLCK));  // converted, not added
  EXPECT_EQ(Held(s, 1), (std::vector<std::string>{"1:w:0-eof", "2:r:0-eof"}));
  EXPECT_TRUE(s.Holds(1, kLockFlock, LockOwner{7, 1}));
  EXPECT_FALSE(s.Holds(1, kLockPosix, LockOwner{7, 1}));
  EXPECT_EQ(s.ReleaseClient(7), 1u);
  EXPECT_EQ(Held(s, 1), (std::vector<std::string>{"2:r:0-eof"}));
}

TEST(LockTableTest, AWaiterGetsTheLockWhenItIsReleased) {
  LockTable t(milliseconds(0));
  ASSERT_OK(t.Set(1, Posix(7, 1, F_WRLCK, 0, 9), LockTable::Clock::now(), false));
  // No wait: EAGAIN at once.
  EXPECT_EQ(ErrnoOf(t.Set(1, Posix(8, 1, F_WRLCK, 0, 0), LockTable::Clock::now(), false)), EAGAIN);
  Status waited;
  std::thread waiter([&] {
    waited = t.Set(1, Posix(8, 1, F_WRLCK, 0, 0), LockTable::Clock::now() + std::chrono::minutes(5), false);
  });
  std::this_thread::sleep_for(milliseconds(50));
  ASSERT_OK(t.Set(1, Posix(7, 1, F_UNLCK, 0, 9), LockTable::Clock::now(), false));
  waiter.join();
  EXPECT_OK(waited);
  auto c = t.Test(1, Posix(7, 1, F_RDLCK, 0, 100), LockTable::Clock::now());
  ASSERT_OK(c);
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->owner.client_id, 8u);
}

TEST(LockTableTest, ExpiredClientsLocksWakeWaitersAndShutdownEndsWaits) {
  LockTable t(milliseconds(0));
  ASSERT_OK(t.Set(1, Flock(7, 1, F_WRLCK), LockTable::Clock::now(), false));
  Status waited;
  std::thread waiter([&] {
    waited = t.Set(1, Flock(8, 1, F_RDLCK), LockTable::Clock::now() + std::chrono::minutes(5), false);
  });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(t.ReleaseClient(7), 1u);
  waiter.join();
  EXPECT_OK(waited);
  std::thread blocked([&] {
    waited = t.Set(1, Flock(9, 1, F_WRLCK), LockTable::Clock::now() + std::chrono::minutes(5), false);
  });
  std::this_thread::sleep_for(milliseconds(50));
  t.Shutdown();
  blocked.join();
  EXPECT_EQ(ErrnoOf(waited), EINTR);
}

TEST(LockTableTest, GracePeriodServesReclaimsAndUnlocksOnly) {
  LockTable t(std::chrono::minutes(10));
  EXPECT_TRUE(t.InGrace());
  ASSERT_OK(t.Set(1, Posix(7, 1, F_WRLCK, 0, 9), LockTable::Clock::now(), /*reclaim=*/true));
  Status s = t.Set(1, Posix(8, 1, F_RDLCK, 50, 60), LockTable::Clock::now() + milliseconds(20), false);
  EXPECT_EQ(ErrnoOf(s), ENOLCK) << s.ToString();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);  // ask again, not "held"
  EXPECT_EQ(t.Test(1, Posix(8, 1, F_RDLCK, 50, 60), LockTable::Clock::now()).status().code(),
            StatusCode::kUnavailable);
  EXPECT_OK(t.Set(1, Posix(7, 1, F_UNLCK, 0, 9), LockTable::Clock::now(), false));
  // A late reclaim that conflicts is refused like any lock.
  ASSERT_OK(t.Set(2, Posix(7, 1, F_WRLCK, 0, 9), LockTable::Clock::now(), true));
  EXPECT_EQ(ErrnoOf(t.Set(2, Posix(8, 1, F_WRLCK, 0, 9), LockTable::Clock::now(), true)), EAGAIN);
}

}  // namespace
}  // namespace kite::fs
