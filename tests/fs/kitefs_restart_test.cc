// Exactly-once changes across a server crash (contract 5: a restart is a delay, not an error;
// docs/kitefs.md, "Exactly-once changes"): kite-fsd is killed with SIGKILL right after it has
// committed an application's change and before the reply leaves — by its test-only fault point
// KITE_FSD_FAULT=kill-after-commit:OP (fs/file_handler.cc) — and started again; the kitefs
// client resends the change with its request id and the application's call returns success,
// exactly as if nothing had happened. Without the recorded outcomes the resend got EEXIST or
// ENOENT (or the call EIO). Real kite-fsd, real FUSE mounts, plain system calls. Needs root.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "fs/fs_errors.h"
#include "tests/fs/fs_cluster.h"
#include "tests/support/status_matchers.h"

namespace kite::fs::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string ReadAll(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<errno " + std::to_string(errno) + ">";
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

int Put(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return errno;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return close(fd) == 0 && ok ? 0 : EIO;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

class KitefsCrashAfterCommitTest : public FsClusterTest {
 protected:
  void SetUp() override { StartCluster(); }

  // Restarts kite-fsd with the fault point for `op` armed, runs `call` (0 or an errno) on the
  // application's side, waits for the server to kill itself after committing, starts it again
  // (unarmed) and returns what `call` returned.
  int CrashAfterCommit(const std::string& op, const std::function<int()>& call) {
    EXPECT_OK(cluster_->KillServer(SIGKILL));
    EXPECT_OK(cluster_->StartServer({"KITE_FSD_FAULT=kill-after-commit:" + op}));
    // Both mounts back in touch with the (armed) server, their reclaims done.
    for (int i = 0; i < 2; ++i) {
      struct stat st;
      EXPECT_EQ(stat(cluster_->mount(i).c_str(), &st), 0) << strerror(errno);
    }
    std::this_thread::sleep_for(milliseconds(1500));

    std::atomic<int> result{-1};
    std::thread app([&] { result = call(); });
    auto died = cluster_->WaitForServerExit(seconds(30));
    EXPECT_OK(died);
    if (died.ok()) {
      EXPECT_TRUE(WIFSIGNALED(died->exit_status) && WTERMSIG(died->exit_status) == SIGKILL)
          << "kite-fsd " << died->Describe();
    }
    EXPECT_NE(cluster_->ServerLog().find("KITE_FSD_FAULT=kill-after-commit:" + op), std::string::npos)
        << "the fault point did not fire";
    EXPECT_OK(cluster_->StartServer());
    app.join();
    return result;
  }
};

TEST_F(KitefsCrashAfterCommitTest, MkdirWhoseReplyDiedWithTheServerSucceeds) {
  int r = CrashAfterCommit("mkdir", [&] { return mkdir(A("made").c_str(), 0750) == 0 ? 0 : errno; });
  EXPECT_EQ(r, 0) << strerror(r);
  struct stat st {};
  ASSERT_EQ(stat(B("made").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(Put(A("made/inside"), "x"), 0);  // the directory the kernel was given works
  EXPECT_EQ(ReadAll(B("made/inside")), "x");
}

TEST_F(KitefsCrashAfterCommitTest, RenameWhoseReplyDiedWithTheServerSucceeds) {
  ASSERT_EQ(Put(A("from"), "moved"), 0);
  ASSERT_EQ(Put(A("to"), "replaced"), 0);
  int r = CrashAfterCommit("rename", [&] { return rename(A("from").c_str(), A("to").c_str()) == 0 ? 0 : errno; });
  EXPECT_EQ(r, 0) << strerror(r);
  EXPECT_FALSE(Exists(B("from")));
  EXPECT_EQ(ReadAll(B("to")), "moved");
  EXPECT_EQ(ReadAll(A("to")), "moved");
}

TEST_F(KitefsCrashAfterCommitTest, UnlinkWhoseReplyDiedWithTheServerSucceeds) {
  ASSERT_EQ(Put(A("doomed"), "d"), 0);
  int r = CrashAfterCommit("unlink", [&] { return unlink(A("doomed").c_str()) == 0 ? 0 : errno; });
  EXPECT_EQ(r, 0) << strerror(r);
  EXPECT_FALSE(Exists(A("doomed")));
  EXPECT_FALSE(Exists(B("doomed")));
}

TEST_F(KitefsCrashAfterCommitTest, ExclusiveCreateWhoseReplyDiedWithTheServerSucceeds) {
  int fd = -1;
  int r = CrashAfterCommit("create", [&] {
    fd = open(A("excl").c_str(), O_CREAT | O_EXCL | O_RDWR, 0640);
    return fd >= 0 ? 0 : errno;
  });
  ASSERT_EQ(r, 0) << strerror(r);
  // The descriptor is the file that was made: written through it, read on the other host.
  ASSERT_EQ(write(fd, "exclusive", 9), 9);
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(ReadAll(B("excl")), "exclusive");
  struct stat st {};
  ASSERT_EQ(stat(B("excl").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // And it is one file: a second exclusive create is refused as it should be.
  EXPECT_LT(open(B("excl").c_str(), O_CREAT | O_EXCL | O_RDWR, 0640), 0);
  EXPECT_EQ(errno, EEXIST);
}

TEST_F(KitefsCrashAfterCommitTest, AppendWhoseReplyDiedWithTheServerIsWrittenOnce) {
  ASSERT_EQ(Put(A("log"), "one\n"), 0);
  int fd = open(A("log").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  int r = CrashAfterCommit("write", [&] { return write(fd, "two\n", 4) == 4 ? 0 : errno; });
  EXPECT_EQ(r, 0) << strerror(r);
  ASSERT_EQ(write(fd, "three\n", 6), 6);
  close(fd);
  EXPECT_EQ(ReadAll(B("log")), "one\ntwo\nthree\n");
}

// The handler over the wire: a change sent twice with one request id is done once, and a
// create's resend gets the first handle back, or a new one after a restart.
TEST_F(KitefsCrashAfterCommitTest, ASecondSendOfARequestIdGetsTheFirstOutcome) {
  auto direct = cluster_->DirectClient();
  ASSERT_OK(direct);
  ServerPool& p = **direct;
  auto call = [&](auto&& fn) { return p.Call("direct", [&](ServerPool::Client& c) { fn(c); }); };
  constexpr int64_t kClient = 0x5e55;
  fsrpc::Caller caller;
  fsrpc::RequestId mk, cr;
  mk.seq = 1;
  mk.acked_below = 1;
  cr.seq = 2;
  cr.acked_below = 1;
  fsrpc::Attr first, again;
  ASSERT_OK(call([&](auto& c) { c.mkdir(first, 1, "d", 0755, caller, kClient, mk); }));
  ASSERT_OK(call([&](auto& c) { c.mkdir(again, 1, "d", 0755, caller, kClient, mk); }));
  EXPECT_EQ(again.ino, first.ino);
  fsrpc::OpenReply o1, o2, o3;
  ASSERT_OK(call([&](auto& c) { c.create(o1, kClient, 1, "f", 0644, O_CREAT | O_EXCL | O_RDWR, caller, cr); }));
  ASSERT_OK(call([&](auto& c) { c.create(o2, kClient, 1, "f", 0644, O_CREAT | O_EXCL | O_RDWR, caller, cr); }));
  EXPECT_EQ(o2.attr.ino, o1.attr.ino);
  EXPECT_EQ(o2.handle, o1.handle);  // the same open, not a second one
  ASSERT_OK(cluster_->KillServer(SIGKILL));
  ASSERT_OK(cluster_->StartServer());
  ASSERT_OK(call([&](auto& c) { c.mkdir(again, 1, "d", 0755, caller, kClient, mk); }));
  EXPECT_EQ(again.ino, first.ino);
  ASSERT_OK(call([&](auto& c) { c.create(o3, kClient, 1, "f", 0644, O_CREAT | O_EXCL | O_RDWR, caller, cr); }));
  EXPECT_EQ(o3.attr.ino, o1.attr.ino);
  EXPECT_NE(o3.incarnation, o1.incarnation);  // a handle of the new server
  // A new request id is a new change.
  fsrpc::RequestId fresh;
  fresh.seq = 3;
  fresh.acked_below = 3;
  Status s = call([&](auto& c) { c.mkdir(again, 1, "d", 0755, caller, kClient, fresh); });
  EXPECT_EQ(ErrnoOf(s), EEXIST) << s.ToString();
  // And having acknowledged 1 and 2, their copies are stale.
  s = call([&](auto& c) { c.mkdir(again, 1, "d", 0755, caller, kClient, mk); });
  EXPECT_EQ(ErrnoOf(s), EALREADY) << s.ToString();
}

}  // namespace
}  // namespace kite::fs::testing
