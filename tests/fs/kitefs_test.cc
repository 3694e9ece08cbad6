// kitefs end to end: a real kite-fsd and two real kitefs mounts (two "hosts" on one machine),
// checked with plain system calls on the mounts. Each test brings up its own FsCluster and
// tears it down (unmount, kill) even when it fails. Needs root.
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fs/fs_errors.h"
#include "tests/fs/fs_cluster.h"
#include "tests/support/status_matchers.h"

namespace kite::fs::testing {
namespace {

using kite::testing::Subprocess;
using std::chrono::milliseconds;
using std::chrono::seconds;

// 0 or errno.
int WriteFile(const std::string& path, const std::string& data, int flags = O_WRONLY | O_CREAT | O_TRUNC) {
  int fd = open(path.c_str(), flags, 0644);
  if (fd < 0) return errno;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      int e = errno;
      close(fd);
      return e;
    }
    done += static_cast<size_t>(n);
  }
  return close(fd) == 0 ? 0 : errno;
}

std::string ReadFd(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// The file's contents, or "<errno N>" when it cannot be read.
std::string ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<errno " + std::to_string(errno) + ">";
  std::string s = ReadFd(fd);
  close(fd);
  return s;
}

struct stat Stat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path << ": " << strerror(errno);
  return st;
}

int64_t MtimeNs(const struct stat& st) { return st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec; }

std::set<std::string> ListDir(const std::string& path) {
  std::set<std::string> names;
  DIR* d = opendir(path.c_str());
  EXPECT_NE(d, nullptr) << path << ": " << strerror(errno);
  if (!d) return names;
  while (dirent* e = readdir(d)) names.insert(e->d_name);
  closedir(d);
  return names;
}

class KitefsTest : public FsClusterTest {
 protected:
  void SetUp() override { StartCluster(); }
};

// Contract 1: after a close on one host, an open on another sees the data, size and mtime —
// also when that host had the old contents cached.
TEST_F(KitefsTest, CloseToOpenAcrossHosts) {
  ASSERT_EQ(WriteFile(A("f"), "first version"), 0);
  EXPECT_EQ(ReadFile(B("f")), "first version");  // B caches it now
  struct stat sa = Stat(A("f")), sb = Stat(B("f"));
  EXPECT_EQ(sb.st_size, 13);
  EXPECT_EQ(MtimeNs(sa), MtimeNs(sb));

  for (int round = 0; round < 5; ++round) {
    // Longer, shorter, same length: the same inode rewritten in place.
    std::string data = Pattern(round == 1 ? 5 : 300000 + round * 7777, round);
    ASSERT_EQ(WriteFile(A("f"), data), 0);
    int fd = open(B("f").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    struct stat st {};
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, static_cast<off_t>(data.size())) << "round " << round;
    EXPECT_EQ(MtimeNs(st), MtimeNs(Stat(A("f")))) << "round " << round;
    EXPECT_TRUE(ReadFd(fd) == data) << "round " << round << ": B read stale data";
    close(fd);
  }
}

// A host's own writes stay in its page cache; another host's write is seen after reopen even
// when the size does not change.
TEST_F(KitefsTest, SameSizeRewriteOnAnotherHostIsSeen) {
  ASSERT_EQ(WriteFile(A("f"), std::string(100000, 'a')), 0);
  EXPECT_EQ(ReadFile(B("f")), std::string(100000, 'a'));
  ASSERT_EQ(WriteFile(B("f"), std::string(100000, 'b'), O_WRONLY), 0);
  EXPECT_EQ(ReadFile(A("f")), std::string(100000, 'b'));
  ASSERT_EQ(WriteFile(A("f"), "c", O_WRONLY), 0);  // one byte in place
  EXPECT_EQ(ReadFile(B("f")), "c" + std::string(99999, 'b'));
}

// Cache callbacks: B's kernel had names and attributes cached; A's changes reach it before
// they return, so B sees them at once without opening anything (make stats, it does not open).
TEST_F(KitefsTest, RemoteChangesAreSeenByStatWithoutWaiting) {
  ASSERT_EQ(WriteFile(A("target"), "old"), 0);
  ASSERT_EQ(WriteFile(A("gone"), "x"), 0);
  ASSERT_EQ(WriteFile(A("new"), "replacement"), 0);
  struct stat before = Stat(B("target"));
  Stat(B("gone"));
  Stat(B("new"));
  EXPECT_EQ(ListDir(B("")), (std::set<std::string>{".", "..", "target", "gone", "new"}));
  for (int round = 0; round < 20; ++round) {
    // A "remote job" rewrites the target; its "home" stats it right after.
    std::string data(100 + round, 'r');
    ASSERT_EQ(WriteFile(A("target"), data), 0);
    struct stat st = Stat(B("target"));
    EXPECT_EQ(st.st_size, static_cast<off_t>(data.size())) << "round " << round;
    EXPECT_GT(MtimeNs(st), MtimeNs(before)) << "round " << round;
    before = st;
  }
  ASSERT_EQ(chmod(A("target").c_str(), 0600), 0);
  EXPECT_EQ(Stat(B("target")).st_mode & 07777, 0600u);
  ASSERT_EQ(unlink(A("gone").c_str()), 0);
  EXPECT_NE(access(B("gone").c_str(), F_OK), 0);
  struct stat repl = Stat(A("new"));
  ASSERT_EQ(rename(A("new").c_str(), A("target").c_str()), 0);
  EXPECT_EQ(Stat(B("target")).st_ino, repl.st_ino);
  EXPECT_NE(access(B("new").c_str(), F_OK), 0);
  ASSERT_EQ(mkdir(A("dir").c_str(), 0755), 0);
  EXPECT_TRUE(S_ISDIR(Stat(B("dir")).st_mode));
  EXPECT_EQ(Stat(B("")).st_nlink, 3u);
  EXPECT_EQ(ListDir(B("")), (std::set<std::string>{".", "..", "target", "dir"}));
  // A name B looked for in vain (the kernel keeps that answer) appears when A makes it; and
  // again after a remove, in a directory B never listed.
  for (int round = 0; round < 10; ++round) {
    std::string name = "dir/later" + std::to_string(round % 3);
    EXPECT_NE(access(B(name).c_str(), F_OK), 0) << "round " << round;
    EXPECT_NE(access(B(name).c_str(), F_OK), 0) << "round " << round;  // from the kernel's cache
    ASSERT_EQ(WriteFile(A(name), "now"), 0);
    EXPECT_EQ(access(B(name).c_str(), F_OK), 0) << "round " << round;
    ASSERT_EQ(unlink(A(name).c_str()), 0);
  }
}

// Read-only opens after the first use this host's shared handle without asking the server
// (fuse_ops.h, "Read-only opens"): still, every rewrite on another host — in place, same size,
// or a new file under the name — is seen by the next open, and so is a change of mode.
TEST_F(KitefsTest, RepeatedReadOnlyOpensSeeEveryRemoteRewrite) {
  std::string data = Pattern(5000, 0);
  ASSERT_EQ(WriteFile(A("hdr"), data), 0);
  for (int i = 1; i <= 60; ++i) {
    EXPECT_EQ(ReadFile(B("hdr")), data) << "open " << i;
    EXPECT_EQ(ReadFile(B("hdr")), data) << "open " << i << ", again";
    if (i % 3 == 0) {  // rewritten in place: same size, same name, same inode
      data = Pattern(5000, i);
      ASSERT_EQ(WriteFile(A("hdr"), data, O_WRONLY), 0);
    } else if (i % 10 == 1) {  // replaced by a new file
      data = Pattern(4000 + i, i);
      ASSERT_EQ(WriteFile(A("hdr.new"), data), 0);
      ASSERT_EQ(rename(A("hdr.new").c_str(), A("hdr").c_str()), 0);
    }
  }
  ASSERT_EQ(chmod(A("hdr").c_str(), 0600), 0);
  EXPECT_EQ(Stat(B("hdr")).st_mode & 07777, 0600u);
  EXPECT_EQ(ReadFile(B("hdr")), data);
}

// Callbacks go to the holders only: a host is told of (and waited for) changes to what it has
// looked at, and never of the rest. Host B hangs (SIGSTOP of its kitefs): A's changes in a
// directory B never looked into return without waiting for it; a change to a file B has
// cached waits for it (the server logs that B did not answer), and B sees it once it is back.
TEST_F(KitefsTest, ChangesGoOnlyToTheHostsThatLookedAtThem) {
  constexpr char kNoAnswer[] = "did not apply invalidations";
  ASSERT_EQ(mkdir(A("seen").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(A("seen/f"), "before"), 0);
  EXPECT_EQ(ReadFile(B("seen/f")), "before");  // B holds seen/ and seen/f
  ASSERT_EQ(mkdir(A("fresh").c_str(), 0755), 0);  // B holds the root: told, and answers
  kite::testing::Subprocess* b = cluster_->client(1);
  ASSERT_EQ(kill(b->pid(), SIGSTOP), 0);
  for (int i = 0; i < 30; ++i) {
    std::string name = "fresh/file" + std::to_string(i);
    ASSERT_EQ(WriteFile(A(name), std::string(1000 + i, 'x')), 0) << name;
    ASSERT_EQ(chmod(A(name).c_str(), 0600), 0) << name;
    ASSERT_EQ(rename(A(name).c_str(), A(name + ".done").c_str()), 0) << name;
  }
  ASSERT_EQ(mkdir(A("fresh/sub").c_str(), 0755), 0);
  EXPECT_THAT(cluster_->ServerLog(), ::testing::Not(::testing::HasSubstr(kNoAnswer)));
  ASSERT_EQ(WriteFile(A("seen/f"), "after, longer"), 0);  // B holds it: waited for, in vain
  EXPECT_THAT(cluster_->ServerLog(), ::testing::HasSubstr(kNoAnswer));
  ASSERT_EQ(kill(b->pid(), SIGCONT), 0);
  EXPECT_EQ(ReadFile(B("seen/f")), "after, longer");
  EXPECT_EQ(ReadFile(B("fresh/file7.done")), std::string(1007, 'x'));
  EXPECT_EQ(Stat(B("fresh/file7.done")).st_mode & 07777, 0600u);
  EXPECT_NE(access(B("fresh/file7").c_str(), F_OK), 0);
}

// A name looked up in vain on one host and then made on another is there on the first as soon
// as the making returns: the first host's "does not exist" is invalidated first. Each round
// asks B twice before A makes the name (the second answer comes from B's negative cache).
TEST_F(KitefsTest, ANameMissingOnOneHostIsThereOnceAnotherMadeIt) {
  ASSERT_EQ(mkdir(A("late").c_str(), 0755), 0);
  struct stat st;
  for (int i = 0; i < 40; ++i) {
    const std::string name = "late/n" + std::to_string(i);
    for (int ask = 0; ask < 2; ++ask) ASSERT_NE(stat(B(name).c_str(), &st), 0) << name;
    switch (i % 5) {
      case 0: ASSERT_EQ(WriteFile(A(name), "made"), 0) << name; break;
      case 1: ASSERT_EQ(mkdir(A(name).c_str(), 0755), 0) << name; break;
      case 2: ASSERT_EQ(symlink("target", A(name).c_str()), 0) << name; break;
      case 3: ASSERT_EQ(WriteFile(A("late/tmp"), "renamed"), 0);
              ASSERT_EQ(rename(A("late/tmp").c_str(), A(name).c_str()), 0) << name; break;
      case 4: ASSERT_EQ(WriteFile(A("late/orig" + std::to_string(i)), "linked"), 0);
              ASSERT_EQ(link(A("late/orig" + std::to_string(i)).c_str(), A(name).c_str()), 0) << name; break;
    }
    EXPECT_EQ(lstat(B(name).c_str(), &st), 0) << name << " made on A is missing on B: " << strerror(errno);
  }
  // And the other way: B made names it had been told were missing, A looks them up.
  for (int i = 0; i < 10; ++i) {
    const std::string name = "late/b" + std::to_string(i);
    ASSERT_NE(stat(B(name).c_str(), &st), 0);
    ASSERT_EQ(WriteFile(B(name), "by b"), 0);
    EXPECT_EQ(ReadFile(B(name)), "by b");
    EXPECT_EQ(ReadFile(A(name)), "by b");
  }
}

// Two hosts making, renaming and removing names in one directory at once (two compilers
// writing objects side by side). Each change waits for the other host's invalidations; a host
// applying one must not wait for its own change in that directory to return, or the two wait
// for each other until the server gives up on them (and says so in its log). Afterwards each
// host sees exactly the other's names.
TEST_F(KitefsTest, TwoHostsChangingOneDirectoryAtOnceNeverWaitForEachOther) {
  constexpr char kNoAnswer[] = "did not apply invalidations";
  ASSERT_EQ(mkdir(A("busy").c_str(), 0755), 0);
  struct stat st;
  ASSERT_EQ(stat(B("busy").c_str(), &st), 0);  // both hold the directory
  constexpr int kFiles = 150;
  auto work = [&](int host, const std::string& who, int* failures) {
    auto path = [&](const std::string& rel) { return cluster_->Path(host, rel); };
    for (int i = 0; i < kFiles; ++i) {
      const std::string base = "busy/" + who + std::to_string(i);
      struct stat ignored;
      if (stat(path(base + ".o").c_str(), &ignored) == 0) ++*failures;  // not made yet
      if (WriteFile(path(base + ".tmp"), who) != 0) ++*failures;
      if (rename(path(base + ".tmp").c_str(), path(base + ".o").c_str()) != 0) ++*failures;
      if (WriteFile(path(base + ".d"), "deps") != 0) ++*failures;
      if (unlink(path(base + ".d").c_str()) != 0) ++*failures;
    }
  };
  int fa = 0, fb = 0;
  std::thread ta([&] { work(0, "a", &fa); });
  std::thread tb([&] { work(1, "b", &fb); });
  ta.join();
  tb.join();
  EXPECT_EQ(fa, 0);
  EXPECT_EQ(fb, 0);
  EXPECT_THAT(cluster_->ServerLog(), ::testing::Not(::testing::HasSubstr(kNoAnswer)));
  for (int i = 0; i < kFiles; ++i) {
    EXPECT_EQ(ReadFile(A("busy/b" + std::to_string(i) + ".o")), "b") << i;
    EXPECT_EQ(ReadFile(B("busy/a" + std::to_string(i) + ".o")), "a") << i;
    EXPECT_NE(stat(A("busy/b" + std::to_string(i) + ".d").c_str(), &st), 0) << i;
    EXPECT_NE(stat(B("busy/a" + std::to_string(i) + ".tmp").c_str(), &st), 0) << i;
  }
}

// Contract 2: a file open on two hosts, one writing: the other never reads stale data, even
// through a descriptor it opened (and read, so cached) before the sharing began.
TEST_F(KitefsTest, WriteSharingNeverReadsStaleData) {
  ASSERT_EQ(WriteFile(A("shared"), std::string(8192, '0')), 0);
  int rb = open(B("shared").c_str(), O_RDONLY);
  ASSERT_GE(rb, 0);
  std::string first(8192, '\0');
  ASSERT_EQ(pread(rb, first.data(), first.size(), 0), 8192);
  int wa = open(A("shared").c_str(), O_WRONLY);
  ASSERT_GE(wa, 0);
  int rb2 = open(B("shared").c_str(), O_RDONLY);  // opened while shared: uncached
  ASSERT_GE(rb2, 0);
  for (int i = 1; i <= 50; ++i) {
    std::string v(8192, static_cast<char>('a' + i % 26));
    ASSERT_EQ(pwrite(wa, v.data(), v.size(), 0), 8192);
    for (int fd : {rb, rb2}) {
      std::string got(8192, '\0');
      ASSERT_EQ(pread(fd, got.data(), got.size(), 0), 8192);
      EXPECT_TRUE(got == v) << "write " << i << ": host B read stale data through fd " << fd;
    }
    // Growing the file is seen too.
    ASSERT_EQ(pwrite(wa, "tail", 4, 8192 + i * 4), 4);
    struct stat st {};
    ASSERT_EQ(fstat(rb, &st), 0);
    EXPECT_EQ(st.st_size, 8192 + i * 4 + 4);
  }
  close(wa);
  close(rb);
  close(rb2);
}

// Contract 3: times come from the server; a later write never has an older mtime, whichever
// host made it.
TEST_F(KitefsTest, OneClockAcrossHosts) {
  int64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    std::string name = "t" + std::to_string(i);
    ASSERT_EQ(WriteFile(i % 2 ? A(name) : B(name), "x"), 0);
    int64_t m = MtimeNs(Stat(A(name)));
    EXPECT_GT(m, last) << name;
    last = m;
  }
}

TEST_F(KitefsTest, RenameReplacesAtomicallyWhileAnotherHostReads) {
  ASSERT_EQ(WriteFile(A("target"), "version-0000"), 0);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, reads{0};
  std::string first_bad;
  std::thread reader([&] {
    while (!stop) {
      std::string s = ReadFile(B("target"));
      ++reads;
      if (s.size() != 12 || s.compare(0, 8, "version-") != 0) {
        if (bad++ == 0) first_bad = s;
      }
    }
  });
  for (int i = 1; i <= 200; ++i) {
    char v[16];
    snprintf(v, sizeof v, "version-%04d", i);
    ASSERT_EQ(WriteFile(A("tmp"), v), 0);
    ASSERT_EQ(rename(A("tmp").c_str(), A("target").c_str()), 0) << strerror(errno);
  }
  stop = true;
  reader.join();
  EXPECT_EQ(bad, 0) << "first bad read: '" << first_bad << "'";
  EXPECT_GT(reads, 0);
  EXPECT_EQ(ReadFile(B("target")), "version-0200");
  EXPECT_EQ(ListDir(B("")), (std::set<std::string>{".", "..", "target"}));
}

TEST_F(KitefsTest, UnlinkedOpenFileStaysReadableUntilClosed) {
  ASSERT_EQ(WriteFile(A("f"), "keep me"), 0);
  int fd = open(B("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  ASSERT_EQ(unlink(A("f").c_str()), 0);
  EXPECT_NE(access(A("f").c_str(), F_OK), 0);
  char buf[32] = {};
  EXPECT_EQ(pread(fd, buf, sizeof buf, 0), 7);
  EXPECT_STREQ(buf, "keep me");
  EXPECT_EQ(pwrite(fd, "KEEP", 4, 0), 4);
  EXPECT_EQ(pread(fd, buf, sizeof buf, 0), 7);
  EXPECT_STREQ(buf, "KEEP me");
  close(fd);
  // The server drops the file at its last release (the kernel sends it after close returns).
  auto direct = cluster_->DirectClient();
  ASSERT_OK(direct);
  Status s;
  for (int i = 0; i < 100; ++i) {
    fsrpc::Attr a;
    s = (*direct)->Call("getattr", [&](ServerPool::Client& c) { c.getattr(a, static_cast<int64_t>(st.st_ino), 0); });
    if (!s.ok()) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(ErrnoOf(s), ESTALE) << s.ToString();
}

TEST_F(KitefsTest, HardLinksAndSymlinks) {
  ASSERT_EQ(mkdir(A("d").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(A("d/f"), "linked"), 0);
  ASSERT_EQ(link(A("d/f").c_str(), A("hard").c_str()), 0) << strerror(errno);
  EXPECT_EQ(link(A("d/f").c_str(), B("cross").c_str()), -1);  // two mounts are two file systems
  EXPECT_EQ(errno, EXDEV);
  EXPECT_EQ(Stat(A("d/f")).st_nlink, 2u);
  EXPECT_EQ(Stat(A("hard")).st_ino, Stat(B("d/f")).st_ino);
  ASSERT_EQ(WriteFile(B("hard"), "changed", O_WRONLY | O_TRUNC), 0);
  EXPECT_EQ(ReadFile(A("d/f")), "changed");
  ASSERT_EQ(unlink(A("d/f").c_str()), 0);
  EXPECT_EQ(ReadFile(B("hard")), "changed");
  EXPECT_EQ(Stat(B("hard")).st_nlink, 1u);
  EXPECT_EQ(link(A("d").c_str(), A("dirlink").c_str()), -1);
  EXPECT_EQ(errno, EPERM);

  ASSERT_EQ(symlink("d/../hard", A("sym").c_str()), 0);
  char target[64] = {};
  ASSERT_EQ(readlink(B("sym").c_str(), target, sizeof target - 1), 9);
  EXPECT_STREQ(target, "d/../hard");
  EXPECT_EQ(ReadFile(B("sym")), "changed");
  struct stat lst {};
  ASSERT_EQ(lstat(B("sym").c_str(), &lst), 0);
  EXPECT_TRUE(S_ISLNK(lst.st_mode));
  ASSERT_EQ(symlink("/nowhere", A("dangling").c_str()), 0);
  EXPECT_EQ(ReadFile(B("dangling")), "<errno 2>");
}

TEST_F(KitefsTest, MkdirRmdirRules) {
  ASSERT_EQ(mkdir(A("a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(A("a/b").c_str(), 0700), 0);
  EXPECT_EQ(mkdir(B("a").c_str(), 0755), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(rmdir(B("a").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_EQ(WriteFile(A("a/file"), "x"), 0);
  EXPECT_EQ(rmdir(B("a/file").c_str()), -1);
  EXPECT_EQ(errno, ENOTDIR);
  EXPECT_EQ(unlink(B("a/b").c_str()), -1);
  EXPECT_EQ(errno, EISDIR);
  EXPECT_EQ(rename(A("a").c_str(), A("a/b/c").c_str()), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(Stat(B("a")).st_nlink, 3u);
  EXPECT_EQ((Stat(B("a/b")).st_mode & 07777), 0700u);
  ASSERT_EQ(rmdir(B("a/b").c_str()), 0);
  ASSERT_EQ(unlink(B("a/file").c_str()), 0);
  ASSERT_EQ(rmdir(A("a").c_str()), 0);
  EXPECT_EQ(ListDir(B("")), (std::set<std::string>{".", ".."}));
  std::string longname(256, 'n');
  EXPECT_EQ(mkdir(A(longname).c_str(), 0755), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
  EXPECT_EQ(mkdir(A(std::string(255, 'n')).c_str(), 0755), 0);
}

TEST_F(KitefsTest, BigDirectoryListsEveryEntryAndSeekdirIsStable) {
  ASSERT_EQ(mkdir(A("big").c_str(), 0755), 0);
  std::set<std::string> want = {".", ".."};
  for (int i = 0; i < 3000; ++i) {
    std::string name = "entry-with-a-longish-name-" + std::to_string(i);
    int fd = open(A("big/" + name).c_str(), O_CREAT | O_WRONLY | O_EXCL, 0644);
    ASSERT_GE(fd, 0) << name << ": " << strerror(errno);
    close(fd);
    want.insert(name);
  }
  EXPECT_EQ(ListDir(B("big")), want);

  DIR* d = opendir(B("big").c_str());
  ASSERT_NE(d, nullptr);
  std::vector<std::pair<long, std::string>> seen;
  for (int i = 0; i < 1500; ++i) {
    long pos = telldir(d);
    dirent* e = readdir(d);
    ASSERT_NE(e, nullptr);
    seen.emplace_back(pos, e->d_name);
  }
  // Entries removed by the other host do not move the ones after them.
  for (int i = 0; i < 300; ++i) ASSERT_EQ(unlink(A("big/entry-with-a-longish-name-" + std::to_string(i)).c_str()), 0);
  for (int k : {1499, 1000, 700}) {
    seekdir(d, seen[k].first);
    dirent* e = readdir(d);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->d_name, seen[k].second);
  }
  closedir(d);
}

// close-to-open for attributes: B had them cached, A changes them, B's next open sees them.
TEST_F(KitefsTest, ChmodChownUtimensSeenAtOpen) {
  ASSERT_EQ(WriteFile(A("f"), "x"), 0);
  Stat(B("f"));  // cached on B
  ASSERT_EQ(chmod(A("f").c_str(), 0640), 0);
  ASSERT_EQ(chown(A("f").c_str(), 1234, 5678), 0);
  timespec times[2] = {{1000000000, 5}, {1500000000, 123456789}};
  ASSERT_EQ(utimensat(AT_FDCWD, A("f").c_str(), times, 0), 0);
  int fd = open(B("f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  close(fd);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1500000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  // UTIME_NOW is the server's now, later than the last change.
  int64_t before = MtimeNs(Stat(A("f")));
  timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
  ASSERT_EQ(utimensat(AT_FDCWD, A("f").c_str(), now, 0), 0);
  EXPECT_GT(MtimeNs(Stat(A("f"))), before);
  // Permissions are the kernel's to check (default_permissions): a user is refused.
  ASSERT_EQ(chmod(A("f").c_str(), 0600), 0);
  ASSERT_EQ(chown(A("f").c_str(), 0, 0), 0);
  auto p = Subprocess::Start({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", B("f")}, {});
  ASSERT_OK(p);
  (*p)->CloseStdin();
  auto r = (*p)->Wait(seconds(20));
  ASSERT_OK(r);
  EXPECT_FALSE(r->Succeeded());
  EXPECT_THAT(r->stderr_data, ::testing::HasSubstr("Permission denied"));
}

TEST_F(KitefsTest, OExclOTruncOAppend) {
  int fd = open(A("x").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_EQ(open(B("x").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, EEXIST);

  ASSERT_EQ(WriteFile(A("t"), std::string(200000, 'z')), 0);
  EXPECT_EQ(ReadFile(B("t")).size(), 200000u);
  fd = open(B("t").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_EQ(Stat(B("t")).st_size, 0);
  EXPECT_EQ(ReadFile(A("t")), "");

  // Two hosts append in turns through descriptors they keep open: every line arrives whole.
  int fa = open(A("log").c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
  ASSERT_GE(fa, 0);
  int fb = open(B("log").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fb, 0);
  std::string want;
  for (int i = 0; i < 100; ++i) {
    std::string la = "host A line " + std::to_string(i) + "\n", lb = "host B line " + std::to_string(i) + "\n";
    ASSERT_EQ(write(fa, la.data(), la.size()), static_cast<ssize_t>(la.size()));
    ASSERT_EQ(write(fb, lb.data(), lb.size()), static_cast<ssize_t>(lb.size()));
    want += la + lb;
  }
  close(fa);
  close(fb);
  EXPECT_EQ(ReadFile(B("log")), want);
  EXPECT_EQ(ReadFile(A("log")), want);
}

TEST_F(KitefsTest, TruncateAndSparseFiles) {
  ASSERT_EQ(WriteFile(A("f"), std::string(300000, 'q')), 0);
  EXPECT_EQ(ReadFile(B("f")).size(), 300000u);
  ASSERT_EQ(truncate(A("f").c_str(), 1000), 0);
  ASSERT_EQ(truncate(A("f").c_str(), 5000), 0);
  EXPECT_EQ(ReadFile(B("f")), std::string(1000, 'q') + std::string(4000, '\0'));
  int fd = open(B("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 10), 0);
  const off_t far = off_t{3} << 40;  // 3 TiB
  ASSERT_EQ(pwrite(fd, "end", 3, far), 3);
  close(fd);
  fd = open(A("f").c_str(), O_RDONLY);  // close-to-open: A's open sees B's size
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, far + 3);
  char buf[8] = {};
  EXPECT_EQ(pread(fd, buf, 8, far - 5), 8);
  EXPECT_EQ(std::string(buf, 8), std::string("\0\0\0\0\0end", 8));
  close(fd);
  // Past the largest file: EFBIG, and the file is unchanged.
  fd = open(A("f").c_str(), O_WRONLY);
  EXPECT_EQ(pwrite(fd, "x", 1, off_t{1} << 50), -1);
  EXPECT_EQ(errno, EFBIG);
  close(fd);
  EXPECT_EQ(truncate(A("f").c_str(), off_t{1} << 50), -1);
  EXPECT_EQ(errno, EFBIG);
  fd = open(B("f").c_str(), O_RDONLY);
  ASSERT_EQ(fstat(fd, &st), 0);
  close(fd);
  EXPECT_EQ(st.st_size, far + 3);
}

TEST_F(KitefsTest, XattrsStatfsAndFallocate) {
  ASSERT_EQ(WriteFile(A("f"), "x"), 0);
  ASSERT_EQ(setxattr(A("f").c_str(), "user.color", "blue", 4, 0), 0) << strerror(errno);
  char v[16] = {};
  EXPECT_EQ(getxattr(B("f").c_str(), "user.color", v, sizeof v), 4);
  EXPECT_STREQ(v, "blue");
  EXPECT_EQ(getxattr(B("f").c_str(), "user.color", v, 2), -1);
  EXPECT_EQ(errno, ERANGE);
  EXPECT_EQ(getxattr(B("f").c_str(), "user.none", v, sizeof v), -1);
  EXPECT_EQ(errno, ENODATA);
  char list[64] = {};
  EXPECT_EQ(listxattr(B("f").c_str(), list, sizeof list), 11);
  // File capabilities are not stored (the kernel would ask for them before every write).
  vfs_cap_data cap{};
  cap.magic_etc = VFS_CAP_REVISION_2;
  cap.data[0].permitted = 1u << CAP_NET_RAW;
  EXPECT_EQ(setxattr(A("f").c_str(), "security.capability", &cap, XATTR_CAPS_SZ_2, 0), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  ASSERT_EQ(removexattr(B("f").c_str(), "user.color"), 0);
  EXPECT_EQ(getxattr(A("f").c_str(), "user.color", v, sizeof v), -1);
  // ACLs (system.*) are refused, by the client or the server alike, never silently dropped.
  const char acl[] = "\2\0\0\0";
  EXPECT_EQ(setxattr(A("f").c_str(), "system.posix_acl_access", acl, 4, 0), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  EXPECT_EQ(getxattr(B("f").c_str(), "system.posix_acl_default", v, sizeof v), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);

  struct statvfs sv {};
  ASSERT_EQ(statvfs(A("").c_str(), &sv), 0);
  EXPECT_GT(sv.f_blocks, 0u);
  EXPECT_EQ(sv.f_namemax, 255u);

  int fd = open(A("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(fallocate(fd, 0, 0, 1 << 20), 0) << strerror(errno);
  ASSERT_EQ(pwrite(fd, "abcdef", 6, 100), 6);
  EXPECT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 101, 2), 0) << strerror(errno);
  EXPECT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, 104, 1), 0) << strerror(errno);
  EXPECT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, (1 << 20) - 10, 20), 0) << strerror(errno);  // grows
  // Unsupported modes fail (the kernel or the server says so), never pretend.
  EXPECT_EQ(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096), -1);
  EXPECT_THAT(errno, ::testing::AnyOf(EOPNOTSUPP, EINVAL));
  EXPECT_EQ(fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, 4096), -1);
  EXPECT_THAT(errno, ::testing::AnyOf(EOPNOTSUPP, EINVAL));
  close(fd);
  fd = open(B("f").c_str(), O_RDONLY);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, (1 << 20) + 10);
  char got[6] = {};
  EXPECT_EQ(pread(fd, got, 6, 100), 6);
  EXPECT_EQ(std::string(got, 6), std::string("a\0\0d\0f", 6));
  close(fd);
}

// Contract 4: what fsync returned for, and every completed rename, unlink and mkdir, survives
// kill -9 of kite-fsd; and (contract 5) the mounts carry on once it is back.
TEST_F(KitefsTest, AcknowledgedChangesSurviveKill9OfTheServer) {
  std::string data = Pattern(5 << 20, 7);
  int fd = open(A("synced").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  ASSERT_EQ(WriteFile(A("renamed-from"), "r"), 0);
  ASSERT_EQ(rename(A("renamed-from").c_str(), A("renamed-to").c_str()), 0);
  ASSERT_EQ(WriteFile(A("doomed"), "d"), 0);
  ASSERT_EQ(unlink(B("doomed").c_str()), 0);
  ASSERT_EQ(mkdir(B("newdir").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(B("unsynced"), "written, closed, never fsynced"), 0);

  ASSERT_OK(cluster_->KillServer(SIGKILL));
  ASSERT_OK(cluster_->StartServer());

  // Through the same mounts: calls waited for the server.
  EXPECT_TRUE(ReadFile(B("synced")) == data);
  EXPECT_EQ(ReadFile(B("renamed-to")), "r");
  EXPECT_NE(access(B("renamed-from").c_str(), F_OK), 0);
  EXPECT_EQ(ReadFile(A("doomed")), "<errno 2>");  // A's open finds it gone
  EXPECT_TRUE(S_ISDIR(Stat(A("newdir")).st_mode));
  // A write the WAL has is not lost by a process crash either (the machine did not crash).
  EXPECT_EQ(ReadFile(A("unsynced")), "written, closed, never fsynced");
  EXPECT_EQ(ListDir(A("")),
            (std::set<std::string>{".", "..", "synced", "renamed-to", "newdir", "unsynced"}));
}

// Contract 5: a server restart is a delay, not an error, for a program using the files.
TEST_F(KitefsTest, ServerRestartIsADelayNotAnError) {
  ASSERT_EQ(WriteFile(A("f"), "steady"), 0);
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0}, reads{0};
  std::thread reader([&] {
    while (!stop) {
      // A fresh name each time (no cache can answer) and a reread of the same file.
      std::string s = ReadFile(B("f"));
      if (s != "steady") ++errors;
      if (WriteFile(B("w" + std::to_string(reads % 10)), "w") != 0) ++errors;
      ++reads;
    }
  });
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_OK(cluster_->KillServer(SIGKILL));
  std::this_thread::sleep_for(seconds(2));
  ASSERT_OK(cluster_->StartServer());
  int at_restart = reads;
  std::this_thread::sleep_for(milliseconds(1000));
  stop = true;
  reader.join();
  EXPECT_EQ(errors, 0);
  EXPECT_GT(reads, at_restart) << "no progress after the restart";
}

// A client killed mid-write (its host crashed) leaves the server healthy: the other host works
// on, sees a consistent file, and the dead client's open files are released when it times out.
TEST_F(KitefsTest, ClientKilledMidWriteLeavesTheServerHealthy) {
  cluster_.reset();
  FsClusterOptions o;
  o.client_timeout_ms = 2000;
  StartCluster(o);
  ASSERT_EQ(WriteFile(B("open-on-a"), "held open by A"), 0);
  auto holder = Subprocess::Start({"sh", "-c", "exec 3<" + A("open-on-a") + "; echo ready; exec sleep 1000"}, {});
  ASSERT_OK(holder);
  ASSERT_TRUE((*holder)->WaitForStdout("ready", seconds(10)));
  struct stat held = Stat(B("open-on-a"));
  ASSERT_EQ(unlink(B("open-on-a").c_str()), 0);

  auto writer = Subprocess::Start({"dd", "if=/dev/zero", "of=" + A("big"), "bs=64k", "count=100000"}, {});
  ASSERT_OK(writer);
  for (int i = 0; i < 200 && (access(B("big").c_str(), F_OK) != 0 || Stat(B("big")).st_size < (1 << 20)); ++i)
    std::this_thread::sleep_for(milliseconds(20));
  ASSERT_OK(cluster_->KillClient(0));
  (*writer)->Kill(SIGKILL).ok();
  (*holder)->Kill(SIGKILL).ok();

  // The other host carries on; the file is what the server acknowledged, zeros throughout.
  std::string big = ReadFile(B("big"));
  EXPECT_GE(big.size(), 1u << 20);
  EXPECT_EQ(big.size() % 4096, 0u);
  EXPECT_EQ(big.find_first_not_of('\0'), std::string::npos);
  ASSERT_EQ(WriteFile(B("after"), "still serving"), 0);
  EXPECT_EQ(ReadFile(B("after")), "still serving");
  // The dead client's handle on the unlinked file is released after its timeout: the file goes.
  auto direct = cluster_->DirectClient();
  ASSERT_OK(direct);
  Status s;
  for (int i = 0; i < 200; ++i) {
    fsrpc::Attr a;
    s = (*direct)->Call("getattr", [&](ServerPool::Client& c) { c.getattr(a, static_cast<int64_t>(held.st_ino), 0); });
    if (!s.ok()) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(ErrnoOf(s), ESTALE) << s.ToString();
  EXPECT_THAT(cluster_->ServerLog(), ::testing::HasSubstr("releasing its 2 open file(s)"));  // the dd's and the holder's
}

// Bad input that no kernel would send, straight over the wire from a cluster host: clear
// errors, nothing changed, the server serves on.
TEST_F(KitefsTest, BadInputOverTheWireGetsClearErrors) {
  auto direct = cluster_->DirectClient();
  ASSERT_OK(direct);
  ServerPool& p = **direct;
  auto err = [&](auto&& fn) {
    return ErrnoOf(p.Call("bad", [&](ServerPool::Client& c) { fn(c); }));
  };
  fsrpc::Attr a;
  std::string s;
  fsrpc::WriteReply w;
  fsrpc::DirPage page;
  fsrpc::Caller caller;
  fsrpc::RequestId none;
  EXPECT_EQ(err([&](auto& c) { c.lookup(a, 1, "a/b", 0); }), EINVAL);
  EXPECT_EQ(err([&](auto& c) { c.lookup(a, 1, std::string("a\0b", 3), 0); }), EINVAL);
  EXPECT_EQ(err([&](auto& c) { c.lookup(a, 1, std::string(300, 'x'), 0); }), ENAMETOOLONG);
  EXPECT_EQ(err([&](auto& c) { c.mkdir(a, 1, "..", 0755, caller, 9, none); }), EEXIST);
  EXPECT_EQ(err([&](auto& c) { c.mkdir(a, 1, "", 0755, caller, 9, none); }), ENOENT);
  EXPECT_EQ(err([&](auto& c) { c.getattr(a, 987654321, 0); }), ESTALE);
  EXPECT_EQ(err([&](auto& c) { c.getattr(a, -1, 0); }), ESTALE);
  EXPECT_EQ(err([&](auto& c) { c.read(s, 1, 0, 10, 0); }), EISDIR);
  EXPECT_EQ(err([&](auto& c) { c.readdir(page, 1, -5, 10, 0); }), EINVAL);
  EXPECT_EQ(err([&](auto& c) { c.readdir(page, 1, 0, 0, 0); }), EINVAL);
  EXPECT_EQ(err([&](auto& c) { c.rename(1, "x", 1, "y", 0x7fffffff, 9, none); }), EINVAL);
  fsrpc::OpenReply o;
  ASSERT_EQ(err([&](auto& c) { c.create(o, 9, 1, "f", 0644, O_RDWR | O_CREAT, caller, none); }), 0);
  EXPECT_EQ(err([&](auto& c) { c.read(s, o.attr.ino, -1, 10, 0); }), EINVAL);
  EXPECT_EQ(err([&](auto& c) { c.read(s, o.attr.ino, 0, -10, 0); }), EINVAL);
  EXPECT_EQ(err([&](auto& c) { c.read(s, o.attr.ino, 0, 1 << 30, 0); }), EINVAL);
  EXPECT_EQ(err([&](auto& c) { c.write(w, o.attr.ino, INT64_MAX - 1, "xy", false, 9, none); }), EFBIG);
  EXPECT_EQ(err([&](auto& c) { c.write(w, o.attr.ino, -100, "xy", false, 9, none); }), EINVAL);
  fsrpc::SetAttr huge;
  huge.__set_size(INT64_MAX);
  EXPECT_EQ(err([&](auto& c) { c.setattr(a, o.attr.ino, huge, 9, none); }), EFBIG);
  EXPECT_EQ(err([&](auto& c) { c.fallocate(a, o.attr.ino, 0, INT64_MAX, INT64_MAX, 9); }), EFBIG);
  EXPECT_EQ(err([&](auto& c) { c.fallocate(a, o.attr.ino, 0, -1, 10, 9); }), EINVAL);
  // A client of protocol 2 would miss invalidations (it does not say who reads): refused.
  fsrpc::ServerInfo info;
  EXPECT_EQ(err([&](auto& c) { c.hello(info, 9, "old-client", 2); }), EPROTO);
  EXPECT_EQ(err([&](auto& c) { c.hold(9, std::vector<int64_t>(70000, 1)); }), EINVAL);
  EXPECT_EQ(err([&](auto& c) { c.release(9, o.handle); }), 0);
  EXPECT_EQ(err([&](auto& c) { c.release(9, o.handle); }), 0);  // twice: not an error
  // Still serving, and the file is empty.
  EXPECT_EQ(Stat(A("f")).st_size, 0);
  ASSERT_EQ(WriteFile(A("g"), "ok"), 0);
  EXPECT_EQ(ReadFile(B("g")), "ok");
}

TEST(KitefsStartTest, StartupErrorsAreClear) {
  auto c = FsCluster::Start({.clients = 1});
  ASSERT_OK(c);
  auto run = [&](const std::vector<std::string>& extra, const std::string& mountpoint) {
    std::vector<std::string> argv = (*c)->ClientArgv(0, extra);
    argv.back() = mountpoint;
    auto p = Subprocess::Start(argv, {});
    EXPECT_OK(p);
    (*p)->CloseStdin();
    auto r = (*p)->Wait(seconds(30));
    EXPECT_OK(r);
    return r.ok() ? *r : kite::testing::ProcessResult{};
  };
  auto r = run({}, ((*c)->dir() / "no-such-dir").string());
  EXPECT_FALSE(r.Succeeded());
  EXPECT_THAT(r.stderr_data, ::testing::HasSubstr("mount point"));
  EXPECT_THAT(r.stderr_data, ::testing::HasSubstr("No such file or directory"));

  std::string spare = ((*c)->dir() / "spare").string();
  ASSERT_EQ(mkdir(spare.c_str(), 0755), 0);
  ASSERT_OK((*c)->KillServer(SIGKILL));
  r = run({"--connect-wait-ms", "1000"}, spare);
  EXPECT_FALSE(r.Succeeded());
  EXPECT_THAT(r.stderr_data, ::testing::HasSubstr("cannot reach kite-fsd 127.0.0.1:"));
  EXPECT_FALSE(IsKitefsMount(spare));
}

}  // namespace
}  // namespace kite::fs::testing
