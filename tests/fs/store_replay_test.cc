// Exactly-once changes in the Store (docs/kitefs.md, "Exactly-once changes"): a change sent
// again with its request id returns its first outcome and changes nothing — also after the
// store is closed and opened again, as after a kill -9 of kite-fsd — and the table of outcomes
// stays bounded by what the client acknowledges.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "fs/fs_errors.h"
#include "fs/store.h"
#include "tests/fs/store_fixture.h"
#include "tests/support/status_matchers.h"

namespace kite::fs {
namespace {


constexpr uint64_t kClient = 0xc11e47;

// Outcomes are kept past a restart; orphans are not reclaimed under the tests' feet.
class StoreReplayTest : public StoreFixture {
 protected:
  StoreReplayTest() : StoreFixture(/*orphan_reclaim_ms=*/60000) {}

  // The next request id of kClient, with every earlier one still outstanding (the client has
  // none of their replies: it may resend any of them).
  RequestId Next() {
    ++seq_;
    return RequestId{kClient, seq_, 1};
  }
  int Names(uint64_t dir) {
    auto page = store_->ReadDir(dir, 0, 1000);
    EXPECT_OK(page);
    return page.ok() ? static_cast<int>(page->entries.size()) - 2 : -1;
  }

  uint64_t seq_ = 0;
};

TEST_F(StoreReplayTest, AReplayedMkdirReturnsTheSameDirectoryNotEexist) {
  RequestId rid = Next();
  auto first = store_->MakeDir(kRootIno, "d", 0755, {1000, 1000}, rid);
  ASSERT_OK(first);
  auto again = store_->MakeDir(kRootIno, "d", 0755, {1000, 1000}, rid);
  ASSERT_OK(again);
  EXPECT_EQ(again->ino, first->ino);
  EXPECT_TRUE(S_ISDIR(again->mode));
  Reopen();
  again = store_->MakeDir(kRootIno, "d", 0755, {1000, 1000}, rid);
  ASSERT_OK(again);
  EXPECT_EQ(again->ino, first->ino);
  EXPECT_EQ(Names(kRootIno), 1);
  // A new request (another mkdir of the same name) is a new change: EEXIST, as without ids.
  EXPECT_EQ(Err(store_->MakeDir(kRootIno, "d", 0755, {}, Next())), EEXIST);
  EXPECT_EQ(Err(store_->MakeDir(kRootIno, "d", 0755, {})), EEXIST);
}

TEST_F(StoreReplayTest, MknodSymlinkAndLinkReplayedReturnTheirFirstInode) {
  RequestId node = Next(), sym = Next(), link = Next();
  auto n = store_->MakeNode(kRootIno, "fifo", S_IFIFO | 0600, 0, {}, node);
  ASSERT_OK(n);
  auto s = store_->MakeSymlink(kRootIno, "sym", "target", {}, sym);
  ASSERT_OK(s);
  auto l = store_->Link(n->ino, kRootIno, "fifo2", link);
  ASSERT_OK(l);
  EXPECT_EQ(l->nlink, 2u);
  Reopen();
  auto n2 = store_->MakeNode(kRootIno, "fifo", S_IFIFO | 0600, 0, {}, node);
  ASSERT_OK(n2);
  EXPECT_EQ(n2->ino, n->ino);
  auto s2 = store_->MakeSymlink(kRootIno, "sym", "target", {}, sym);
  ASSERT_OK(s2);
  EXPECT_EQ(s2->ino, s->ino);
  auto l2 = store_->Link(n->ino, kRootIno, "fifo2", link);
  ASSERT_OK(l2);
  EXPECT_EQ(l2->ino, n->ino);
  EXPECT_EQ(l2->nlink, 2u);  // not linked a third time
  EXPECT_EQ(Names(kRootIno), 3);
}

TEST_F(StoreReplayTest, AReplayedUnlinkOrRmdirSucceedsAndRemovesNothingElse) {
  ASSERT_OK(store_->MakeDir(kRootIno, "d", 0755, {}));
  bool created;
  auto f = store_->Create(kRootIno, "f", 0644, O_WRONLY | O_EXCL, {}, &created);
  ASSERT_OK(f);
  ASSERT_OK(store_->Release(f->ino));
  RequestId unlink = Next(), rmdir = Next();
  uint64_t removed = 0;
  ASSERT_OK(store_->Unlink(kRootIno, "f", &removed, unlink));
  EXPECT_EQ(removed, f->ino);
  ASSERT_OK(store_->RemoveDir(kRootIno, "d", nullptr, rmdir));
  removed = 0;
  EXPECT_OK(store_->Unlink(kRootIno, "f", &removed, unlink));
  EXPECT_EQ(removed, f->ino);  // what the first call reported (the invalidations name it)
  Reopen();
  EXPECT_OK(store_->Unlink(kRootIno, "f", nullptr, unlink));
  EXPECT_OK(store_->RemoveDir(kRootIno, "d", nullptr, rmdir));
  // A name made again since is not removed by the resend of the old unlink.
  ASSERT_OK(store_->MakeNode(kRootIno, "f", S_IFREG | 0644, 0, {}));
  EXPECT_OK(store_->Unlink(kRootIno, "f", nullptr, unlink));
  EXPECT_OK(store_->Lookup(kRootIno, "f"));
  EXPECT_EQ(Err(store_->Unlink(kRootIno, "nothing", nullptr, Next())), ENOENT);
}

TEST_F(StoreReplayTest, AReplayedRenameDoesNotFailOrMoveAgain) {
  ASSERT_OK(store_->MakeNode(kRootIno, "a", S_IFREG | 0644, 0, {}));
  auto old_b = store_->MakeNode(kRootIno, "b", S_IFREG | 0644, 0, {});
  ASSERT_OK(old_b);
  RequestId rid = Next();
  uint64_t moved = 0, replaced = 0;
  ASSERT_OK(store_->Rename(kRootIno, "a", kRootIno, "b", 0, &moved, &replaced, rid));
  auto b = store_->Lookup(kRootIno, "b");
  ASSERT_OK(b);
  // Without the id the resend would fail (ENOENT: "a" is gone); with it, the first outcome.
  EXPECT_EQ(Err(store_->Rename(kRootIno, "a", kRootIno, "b", 0)), ENOENT);
  Reopen();
  uint64_t moved2 = 0, replaced2 = 0;
  EXPECT_OK(store_->Rename(kRootIno, "a", kRootIno, "b", 0, &moved2, &replaced2, rid));
  EXPECT_EQ(moved2, moved);
  EXPECT_EQ(replaced2, old_b->ino);
  // A NOREPLACE rename replayed after someone made the source name again moves nothing.
  ASSERT_OK(store_->MakeNode(kRootIno, "a", S_IFREG | 0644, 0, {}));
  RequestId nr = Next();
  ASSERT_OK(store_->Rename(kRootIno, "a", kRootIno, "c", RENAME_NOREPLACE, nullptr, nullptr, nr));
  ASSERT_OK(store_->MakeNode(kRootIno, "a", S_IFREG | 0644, 0, {}));
  EXPECT_OK(store_->Rename(kRootIno, "a", kRootIno, "c", RENAME_NOREPLACE, nullptr, nullptr, nr));
  EXPECT_OK(store_->Lookup(kRootIno, "a"));
  EXPECT_EQ(Names(kRootIno), 3);  // a, b, c
}

TEST_F(StoreReplayTest, AReplayedExclusiveCreateReturnsTheSameInodeAndItsHandle) {
  RequestId rid = Next();
  bool created = false;
  auto first = store_->Create(kRootIno, "f", 0644, O_WRONLY | O_CREAT | O_EXCL, {}, &created, rid, /*handle=*/7);
  ASSERT_OK(first);
  EXPECT_TRUE(created);
  EXPECT_EQ(store_->TEST_PinCount(first->ino), 1);
  // Before a restart: the first send's handle, no second pin.
  CreateReplay replay;
  created = false;
  auto again = store_->Create(kRootIno, "f", 0644, O_WRONLY | O_CREAT | O_EXCL, {}, &created, rid, 8, &replay);
  ASSERT_OK(again);
  EXPECT_EQ(again->ino, first->ino);
  EXPECT_TRUE(created);
  EXPECT_TRUE(replay.replayed);
  EXPECT_EQ(replay.handle, 7u);
  EXPECT_EQ(store_->TEST_PinCount(first->ino), 1);
  // After one (the handle died with the old server): a new pin, for a new handle.
  Reopen();
  replay = {};
  again = store_->Create(kRootIno, "f", 0644, O_WRONLY | O_CREAT | O_EXCL, {}, &created, rid, 1, &replay);
  ASSERT_OK(again);
  EXPECT_EQ(again->ino, first->ino);
  EXPECT_TRUE(created);
  EXPECT_TRUE(replay.replayed);
  EXPECT_EQ(replay.handle, 0u);
  EXPECT_EQ(store_->TEST_PinCount(first->ino), 1);
  EXPECT_EQ(Err(store_->Create(kRootIno, "f", 0644, O_WRONLY | O_EXCL, {}, &created, Next(), 2)), EEXIST);
}

TEST_F(StoreReplayTest, AReplayedCreateWithOTruncDoesNotTruncateAgain) {
  bool created;
  auto f = store_->Create(kRootIno, "f", 0644, O_WRONLY, {}, &created);
  ASSERT_OK(f);
  ASSERT_OK(store_->Write(f->ino, 0, "old", false));
  ASSERT_OK(store_->Release(f->ino));
  RequestId rid = Next();
  auto t = store_->Create(kRootIno, "f", 0644, O_WRONLY | O_CREAT | O_TRUNC, {}, &created, rid, 3);
  ASSERT_OK(t);
  EXPECT_FALSE(created);
  EXPECT_EQ(t->size, 0u);
  ASSERT_OK(store_->Write(f->ino, 0, "written after the truncation", false));
  Reopen();
  auto again = store_->Create(kRootIno, "f", 0644, O_WRONLY | O_CREAT | O_TRUNC, {}, &created, rid, 1);
  ASSERT_OK(again);
  EXPECT_FALSE(created);
  EXPECT_EQ(again->size, 28u);  // the write after the first truncation is kept
  auto data = store_->Read(f->ino, 0, 100);
  ASSERT_OK(data);
  EXPECT_EQ(*data, "written after the truncation");
}

TEST_F(StoreReplayTest, AReplayedAppendIsNotAppendedTwice) {
  bool created;
  auto f = store_->Create(kRootIno, "log", 0644, O_WRONLY, {}, &created);
  ASSERT_OK(f);
  ASSERT_OK(store_->Write(f->ino, 0, "one\n", true));
  RequestId rid = Next();
  auto w = store_->Write(f->ino, 0, "two\n", true, rid);
  ASSERT_OK(w);
  EXPECT_EQ(w->offset, 4);
  Reopen();
  auto again = store_->Write(f->ino, 0, "two\n", true, rid);
  ASSERT_OK(again);
  EXPECT_EQ(again->offset, 4);
  EXPECT_EQ(again->written, 4u);
  EXPECT_EQ(again->attr.size, 8u);
  EXPECT_EQ(*store_->Read(f->ino, 0, 100), "one\ntwo\n");
}

TEST_F(StoreReplayTest, SetattrAndXattrsReplayed) {
  bool created;
  auto f = store_->Create(kRootIno, "f", 0644, O_WRONLY, {}, &created);
  ASSERT_OK(f);
  ASSERT_OK(store_->Write(f->ino, 0, "0123456789", false));
  RequestId trunc = Next(), create_x = Next(), remove_x = Next();
  ASSERT_OK(store_->SetAttr(f->ino, AttrChange{.size = 2}, trunc));
  ASSERT_OK(store_->Write(f->ino, 2, "later", false));
  ASSERT_OK(store_->SetXattr(f->ino, "user.a", "1", XATTR_CREATE, create_x));
  ASSERT_OK(store_->SetXattr(f->ino, "user.b", "2", 0));
  ASSERT_OK(store_->RemoveXattr(f->ino, "user.b", remove_x));
  Reopen();
  auto a = store_->SetAttr(f->ino, AttrChange{.size = 2}, trunc);
  ASSERT_OK(a);
  EXPECT_EQ(a->size, 7u);  // not truncated again over the later write
  EXPECT_OK(store_->SetXattr(f->ino, "user.a", "1", XATTR_CREATE, create_x));  // not EEXIST
  EXPECT_OK(store_->RemoveXattr(f->ino, "user.b", remove_x));                 // not ENODATA
}

TEST_F(StoreReplayTest, FailedChangesAreNotRecordedAndAreDoneAgain) {
  RequestId rid = Next();
  EXPECT_EQ(Err(store_->Unlink(kRootIno, "later", nullptr, rid)), ENOENT);
  EXPECT_EQ(store_->TEST_RecordedRequests(kClient), 0u);
  ASSERT_OK(store_->MakeNode(kRootIno, "later", S_IFREG | 0644, 0, {}));
  // The resend of a change that failed is the change done now: it changed nothing before.
  EXPECT_OK(store_->Unlink(kRootIno, "later", nullptr, rid));
  EXPECT_EQ(Err(store_->Lookup(kRootIno, "later")), ENOENT);
}

TEST_F(StoreReplayTest, AcknowledgedOutcomesAreDroppedAndTheirStaleCopiesRefused) {
  // Three changes outstanding at once: nothing acknowledged yet.
  RequestId r1{kClient, 1, 1}, r2{kClient, 2, 1}, r3{kClient, 3, 1};
  ASSERT_OK(store_->MakeDir(kRootIno, "d1", 0755, {}, r1));
  ASSERT_OK(store_->MakeDir(kRootIno, "d2", 0755, {}, r2));
  ASSERT_OK(store_->MakeDir(kRootIno, "d3", 0755, {}, r3));
  EXPECT_EQ(store_->TEST_RecordedRequests(kClient), 3u);
  // Change 4 says the client has the replies of 1 and 2 (3 is still outstanding).
  ASSERT_OK(store_->MakeDir(kRootIno, "d4", 0755, {}, RequestId{kClient, 4, 3}));
  EXPECT_EQ(store_->TEST_RecordedRequests(kClient), 2u);
  EXPECT_OK(store_->MakeDir(kRootIno, "d3", 0755, {}, r3));  // still answered
  EXPECT_EQ(Err(store_->MakeDir(kRootIno, "d1", 0755, {}, r1)), EALREADY);
  // Survives a reopen: the dropped ones stay dropped, the others answer.
  Reopen();
  EXPECT_EQ(store_->TEST_RecordedRequests(kClient), 2u);
  EXPECT_OK(store_->MakeDir(kRootIno, "d3", 0755, {}, r3));
  // Another client's outcomes are its own.
  EXPECT_EQ(Err(store_->MakeDir(kRootIno, "d3", 0755, {}, RequestId{kClient + 1, 3, 1})), EEXIST);
  // A client that is gone is forgotten.
  EXPECT_EQ(store_->RequestClients(), std::vector<uint64_t>{kClient});
  ASSERT_OK(store_->ForgetRequests(kClient));
  EXPECT_EQ(store_->TEST_RecordedRequests(kClient), 0u);
  Reopen();
  EXPECT_TRUE(store_->RequestClients().empty());
}

TEST_F(StoreReplayTest, AClientThatNeverAcknowledgesIsBounded) {
  for (uint64_t seq = 1; seq <= kMaxRepliesPerClient + 10; ++seq) {
    ASSERT_OK(store_->MakeNode(kRootIno, "n" + std::to_string(seq), S_IFREG | 0644, 0, {},
                               RequestId{kClient, seq, 1}));
  }
  EXPECT_EQ(store_->TEST_RecordedRequests(kClient), kMaxRepliesPerClient);
  // The newest are kept.
  EXPECT_OK(store_->MakeNode(kRootIno, "n" + std::to_string(kMaxRepliesPerClient + 10), S_IFREG | 0644, 0, {},
                             RequestId{kClient, kMaxRepliesPerClient + 10, 1}));
}

}  // namespace
}  // namespace kite::fs
