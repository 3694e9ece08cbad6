// InvalidationLog: what each client is told (only what it holds), acknowledgements, overflow, a
// client that does not answer. Real threads, no network.
#include "fs/invalidation_log.h"

#include <gtest/gtest.h>

#include <thread>

namespace kite::fs {
namespace {

using std::chrono::milliseconds;
using Event = InvalidationLog::Event;

Event Inode(uint64_t ino, bool data = false) { return Event{ino, data, 0, {}}; }
Event Entry(uint64_t parent, std::string name) { return Event{0, false, parent, std::move(name)}; }

TEST(InvalidationLogTest, ClientsHearOthersChangesNotTheirOwn) {
  InvalidationLog log;
  for (uint64_t c : {1, 2}) log.Hold(c, {1, 10});
  log.Append(1, {Inode(10, true)});
  log.Append(2, {Entry(1, "x"), Inode(1)});
  auto b = log.Wait(2, 0, milliseconds(0));
  ASSERT_EQ(b.events.size(), 1u);
  EXPECT_EQ(b.events[0].ino, 10u);
  EXPECT_TRUE(b.events[0].data);
  EXPECT_EQ(b.next_seq, 3u);  // past its own events too
  b = log.Wait(1, 0, milliseconds(0));
  ASSERT_EQ(b.events.size(), 2u);
  EXPECT_EQ(b.events[0].parent, 1u);
  EXPECT_EQ(b.events[0].name, "x");
  EXPECT_FALSE(b.overflow);
  b = log.Wait(1, 3, milliseconds(10));  // nothing new: waits, then returns empty
  EXPECT_TRUE(b.events.empty());
  EXPECT_EQ(b.next_seq, 3u);
}

TEST(InvalidationLogTest, AWaitingClientIsWokenByAChange) {
  InvalidationLog log;
  log.Hold(2, 7);
  std::thread t([&] {
    std::this_thread::sleep_for(milliseconds(50));
    log.Append(1, {Inode(7)});
  });
  auto start = std::chrono::steady_clock::now();
  auto b = log.Wait(2, 0, milliseconds(5000));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(4000));
  ASSERT_EQ(b.events.size(), 1u);
  EXPECT_EQ(b.events[0].ino, 7u);
  t.join();
}

TEST(InvalidationLogTest, AChangeWaitsForTheOtherListenersToAcknowledge) {
  InvalidationLog log;
  log.Wait(2, 0, milliseconds(0));  // client 2 listens
  log.Hold(2, 5);
  log.Hold(3, 5);
  InvalidationLog::Published seq = log.Append(1, {Inode(5)});
  // Client 1 (the origin) and clients that never polled (3) are not waited for; client 2 is.
  std::thread acker([&] {
    auto b = log.Wait(2, 0, milliseconds(1000));
    ASSERT_EQ(b.events.size(), 1u);
    std::this_thread::sleep_for(milliseconds(30));
    log.Wait(2, b.next_seq, milliseconds(0));  // the acknowledgement
  });
  auto behind = log.WaitAcked(seq, milliseconds(5000));
  EXPECT_TRUE(behind.empty());
  acker.join();
}

TEST(InvalidationLogTest, AClientThatDoesNotAnswerStallsOneChangeOnly) {
  InvalidationLog log;
  log.Wait(2, 0, milliseconds(0));
  log.Hold(2, {5, 6, 7, 8});
  InvalidationLog::Published seq = log.Append(1, {Inode(5)});
  auto behind = log.WaitAcked(seq, milliseconds(50));
  ASSERT_EQ(behind.size(), 1u);
  EXPECT_EQ(behind[0], 2u);
  seq = log.Append(1, {Inode(6)});
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(log.WaitAcked(seq, milliseconds(2000)).empty());  // lagging: not waited for
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
  // Once it polls again it is waited for again; once forgotten, never.
  log.Wait(2, seq.seq, milliseconds(0));
  seq = log.Append(1, {Inode(7)});
  EXPECT_EQ(log.WaitAcked(seq, milliseconds(20)).size(), 1u);
  log.Forget(2);
  seq = log.Append(1, {Inode(8)});
  EXPECT_TRUE(log.WaitAcked(seq, milliseconds(2000)).empty());
}

TEST(InvalidationLogTest, FallingBehindTheLogIsAnOverflow) {
  InvalidationLog log(/*capacity=*/4);
  for (uint64_t i = 1; i <= 10; ++i) log.Hold(2, i);
  for (uint64_t i = 1; i <= 10; ++i) log.Append(1, {Inode(i)});
  auto b = log.Wait(2, 2, milliseconds(0));
  EXPECT_TRUE(b.overflow);
  EXPECT_EQ(b.next_seq, 10u);
  b = log.Wait(2, 7, milliseconds(0));  // still in the log
  EXPECT_FALSE(b.overflow);
  EXPECT_EQ(b.events.size(), 3u);
  // A position from a previous server (past the end) is an overflow too.
  b = log.Wait(3, 500, milliseconds(0));
  EXPECT_TRUE(b.overflow);
}

TEST(InvalidationLogTest, OnlyTheHoldersOfAnInodeOrDirectoryHearOfItsChange) {
  InvalidationLog log;
  for (uint64_t c : {2, 3, 4}) log.Wait(c, 0, milliseconds(0));  // three listeners
  log.Hold(2, 10);        // 2 has file 10 cached
  log.Hold(3, 20);        // 3 looked into directory 20
  log.Hold(1, {10, 20});  // the origin holds both: never sent its own
  InvalidationLog::Published p = log.Append(1, {Inode(10, true), Entry(20, "new"), Inode(30)});
  EXPECT_EQ(p.recipients, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(p.seq, 2u);  // inode 30 is held by nobody: not logged at all
  auto b = log.Wait(2, 0, milliseconds(0));
  ASSERT_EQ(b.events.size(), 1u);
  EXPECT_EQ(b.events[0].ino, 10u);
  b = log.Wait(3, 0, milliseconds(0));
  ASSERT_EQ(b.events.size(), 1u);
  EXPECT_EQ(b.events[0].parent, 20u);
  EXPECT_EQ(b.events[0].name, "new");
  b = log.Wait(4, 0, milliseconds(0));
  EXPECT_TRUE(b.events.empty());
  EXPECT_EQ(b.next_seq, 2u);  // moved past what was not for it
  // Client 4 never acknowledges: it is not waited for; 2 and 3 are (and have, by polling again).
  log.Wait(2, 2, milliseconds(0));
  log.Wait(3, 2, milliseconds(0));
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(log.WaitAcked(p, milliseconds(2000)).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
}

TEST(InvalidationLogTest, AChangeNobodyElseHoldsWaitsForNobody) {
  InvalidationLog log;
  log.Wait(2, 0, milliseconds(0));
  log.Hold(1, 5);
  InvalidationLog::Published p = log.Append(1, {Inode(5, true)});
  EXPECT_TRUE(p.recipients.empty());
  EXPECT_EQ(log.last_seq(), 0u);
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(log.WaitAcked(p, milliseconds(2000)).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
}

TEST(InvalidationLogTest, AForgottenClientHoldsNothing) {
  InvalidationLog log;
  log.Hold(2, {5, 6});
  log.Hold(3, 6);
  EXPECT_EQ(log.held_inodes(), 2u);
  log.Forget(2);
  EXPECT_EQ(log.held_inodes(), 1u);  // 6, by client 3
  EXPECT_EQ(log.Append(1, {Inode(5)}).recipients.size(), 0u);
  EXPECT_EQ(log.Append(1, {Inode(6)}).recipients, (std::vector<uint64_t>{3}));
}

TEST(InvalidationLogTest, ShutdownEndsWaits) {
  InvalidationLog log;
  std::thread t([&] {
    std::this_thread::sleep_for(milliseconds(30));
    log.Shutdown();
  });
  auto start = std::chrono::steady_clock::now();
  log.Wait(2, 0, milliseconds(10000));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(5000));
  t.join();
}

}  // namespace
}  // namespace kite::fs
