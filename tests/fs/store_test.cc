// Store on a real RocksDB in a temporary directory: POSIX namespace rules, data (sparse,
// truncated, big offsets), unlinked-but-open files, durability across a reopen, bad input.
#include "fs/store.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "fs/fs_errors.h"
#include "tests/fs/store_fixture.h"
#include "tests/support/status_matchers.h"

namespace kite::fs {
namespace {


class StoreTest : public StoreFixture {
 protected:
  uint64_t MakeFile(uint64_t dir, const std::string& name, const std::string& data = "") {
    bool created = false;
    auto a = store_->Create(dir, name, 0644, O_WRONLY | O_EXCL, {1000, 1000}, &created);
    EXPECT_OK(a);
    if (!a.ok()) return 0;
    EXPECT_TRUE(created);
    if (!data.empty()) {
      EXPECT_OK(store_->Write(a->ino, 0, data, false));
    }
    EXPECT_OK(store_->Release(a->ino));
    return a->ino;
  }
  uint64_t MakeDir(uint64_t dir, const std::string& name) {
    auto a = store_->MakeDir(dir, name, 0755, {1000, 1000});
    EXPECT_OK(a);
    return a.ok() ? a->ino : 0;
  }
  std::string ReadAll(uint64_t ino) {
    auto a = store_->GetAttr(ino);
    EXPECT_OK(a);
    if (!a.ok()) return "";
    std::string out;
    for (uint64_t off = 0; off < a->size;) {
      auto r = store_->Read(ino, static_cast<int64_t>(off), kMaxIoBytes);
      EXPECT_OK(r);
      if (!r.ok() || r->empty()) break;
      off += r->size();
      out += *r;
    }
    return out;
  }
  std::set<std::string> List(uint64_t dir) {
    std::set<std::string> names;
    uint64_t cookie = 0;
    for (;;) {
      auto page = store_->ReadDir(dir, cookie, 7);
      EXPECT_OK(page);
      if (!page.ok()) break;
      for (auto& e : page->entries) {
        EXPECT_TRUE(names.insert(e.name).second) << "listed twice: " << e.name;
        cookie = e.next_cookie;
      }
      if (page->eof) break;
    }
    return names;
  }

};

TEST_F(StoreTest, FreshStoreHasARootDirectory) {
  auto root = store_->GetAttr(kRootIno);
  ASSERT_OK(root);
  EXPECT_TRUE(S_ISDIR(root->mode));
  EXPECT_EQ(root->nlink, 2u);
  EXPECT_EQ(List(kRootIno), (std::set<std::string>{".", ".."}));
  auto up = store_->Lookup(kRootIno, "..");
  ASSERT_OK(up);
  EXPECT_EQ(up->ino, kRootIno);
}

TEST_F(StoreTest, CreateLookupWriteRead) {
  uint64_t ino = MakeFile(kRootIno, "hello", "hello, world");
  auto a = store_->Lookup(kRootIno, "hello");
  ASSERT_OK(a);
  EXPECT_EQ(a->ino, ino);
  EXPECT_EQ(a->size, 12u);
  EXPECT_EQ(a->uid, 1000u);
  EXPECT_TRUE(S_ISREG(a->mode));
  EXPECT_EQ(a->mode & 07777, 0644u);
  EXPECT_EQ(ReadAll(ino), "hello, world");
  EXPECT_EQ(Err(store_->Lookup(kRootIno, "nope")), ENOENT);
}

TEST_F(StoreTest, OExclAndOpenOfExistingFile) {
  uint64_t ino = MakeFile(kRootIno, "f", "data");
  bool created = true;
  EXPECT_EQ(Err(store_->Create(kRootIno, "f", 0644, O_WRONLY | O_EXCL, {}, &created)), EEXIST);
  auto a = store_->Create(kRootIno, "f", 0644, O_RDWR, {}, &created);
  ASSERT_OK(a);
  EXPECT_FALSE(created);
  EXPECT_EQ(a->ino, ino);
  EXPECT_EQ(a->size, 4u);
  ASSERT_OK(store_->Release(ino));
}

TEST_F(StoreTest, OTruncEmptiesTheFileAndMovesMtime) {
  uint64_t ino = MakeFile(kRootIno, "f", std::string(200000, 'x'));
  auto before = store_->GetAttr(ino);
  ASSERT_OK(before);
  auto a = store_->Open(ino, O_WRONLY | O_TRUNC);
  ASSERT_OK(a);
  EXPECT_EQ(a->size, 0u);
  EXPECT_GT(a->mtime_ns, before->mtime_ns);
  EXPECT_GT(a->data_version, before->data_version);
  ASSERT_OK(store_->Release(ino));
  // Growing again shows zeros, not the old bytes.
  ASSERT_OK(store_->SetAttr(ino, {.size = 100000}));
  EXPECT_EQ(ReadAll(ino), std::string(100000, '\0'));
}

TEST_F(StoreTest, AppendWritesAtTheEnd) {
  uint64_t ino = MakeFile(kRootIno, "log", "one\n");
  auto w = store_->Write(ino, 0, "two\n", /*append=*/true);
  ASSERT_OK(w);
  EXPECT_EQ(w->offset, 4);
  EXPECT_EQ(w->attr.size, 8u);
  EXPECT_EQ(ReadAll(ino), "one\ntwo\n");
}

TEST_F(StoreTest, SparseWritesReadZerosInTheHoles) {
  uint64_t ino = MakeFile(kRootIno, "sparse");
  const int64_t far = int64_t{5} << 30;  // 5 GiB
  ASSERT_OK(store_->Write(ino, 10, "abc", false));
  ASSERT_OK(store_->Write(ino, far, "end", false));
  auto a = store_->GetAttr(ino);
  ASSERT_OK(a);
  EXPECT_EQ(a->size, static_cast<uint64_t>(far + 3));
  auto head = store_->Read(ino, 0, 20);
  ASSERT_OK(head);
  EXPECT_EQ(*head, std::string(10, '\0') + "abc" + std::string(7, '\0'));
  auto mid = store_->Read(ino, far / 2, 1 << 20);
  ASSERT_OK(mid);
  EXPECT_EQ(*mid, std::string(1 << 20, '\0'));
  auto tail = store_->Read(ino, far - 2, 100);
  ASSERT_OK(tail);
  EXPECT_EQ(*tail, std::string("\0\0end", 5));
  auto past = store_->Read(ino, far + 100, 100);
  ASSERT_OK(past);
  EXPECT_EQ(*past, "");
}

TEST_F(StoreTest, WritesAcrossChunkBoundariesKeepNeighbours) {
  uint64_t ino = MakeFile(kRootIno, "f");
  std::string ref(3 * kChunkSize + 500, 'a');
  ASSERT_OK(store_->Write(ino, 0, ref, false));
  std::string patch(kChunkSize + 10, 'b');
  ASSERT_OK(store_->Write(ino, kChunkSize - 5, patch, false));
  ref.replace(kChunkSize - 5, patch.size(), patch);
  ASSERT_OK(store_->Write(ino, 7, "cc", false));
  ref.replace(7, 2, "cc");
  EXPECT_EQ(ReadAll(ino), ref);
}

TEST_F(StoreTest, TruncateShrinksAndGrows) {
  uint64_t ino = MakeFile(kRootIno, "f", std::string(3 * kChunkSize, 'q'));
  ASSERT_OK(store_->SetAttr(ino, {.size = static_cast<int64_t>(kChunkSize + 3)}));
  EXPECT_EQ(ReadAll(ino), std::string(kChunkSize + 3, 'q'));
  ASSERT_OK(store_->SetAttr(ino, {.size = static_cast<int64_t>(2 * kChunkSize)}));
  EXPECT_EQ(ReadAll(ino), std::string(kChunkSize + 3, 'q') + std::string(kChunkSize - 3, '\0'));
  ASSERT_OK(store_->SetAttr(ino, {.size = 0}));
  EXPECT_EQ(ReadAll(ino), "");
}

TEST_F(StoreTest, AbsurdSizesAndOffsetsAreRefused) {
  uint64_t ino = MakeFile(kRootIno, "f", "x");
  EXPECT_EQ(Err(store_->Write(ino, kMaxFileSize - 1, "ab", false)), EFBIG);
  EXPECT_EQ(Err(store_->Write(ino, -1, "ab", false)), EINVAL);
  EXPECT_EQ(Err(store_->Write(ino, INT64_MAX, "ab", false)), EFBIG);
  EXPECT_EQ(Err(store_->SetAttr(ino, {.size = kMaxFileSize + 1})), EFBIG);
  EXPECT_EQ(Err(store_->SetAttr(ino, {.size = -5})), EINVAL);
  EXPECT_EQ(Err(store_->Read(ino, -1, 10)), EINVAL);
  EXPECT_EQ(Err(store_->Read(ino, 0, kMaxIoBytes + 1)), EINVAL);
  EXPECT_EQ(Err(store_->Write(ino, 0, std::string(kMaxIoBytes + 1, 'x'), false)), EINVAL);
  EXPECT_EQ(Err(store_->Fallocate(ino, 0, kMaxFileSize, 10)), EFBIG);
  // The file is as it was.
  EXPECT_EQ(ReadAll(ino), "x");
  // The largest size itself is fine.
  ASSERT_OK(store_->SetAttr(ino, {.size = kMaxFileSize}));
  auto end = store_->Read(ino, kMaxFileSize - 4, 100);
  ASSERT_OK(end);
  EXPECT_EQ(*end, std::string(4, '\0'));
}

TEST_F(StoreTest, BadNamesAreRefused) {
  std::string longest(kMaxNameBytes, 'n');
  EXPECT_NE(MakeFile(kRootIno, longest), 0u);
  bool created;
  EXPECT_EQ(Err(store_->Create(kRootIno, longest + "n", 0644, O_WRONLY, {}, &created)), ENAMETOOLONG);
  EXPECT_EQ(Err(store_->MakeDir(kRootIno, std::string(1000, 'd'), 0755, {})), ENAMETOOLONG);
  EXPECT_EQ(Err(store_->Lookup(kRootIno, longest + "n")), ENAMETOOLONG);
  EXPECT_EQ(Err(store_->MakeDir(kRootIno, "a/b", 0755, {})), EINVAL);
  EXPECT_EQ(Err(store_->MakeDir(kRootIno, std::string("a\0b", 3), 0755, {})), EINVAL);
  EXPECT_EQ(Err(store_->MakeDir(kRootIno, "", 0755, {})), ENOENT);
  EXPECT_EQ(Err(store_->MakeDir(kRootIno, ".", 0755, {})), EEXIST);
  EXPECT_EQ(Err(store_->MakeDir(kRootIno, "..", 0755, {})), EEXIST);
  EXPECT_EQ(Err(store_->Create(kRootIno, "..", 0644, O_WRONLY | O_EXCL, {}, &created)), EEXIST);
  // Invalid UTF-8 is just bytes.
  std::string latin1 = "caf\xe9\xff";
  EXPECT_NE(MakeFile(kRootIno, latin1, "bytes"), 0u);
  auto a = store_->Lookup(kRootIno, latin1);
  ASSERT_OK(a);
  EXPECT_EQ(ReadAll(a->ino), "bytes");
  EXPECT_EQ(List(kRootIno), (std::set<std::string>{".", "..", longest, latin1}));
}

TEST_F(StoreTest, DotAndDotDotGames) {
  uint64_t d = MakeDir(kRootIno, "d");
  uint64_t e = MakeDir(d, "e");
  EXPECT_EQ(store_->Lookup(e, "..")->ino, d);
  EXPECT_EQ(store_->Lookup(e, ".")->ino, e);
  EXPECT_EQ(Err(store_->RemoveDir(d, ".")), EINVAL);
  EXPECT_EQ(Err(store_->RemoveDir(e, "..")), ENOTEMPTY);
  EXPECT_EQ(Err(store_->Unlink(d, ".")), EISDIR);
  EXPECT_EQ(Err(store_->Rename(d, "..", kRootIno, "x", 0)), EBUSY);
  EXPECT_EQ(Err(store_->Rename(kRootIno, "d", d, "..", 0)), EBUSY);
  EXPECT_EQ(Err(store_->Link(MakeFile(d, "f"), d, ".")), EEXIST);
  // A directory cannot move below itself, however deep.
  EXPECT_EQ(Err(store_->Rename(kRootIno, "d", e, "d2", 0)), EINVAL);
  EXPECT_EQ(Err(store_->Rename(kRootIno, "d", d, "d2", 0)), EINVAL);
  EXPECT_EQ(List(kRootIno), (std::set<std::string>{".", "..", "d"}));
}

TEST_F(StoreTest, MkdirRmdirAndLinkCounts) {
  uint64_t d = MakeDir(kRootIno, "d");
  EXPECT_EQ(store_->GetAttr(kRootIno)->nlink, 3u);
  MakeDir(d, "sub");
  MakeFile(d, "f");
  EXPECT_EQ(store_->GetAttr(d)->nlink, 3u);
  EXPECT_EQ(Err(store_->RemoveDir(kRootIno, "d")), ENOTEMPTY);
  EXPECT_EQ(Err(store_->RemoveDir(d, "f")), ENOTDIR);
  EXPECT_EQ(Err(store_->Unlink(d, "sub")), EISDIR);
  ASSERT_OK(store_->Unlink(d, "f"));
  ASSERT_OK(store_->RemoveDir(d, "sub"));
  EXPECT_EQ(store_->GetAttr(d)->nlink, 2u);
  ASSERT_OK(store_->RemoveDir(kRootIno, "d"));
  EXPECT_EQ(store_->GetAttr(kRootIno)->nlink, 2u);
  EXPECT_EQ(Err(store_->GetAttr(d)), ESTALE);
  EXPECT_EQ(Err(store_->MakeDir(d, "x", 0755, {})), ESTALE);
}

TEST_F(StoreTest, RenameReplacesAtomically) {
  uint64_t a = MakeFile(kRootIno, "a", "new");
  uint64_t b = MakeFile(kRootIno, "b", "old");
  ASSERT_OK(store_->Rename(kRootIno, "a", kRootIno, "b", 0));
  EXPECT_EQ(store_->Lookup(kRootIno, "b")->ino, a);
  EXPECT_EQ(Err(store_->Lookup(kRootIno, "a")), ENOENT);
  EXPECT_EQ(Err(store_->GetAttr(b)), ESTALE);  // the replaced file is gone, data and all
  EXPECT_EQ(ReadAll(a), "new");
  EXPECT_EQ(List(kRootIno), (std::set<std::string>{".", "..", "b"}));
}

TEST_F(StoreTest, RenameRules) {
  uint64_t d1 = MakeDir(kRootIno, "d1");
  uint64_t d2 = MakeDir(kRootIno, "d2");
  MakeFile(d2, "inside");
  uint64_t f = MakeFile(kRootIno, "f");
  EXPECT_EQ(Err(store_->Rename(kRootIno, "d1", kRootIno, "f", 0)), ENOTDIR);
  EXPECT_EQ(Err(store_->Rename(kRootIno, "f", kRootIno, "d1", 0)), EISDIR);
  EXPECT_EQ(Err(store_->Rename(kRootIno, "d1", kRootIno, "d2", 0)), ENOTEMPTY);
  EXPECT_EQ(Err(store_->Rename(kRootIno, "missing", kRootIno, "x", 0)), ENOENT);
  EXPECT_EQ(Err(store_->Rename(kRootIno, "f", kRootIno, "d1", RENAME_NOREPLACE)), EEXIST);
  EXPECT_EQ(Err(store_->Rename(kRootIno, "f", kRootIno, "x", RENAME_EXCHANGE)), ENOENT);
  EXPECT_EQ(Err(store_->Rename(kRootIno, "f", kRootIno, "x", 0x80)), EINVAL);
  // Renaming a file onto itself (or onto another of its links) changes nothing.
  ASSERT_OK(store_->Rename(kRootIno, "f", kRootIno, "f", 0));
  ASSERT_OK(store_->Link(f, kRootIno, "f2"));
  ASSERT_OK(store_->Rename(kRootIno, "f", kRootIno, "f2", 0));
  EXPECT_EQ(store_->GetAttr(f)->nlink, 2u);
  // A directory moves into another, and the link counts follow it.
  ASSERT_OK(store_->Rename(kRootIno, "d1", d2, "moved", 0));
  EXPECT_EQ(store_->Lookup(d2, "moved")->ino, d1);
  EXPECT_EQ(store_->Lookup(d1, "..")->ino, d2);
  EXPECT_EQ(store_->GetAttr(kRootIno)->nlink, 3u);
  EXPECT_EQ(store_->GetAttr(d2)->nlink, 3u);
  // An empty directory can be replaced by a directory.
  uint64_t empty = MakeDir(kRootIno, "empty");
  ASSERT_OK(store_->Rename(d2, "moved", kRootIno, "empty", 0));
  EXPECT_EQ(store_->Lookup(kRootIno, "empty")->ino, d1);
  EXPECT_EQ(Err(store_->GetAttr(empty)), ESTALE);
  EXPECT_EQ(store_->GetAttr(kRootIno)->nlink, 4u);  // d2, empty (now d1), plus . and ..
  EXPECT_EQ(store_->GetAttr(d2)->nlink, 2u);
  // Exchange swaps two names atomically.
  ASSERT_OK(store_->Rename(kRootIno, "f", kRootIno, "d2", RENAME_EXCHANGE));
  EXPECT_EQ(store_->Lookup(kRootIno, "f")->ino, d2);
  EXPECT_EQ(store_->Lookup(kRootIno, "d2")->ino, f);
}

TEST_F(StoreTest, HardLinks) {
  uint64_t d = MakeDir(kRootIno, "d");
  uint64_t f = MakeFile(kRootIno, "f", "shared");
  auto l = store_->Link(f, d, "link");
  ASSERT_OK(l);
  EXPECT_EQ(l->nlink, 2u);
  EXPECT_EQ(Err(store_->Link(f, d, "link")), EEXIST);
  EXPECT_EQ(Err(store_->Link(d, kRootIno, "dirlink")), EPERM);
  ASSERT_OK(store_->Unlink(kRootIno, "f"));
  auto a = store_->Lookup(d, "link");
  ASSERT_OK(a);
  EXPECT_EQ(a->nlink, 1u);
  EXPECT_EQ(ReadAll(f), "shared");
  ASSERT_OK(store_->Unlink(d, "link"));
  EXPECT_EQ(Err(store_->GetAttr(f)), ESTALE);
}

TEST_F(StoreTest, UnlinkedOpenFileLivesUntilLastRelease) {
  uint64_t f = MakeFile(kRootIno, "f", "still here");
  ASSERT_OK(store_->Open(f, O_RDONLY));
  ASSERT_OK(store_->Open(f, O_RDWR));
  ASSERT_OK(store_->Unlink(kRootIno, "f"));
  EXPECT_EQ(Err(store_->Lookup(kRootIno, "f")), ENOENT);
  EXPECT_EQ(ReadAll(f), "still here");
  ASSERT_OK(store_->Write(f, 0, "STILL", false));
  EXPECT_EQ(store_->GetAttr(f)->nlink, 0u);
  EXPECT_EQ(Err(store_->Link(f, kRootIno, "back")), ENOENT);
  ASSERT_OK(store_->Release(f));
  EXPECT_EQ(ReadAll(f), "STILL here");
  ASSERT_OK(store_->Release(f));
  EXPECT_EQ(Err(store_->GetAttr(f)), ESTALE);
  EXPECT_EQ(Err(store_->Read(f, 0, 10)), ESTALE);
}

TEST_F(StoreTest, RenameOverAnOpenFileKeepsItUntilClosed) {
  uint64_t old_file = MakeFile(kRootIno, "target", "old");
  MakeFile(kRootIno, "tmp", "new");
  ASSERT_OK(store_->Open(old_file, O_RDONLY));
  ASSERT_OK(store_->Rename(kRootIno, "tmp", kRootIno, "target", 0));
  EXPECT_EQ(ReadAll(old_file), "old");
  ASSERT_OK(store_->Release(old_file));
  EXPECT_EQ(Err(store_->GetAttr(old_file)), ESTALE);
}

TEST_F(StoreTest, UnlinkedFilesStayOpenableForTheirGrace) {
  store_.reset();
  auto s = Store::Open({.path = dir_.string(), .unlinked_grace_ms = 3600 * 1000});
  ASSERT_OK(s);
  store_ = std::move(s).value();
  uint64_t a = MakeFile(kRootIno, "a", "looked up just before the unlink");
  uint64_t b = MakeFile(kRootIno, "b", "never opened again");
  ASSERT_OK(store_->Unlink(kRootIno, "a"));
  ASSERT_OK(store_->Rename(kRootIno, "b", kRootIno, "c", 0));
  MakeFile(kRootIno, "d", "replaces c");
  ASSERT_OK(store_->Rename(kRootIno, "d", kRootIno, "c", 0));  // b loses its last name
  EXPECT_EQ(Err(store_->Lookup(kRootIno, "a")), ENOENT);
  // Opening by number still works, and the last release removes it.
  auto opened = store_->Open(a, O_RDONLY);
  ASSERT_OK(opened);
  EXPECT_EQ(opened->nlink, 0u);
  EXPECT_EQ(ReadAll(a), "looked up just before the unlink");
  ASSERT_OK(store_->Release(a));
  EXPECT_EQ(Err(store_->GetAttr(a)), ESTALE);
  // The other goes when its grace ends.
  EXPECT_EQ(*store_->PurgeUnlinked(Store::WallNowNs()), 0);
  EXPECT_OK(store_->GetAttr(b));
  EXPECT_EQ(*store_->PurgeUnlinked(Store::WallNowNs() + int64_t{7200} * 1000000000), 1);
  EXPECT_EQ(Err(store_->GetAttr(b)), ESTALE);
}

TEST_F(StoreTest, OrphansOfACrashAreRemovedAtReopen) {
  uint64_t f = MakeFile(kRootIno, "f", std::string(300000, 'z'));
  ASSERT_OK(store_->Open(f, O_RDONLY));
  ASSERT_OK(store_->Unlink(kRootIno, "f"));
  Reopen();  // the server went away with the file open
  EXPECT_EQ(Err(store_->GetAttr(f)), ESTALE);
  EXPECT_EQ(store_->Read(f, 0, 10).ok(), false);
}

// Contract 5: with a reclaim period, an unlinked file open at a crash waits for its clients to
// reopen it; one reopened lives until its last release, also across a second restart, and one
// nobody reopened goes when the period ends.
TEST_F(StoreTest, OrphansOfACrashWaitForTheirClientsToReopenThem) {
  uint64_t kept = MakeFile(kRootIno, "kept", "still here");
  uint64_t dropped = MakeFile(kRootIno, "dropped", "nobody came back");
  ASSERT_OK(store_->Open(kept, O_RDONLY));
  ASSERT_OK(store_->Open(dropped, O_RDONLY));
  ASSERT_OK(store_->Unlink(kRootIno, "kept"));
  ASSERT_OK(store_->Unlink(kRootIno, "dropped"));
  Reopen(/*orphan_reclaim_ms=*/60000);
  ASSERT_OK(store_->Open(kept, O_RDWR));  // the client reopens its file
  EXPECT_EQ(*store_->PurgeUnlinked(Store::WallNowNs()), 0);  // within the reclaim period
  Reopen(60000);                                              // a second restart
  ASSERT_OK(store_->Open(kept, O_RDWR));
  const int64_t later = Store::WallNowNs() + int64_t{3600} * 1000000000;
  EXPECT_EQ(*store_->PurgeUnlinked(later), 1);  // the one nobody reopened
  EXPECT_EQ(Err(store_->GetAttr(dropped)), ESTALE);
  EXPECT_EQ(ReadAll(kept), "still here");
  ASSERT_OK(store_->Release(kept));  // the last close
  EXPECT_EQ(Err(store_->GetAttr(kept)), ESTALE);
}

TEST_F(StoreTest, EverythingSurvivesAReopen) {
  uint64_t d = MakeDir(kRootIno, "dir");
  uint64_t f = MakeFile(d, "file", "durable data");
  ASSERT_OK(store_->SetAttr(f, {.mode = 0600, .uid = 7, .gid = 8}));
  ASSERT_OK(store_->MakeSymlink(d, "sym", "file", {}));
  ASSERT_OK(store_->Link(f, kRootIno, "hard"));
  ASSERT_OK(store_->SetXattr(f, "user.k", "v", 0));
  ASSERT_OK(store_->Rename(d, "file", d, "renamed", 0));
  ASSERT_OK(store_->Sync());
  auto before = store_->GetAttr(f);
  ASSERT_OK(before);
  uint64_t inc = store_->incarnation();

  Reopen();
  EXPECT_EQ(store_->incarnation(), inc + 1);
  auto a = store_->Lookup(d, "renamed");
  ASSERT_OK(a);
  EXPECT_EQ(a->ino, f);
  EXPECT_EQ(a->mode, static_cast<uint32_t>(S_IFREG | 0600));
  EXPECT_EQ(a->uid, 7u);
  EXPECT_EQ(a->nlink, 2u);
  EXPECT_EQ(a->mtime_ns, before->mtime_ns);
  EXPECT_EQ(ReadAll(f), "durable data");
  EXPECT_EQ(*store_->ReadLink(store_->Lookup(d, "sym")->ino), "file");
  EXPECT_EQ(*store_->GetXattr(f, "user.k"), "v");
  EXPECT_EQ(List(d), (std::set<std::string>{".", "..", "renamed", "sym"}));
  // New inodes after a reopen get new numbers and a later time.
  uint64_t g = MakeFile(kRootIno, "g");
  EXPECT_GT(g, f);
  EXPECT_GT(store_->GetAttr(g)->mtime_ns, before->ctime_ns);
  EXPECT_EQ(store_->GetAttr(g)->generation, inc + 1);
}

TEST_F(StoreTest, TimesNeverGoBackwards) {
  uint64_t f = MakeFile(kRootIno, "f");
  int64_t last = 0;
  for (int i = 0; i < 200; ++i) {
    auto w = store_->Write(f, 0, "x", false);
    ASSERT_OK(w);
    EXPECT_GT(w->attr.mtime_ns, last) << "write " << i;
    EXPECT_EQ(w->attr.ctime_ns, w->attr.mtime_ns);
    last = w->attr.mtime_ns;
  }
  // A new file made after the last write has a later time.
  uint64_t g = MakeFile(kRootIno, "g");
  EXPECT_GT(store_->GetAttr(g)->mtime_ns, last);
}

TEST_F(StoreTest, SetAttrTimesModesOwners) {
  uint64_t f = MakeFile(kRootIno, "f");
  ASSERT_OK(store_->SetAttr(f, {.atime_ns = 1'000'000'000, .mtime_ns = 2'000'000'007}));
  auto a = store_->GetAttr(f);
  EXPECT_EQ(a->atime_ns, 1'000'000'000);
  EXPECT_EQ(a->mtime_ns, 2'000'000'007);
  ASSERT_OK(store_->SetAttr(f, {.mtime_ns = AttrChange::kNow}));
  a = store_->GetAttr(f);
  EXPECT_EQ(a->mtime_ns, a->ctime_ns);
  ASSERT_OK(store_->SetAttr(f, {.mode = S_IFDIR | 04755}));
  EXPECT_EQ(store_->GetAttr(f)->mode, static_cast<uint32_t>(S_IFREG | 04755));  // the type stays
  uint64_t d = MakeDir(kRootIno, "d");
  EXPECT_EQ(Err(store_->SetAttr(d, {.size = 0})), EISDIR);
}

TEST_F(StoreTest, SetgidDirectoriesPassOnTheirGroup) {
  uint64_t d = MakeDir(kRootIno, "shared");
  ASSERT_OK(store_->SetAttr(d, {.mode = 02775, .gid = 50}));
  auto sub = store_->MakeDir(d, "sub", 0755, {1000, 1000});
  ASSERT_OK(sub);
  EXPECT_EQ(sub->gid, 50u);
  EXPECT_TRUE(sub->mode & S_ISGID);
  uint64_t f = MakeFile(d, "f");
  EXPECT_EQ(store_->GetAttr(f)->gid, 50u);
}

TEST_F(StoreTest, SymlinksAndSpecialFiles) {
  auto s = store_->MakeSymlink(kRootIno, "s", "/some/where", {5, 5});
  ASSERT_OK(s);
  EXPECT_TRUE(S_ISLNK(s->mode));
  EXPECT_EQ(s->size, 11u);
  EXPECT_EQ(*store_->ReadLink(s->ino), "/some/where");
  EXPECT_EQ(Err(store_->MakeSymlink(kRootIno, "t", std::string(kMaxSymlinkBytes + 1, 'x'), {})), ENAMETOOLONG);
  EXPECT_EQ(Err(store_->MakeSymlink(kRootIno, "t", "", {})), ENOENT);
  EXPECT_EQ(Err(store_->ReadLink(kRootIno)), EINVAL);
  EXPECT_EQ(Err(store_->Open(s->ino, O_RDONLY)), ELOOP);
  auto fifo = store_->MakeNode(kRootIno, "fifo", S_IFIFO | 0600, 0, {});
  ASSERT_OK(fifo);
  EXPECT_TRUE(S_ISFIFO(fifo->mode));
  EXPECT_EQ(Err(store_->MakeNode(kRootIno, "d", S_IFDIR | 0755, 0, {})), EINVAL);
  EXPECT_EQ(Err(store_->Write(fifo->ino, 0, "x", false)), EINVAL);
}

TEST_F(StoreTest, BigDirectoryListsEveryEntryOnceWithStableCookies) {
  uint64_t d = MakeDir(kRootIno, "big");
  std::set<std::string> want = {".", ".."};
  for (int i = 0; i < 3000; ++i) {
    std::string name = "file-" + std::to_string(i);
    MakeFile(d, name);
    want.insert(name);
  }
  EXPECT_EQ(List(d), want);
  // A cookie still points at the same place after entries before it are removed (seekdir).
  auto page = store_->ReadDir(d, 0, 1002);
  ASSERT_OK(page);
  uint64_t cookie = page->entries.back().next_cookie;
  std::string next_name;
  {
    auto p = store_->ReadDir(d, cookie, 1);
    ASSERT_OK(p);
    next_name = p->entries.at(0).name;
  }
  for (int i = 0; i < 500; ++i) ASSERT_OK(store_->Unlink(d, "file-" + std::to_string(i)));
  auto p = store_->ReadDir(d, cookie, 1);
  ASSERT_OK(p);
  EXPECT_EQ(p->entries.at(0).name, next_name);
}

TEST_F(StoreTest, FallocateAndPunchHole) {
  uint64_t f = MakeFile(kRootIno, "f", std::string(3 * kChunkSize, 'a'));
  ASSERT_OK(store_->Fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 2 * kChunkSize));
  std::string want(3 * kChunkSize, 'a');
  std::fill(want.begin() + 100, want.begin() + 100 + 2 * kChunkSize, '\0');
  EXPECT_EQ(ReadAll(f), want);
  ASSERT_OK(store_->Fallocate(f, 0, 0, 4 * kChunkSize));
  EXPECT_EQ(store_->GetAttr(f)->size, 4 * kChunkSize);
  ASSERT_OK(store_->Fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 8 * kChunkSize));
  EXPECT_EQ(store_->GetAttr(f)->size, 4 * kChunkSize);
  ASSERT_OK(store_->Fallocate(f, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 10));
  std::fill(want.begin(), want.begin() + 10, '\0');
  ASSERT_OK(store_->Fallocate(f, FALLOC_FL_ZERO_RANGE, 4 * kChunkSize - 1, 11));  // grows by 10
  EXPECT_EQ(store_->GetAttr(f)->size, 4 * kChunkSize + 10);
  want.resize(4 * kChunkSize + 10, '\0');
  EXPECT_EQ(ReadAll(f), want);
  EXPECT_EQ(Err(store_->Fallocate(f, FALLOC_FL_COLLAPSE_RANGE, 0, kChunkSize)), EOPNOTSUPP);
  EXPECT_EQ(Err(store_->Fallocate(f, 0, 0, 0)), EINVAL);
}

TEST_F(StoreTest, Xattrs) {
  uint64_t f = MakeFile(kRootIno, "f");
  ASSERT_OK(store_->SetXattr(f, "user.a", "1", 0));
  ASSERT_OK(store_->SetXattr(f, "user.b", std::string("\0\1\2", 3), 0));
  EXPECT_EQ(Err(store_->SetXattr(f, "user.a", "2", XATTR_CREATE)), EEXIST);
  EXPECT_EQ(Err(store_->SetXattr(f, "user.c", "2", XATTR_REPLACE)), ENODATA);
  ASSERT_OK(store_->SetXattr(f, "user.a", "2", XATTR_REPLACE));
  EXPECT_EQ(*store_->GetXattr(f, "user.a"), "2");
  EXPECT_EQ(*store_->GetXattr(f, "user.b"), std::string("\0\1\2", 3));
  EXPECT_THAT(*store_->ListXattr(f), ::testing::ElementsAre("user.a", "user.b"));
  EXPECT_EQ(Err(store_->GetXattr(f, "user.none")), ENODATA);
  EXPECT_EQ(Err(store_->SetXattr(f, "system.posix_acl_access", "x", 0)), EOPNOTSUPP);
  EXPECT_EQ(Err(store_->SetXattr(f, "nonamespace", "x", 0)), EOPNOTSUPP);
  EXPECT_EQ(Err(store_->SetXattr(f, "user." + std::string(300, 'x'), "x", 0)), ERANGE);
  EXPECT_EQ(Err(store_->SetXattr(f, "user.big", std::string(kMaxXattrValueBytes + 1, 'x'), 0)), E2BIG);
  ASSERT_OK(store_->RemoveXattr(f, "user.a"));
  EXPECT_EQ(Err(store_->RemoveXattr(f, "user.a")), ENODATA);
  // Xattrs go with the file.
  ASSERT_OK(store_->Unlink(kRootIno, "f"));
  uint64_t g = MakeFile(kRootIno, "g");
  EXPECT_THAT(*store_->ListXattr(g), ::testing::IsEmpty());
}

TEST_F(StoreTest, AStoreInUseIsRefusedWithAClearError) {
  auto second = Store::Open({.path = dir_.string()});
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), ::testing::HasSubstr("another kite-fsd"));
}

TEST(FsErrorsTest, ErrnoSurvivesContextAndCodesMapSensibly) {
  Status s = FsError(ENOTEMPTY, "rmdir 'd'");
  EXPECT_EQ(ErrnoOf(s), ENOTEMPTY);
  EXPECT_EQ(ErrnoOf(s.With("server")), ENOTEMPTY);
  EXPECT_THAT(s.message(), ::testing::HasSubstr("Directory not empty (ENOTEMPTY)"));
  EXPECT_EQ(ErrnoOf(FsError(ESTALE, "x")), ESTALE);
  EXPECT_EQ(ErrnoOf(OkStatus()), 0);
  EXPECT_EQ(ErrnoOf(Unavailable("server down")), EIO);
  EXPECT_EQ(ErrnoOf(NotFound("no (such) thing")), ENOENT);
  EXPECT_EQ(ErrnoOf(InvalidArgument("bad")), EINVAL);
}

}  // namespace
}  // namespace kite::fs
