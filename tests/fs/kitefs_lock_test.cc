// kitefs locks and server restarts end to end: a real kite-fsd and two real kitefs mounts (two
// "hosts"), plain fcntl/flock calls, forked children where a lock needs another process (a
// child does only async-signal-safe calls and reports ints over a pipe). Needs root.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <string>
#include <thread>

#include "tests/fs/fs_cluster.h"
#include "tests/support/status_matchers.h"

namespace kite::fs::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kTimedOut = -1000;   // ReadInt: nothing came in time
constexpr int kWaiting = 1;        // a child's "about to block"

int WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return errno;
  int err = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) ? 0 : errno;
  close(fd);
  return err;
}

// 0 or errno.
int SetLk(int fd, short type, off_t start, off_t len, int cmd = F_SETLK) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  return fcntl(fd, cmd, &fl) == 0 ? 0 : errno;
}

struct flock GetLk(int fd, short type, off_t start, off_t len) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  EXPECT_EQ(fcntl(fd, F_GETLK, &fl), 0) << strerror(errno);
  return fl;
}

int Flock(int fd, int op) { return flock(fd, op) == 0 ? 0 : errno; }

// `try_lock` (a non-blocking lock call: 0 or errno) asked again for up to 2 s while another
// owner's lock is in the way. The kernel drops a description's flock and OFD locks in FUSE
// RELEASE, which it sends asynchronously after the last close() returned (docs/kitefs.md,
// "Locks"): another host sees such a lock go a few milliseconds after that close, not at once.
int AfterRelease(const std::function<int()>& try_lock) {
  int r = try_lock();
  for (int i = 0; i < 200 && r == EAGAIN; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    r = try_lock();
  }
  return r;
}

// A forked child running `body(out)`, which reports ints on `out`; killed and reaped at the end.
class Child {
 public:
  explicit Child(const std::function<void(int out)>& body) {
    int p[2];
    EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
    pid_ = fork();
    if (pid_ == 0) {
      close(p[0]);
      body(p[1]);
      _exit(0);
    }
    close(p[1]);
    fd_ = p[0];
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Reap(seconds(30));
    }
    close(fd_);
  }
  pid_t pid() const { return pid_; }
  // The next int the child reported, or kTimedOut.
  int ReadInt(milliseconds timeout = seconds(60)) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return kTimedOut;
    int v;
    return read(fd_, &v, sizeof v) == sizeof v ? v : kTimedOut;
  }
  // Waits for the child's end; false if it did not end within `timeout`.
  bool Reap(milliseconds timeout) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }

  // For bodies: report `v`; take `sig` without SA_RESTART (a blocked call returns EINTR).
  static void Say(int out, int v) { (void)!write(out, &v, sizeof v); }
  static void InterruptOn(int sig) {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigaction(sig, &sa, nullptr);
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
};

using KitefsLockTest = FsClusterTest;

// fcntl locks are the server's: a lock on one host excludes the other, ranges split and merge,
// F_GETLK reports the holder, and a close releases the closing process's locks.
TEST_F(KitefsLockTest, PosixLocksExcludeAcrossHostsAndGoAtClose) {
  StartCluster();
  ASSERT_EQ(WriteFile(A("f"), std::string(200, 'x')), 0);
  int a = open(A("f").c_str(), O_RDWR), b = open(B("f").c_str(), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_EQ(SetLk(a, F_WRLCK, 0, 100), 0);
  EXPECT_EQ(SetLk(b, F_WRLCK, 50, 10), EAGAIN);
  EXPECT_EQ(SetLk(b, F_RDLCK, 99, 1), EAGAIN);
  EXPECT_EQ(SetLk(b, F_WRLCK, 100, 10), 0);  // right after it
  struct flock g = GetLk(b, F_RDLCK, 0, 0);
  EXPECT_EQ(g.l_type, F_WRLCK);
  EXPECT_EQ(g.l_start, 0);
  EXPECT_EQ(g.l_len, 100);
  EXPECT_EQ(g.l_pid, 0);  // held on another host: no pid that means anything here
  g = GetLk(a, F_RDLCK, 105, 0);
  EXPECT_EQ(g.l_type, F_WRLCK);
  EXPECT_EQ(g.l_start, 100);
  EXPECT_EQ(g.l_len, 10);
  EXPECT_EQ(GetLk(a, F_WRLCK, 0, 100).l_type, F_UNLCK);  // its own lock does not conflict

  // A unlocks the first half (a split), then downgrades the rest to a read lock.
  ASSERT_EQ(SetLk(a, F_UNLCK, 0, 50), 0);
  EXPECT_EQ(SetLk(b, F_WRLCK, 0, 50), 0);
  EXPECT_EQ(SetLk(b, F_WRLCK, 50, 1), EAGAIN);
  ASSERT_EQ(SetLk(a, F_RDLCK, 50, 50), 0);
  EXPECT_EQ(SetLk(b, F_RDLCK, 60, 10), 0);
  EXPECT_EQ(SetLk(b, F_WRLCK, 60, 10), EAGAIN);

  // Closing any descriptor of the file releases the process's locks on it (POSIX), through
  // that mount only.
  int a2 = open(A("f").c_str(), O_RDONLY);
  ASSERT_GE(a2, 0);
  close(a2);
  EXPECT_EQ(SetLk(b, F_WRLCK, 50, 50), 0);
  EXPECT_EQ(SetLk(a, F_RDLCK, 0, 1), EAGAIN);  // B's locks stay
  close(b);
  EXPECT_EQ(SetLk(a, F_WRLCK, 0, 0), 0);  // and went with B's close
  close(a);
}

// F_SETLKW waits for the holder without end, a signal interrupts it (EINTR), it is granted when
// the holder closes, and a waiter killed with SIGKILL dies (and takes nothing).
TEST_F(KitefsLockTest, SetlkwWaitsForTheHolderAndCanBeInterruptedOrKilled) {
  StartCluster();
  ASSERT_EQ(WriteFile(A("f"), "data"), 0);
  const std::string pa = A("f"), pb = B("f");
  int a = open(pa.c_str(), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_EQ(SetLk(a, F_WRLCK, 0, 0), 0);

  // Another process on the same host is another owner; F_GETLK names the holder's pid.
  {
    Child c([&](int out) {
      int fd = open(pa.c_str(), O_RDWR);
      Child::Say(out, SetLk(fd, F_WRLCK, 0, 1));
      struct flock fl {};
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      fcntl(fd, F_GETLK, &fl);
      Child::Say(out, fl.l_pid);
    });
    EXPECT_EQ(c.ReadInt(), EAGAIN);
    EXPECT_EQ(c.ReadInt(), getpid());
  }

  // A waiter on the other host, interrupted by a signal.
  {
    Child w([&](int out) {
      Child::InterruptOn(SIGUSR1);
      int fd = open(pb.c_str(), O_RDWR);
      Child::Say(out, kWaiting);
      Child::Say(out, SetLk(fd, F_WRLCK, 0, 0, F_SETLKW));
    });
    ASSERT_EQ(w.ReadInt(), kWaiting);
    int r = kTimedOut;
    // The signal may come before the child blocks: send it until the child answers.
    for (int i = 0; i < 120 && r == kTimedOut; ++i) {
      kill(w.pid(), SIGUSR1);
      r = w.ReadInt(milliseconds(500));
    }
    EXPECT_EQ(r, EINTR);
  }

  // A waiter on the other host, granted when A's holder closes the file.
  Child holder([&](int out) {
    int fd = open(pb.c_str(), O_RDWR);
    Child::Say(out, kWaiting);
    Child::Say(out, SetLk(fd, F_WRLCK, 0, 0, F_SETLKW));
    pause();  // holds the lock until killed
  });
  ASSERT_EQ(holder.ReadInt(), kWaiting);
  EXPECT_EQ(holder.ReadInt(milliseconds(1500)), kTimedOut);  // not granted while A holds it
  close(a);
  ASSERT_EQ(holder.ReadInt(), 0);
  a = open(pa.c_str(), O_RDWR);
  EXPECT_EQ(SetLk(a, F_RDLCK, 0, 1), EAGAIN);

  // A waiter killed while it waits: it dies, and never gets the lock.
  {
    Child killed([&](int out) {
      int fd = open(pa.c_str(), O_RDWR);
      Child::Say(out, kWaiting);
      Child::Say(out, SetLk(fd, F_WRLCK, 0, 0, F_SETLKW));
      pause();
    });
    ASSERT_EQ(killed.ReadInt(), kWaiting);
    std::this_thread::sleep_for(milliseconds(300));
    kill(killed.pid(), SIGKILL);
    EXPECT_TRUE(killed.Reap(seconds(30))) << "a process waiting for a lock could not be killed";
  }
  kill(holder.pid(), SIGKILL);
  ASSERT_TRUE(holder.Reap(seconds(30)));
  EXPECT_EQ(SetLk(a, F_WRLCK, 0, 0), 0);  // the holder's exit released it; the killed waiter has none
  close(a);
}

// flock: shared locks share, exclusive excludes, across hosts and across descriptions on one
// host; the last close of a description releases it; flock and fcntl locks do not meet.
TEST_F(KitefsLockTest, FlockSharedAndExclusiveAcrossHosts) {
  StartCluster();
  ASSERT_EQ(WriteFile(A("f"), "data"), 0);
  int a = open(A("f").c_str(), O_RDONLY), b = open(B("f").c_str(), O_RDONLY);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_EQ(Flock(a, LOCK_SH | LOCK_NB), 0);
  EXPECT_EQ(Flock(b, LOCK_SH | LOCK_NB), 0);
  EXPECT_EQ(Flock(b, LOCK_EX | LOCK_NB), EWOULDBLOCK);
  ASSERT_EQ(Flock(a, LOCK_UN), 0);
  EXPECT_EQ(Flock(b, LOCK_EX | LOCK_NB), 0);
  EXPECT_EQ(Flock(a, LOCK_SH | LOCK_NB), EWOULDBLOCK);
  // Another description on B's own host is another owner too.
  int b2 = open(B("f").c_str(), O_RDONLY);
  ASSERT_GE(b2, 0);
  EXPECT_EQ(Flock(b2, LOCK_SH | LOCK_NB), EWOULDBLOCK);
  close(b2);
  // fcntl locks are another kind: B's flock does not stop them.
  int aw = open(A("f").c_str(), O_RDWR);
  ASSERT_GE(aw, 0);
  EXPECT_EQ(SetLk(aw, F_WRLCK, 0, 0), 0);
  close(aw);
  // A dup shares the description: closing the dup keeps the lock, the last close drops it.
  int bd = dup(b);
  close(b);
  EXPECT_EQ(Flock(a, LOCK_SH | LOCK_NB), EWOULDBLOCK);
  close(bd);
  EXPECT_EQ(AfterRelease([&] { return Flock(a, LOCK_EX | LOCK_NB); }), 0);
  close(a);
}

// OFD locks belong to the open file description: they go with its last close.
TEST_F(KitefsLockTest, OfdLocksGoWithTheirDescription) {
  StartCluster();
  ASSERT_EQ(WriteFile(A("f"), "data"), 0);
  int a = open(A("f").c_str(), O_RDWR), b = open(B("f").c_str(), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_EQ(SetLk(a, F_WRLCK, 0, 10, F_OFD_SETLK), 0);
  EXPECT_EQ(SetLk(b, F_RDLCK, 5, 1), EAGAIN);
  // Another description in the same process is another OFD owner.
  int a2 = open(A("f").c_str(), O_RDWR);
  EXPECT_EQ(SetLk(a2, F_WRLCK, 0, 1, F_OFD_SETLK), EAGAIN);
  close(a2);
  EXPECT_EQ(SetLk(b, F_RDLCK, 5, 1), EAGAIN);  // closing another description kept it
  close(a);
  EXPECT_EQ(AfterRelease([&] { return SetLk(b, F_WRLCK, 0, 10); }), 0);
  close(b);
}

// A client that vanishes (its host crashed, its kitefs was killed) loses its locks when the
// server expires it; the other host then gets them.
TEST_F(KitefsLockTest, KilledClientsLocksAreFreed) {
  StartCluster({.client_timeout_ms = 2000});
  ASSERT_EQ(WriteFile(A("f"), "data"), 0);
  ASSERT_EQ(WriteFile(A("g"), "data"), 0);
  const std::string pf = A("f"), pg = A("g");
  Child holder([&](int out) {
    int f = open(pf.c_str(), O_RDWR), g = open(pg.c_str(), O_RDONLY);
    Child::Say(out, SetLk(f, F_WRLCK, 0, 0));
    Child::Say(out, Flock(g, LOCK_EX | LOCK_NB));
    pause();
  });
  ASSERT_EQ(holder.ReadInt(), 0);
  ASSERT_EQ(holder.ReadInt(), 0);
  int f = open(B("f").c_str(), O_RDWR), g = open(B("g").c_str(), O_RDONLY);
  ASSERT_GE(f, 0);
  ASSERT_GE(g, 0);
  EXPECT_EQ(SetLk(f, F_WRLCK, 0, 0), EAGAIN);
  EXPECT_EQ(Flock(g, LOCK_EX | LOCK_NB), EWOULDBLOCK);

  ASSERT_OK(cluster_->KillClient(0));
  // Blocking calls: granted once the server expires the dead client (about 2 s).
  EXPECT_EQ(SetLk(f, F_WRLCK, 0, 0, F_SETLKW), 0);
  EXPECT_EQ(Flock(g, LOCK_EX), 0);
  close(f);
  close(g);
}

// Contract 5 for files kept open: kill -9 of kite-fsd and a restart are a delay, not an error,
// for a program holding files open — its descriptors read and write on, an unlinked open file
// survives (also past the grace period), its locks are still its own after the restart, and
// the other host sees its writes.
TEST_F(KitefsLockTest, OpenFilesAndLocksSurviveAServerRestart) {
  StartCluster({.server_args = {"--grace-ms", "2000"}});
  ASSERT_EQ(WriteFile(A("f"), "before...."), 0);
  ASSERT_EQ(WriteFile(A("g"), "g"), 0);
  ASSERT_EQ(WriteFile(A("u"), "unlinked but open"), 0);
  int f = open(A("f").c_str(), O_RDWR), g = open(A("g").c_str(), O_RDONLY), u = open(A("u").c_str(), O_RDWR);
  int fb = open(B("f").c_str(), O_RDONLY);
  ASSERT_GE(f, 0);
  ASSERT_GE(g, 0);
  ASSERT_GE(u, 0);
  ASSERT_GE(fb, 0);
  ASSERT_EQ(unlink(A("u").c_str()), 0);
  ASSERT_EQ(SetLk(f, F_WRLCK, 0, 10), 0);
  ASSERT_EQ(Flock(g, LOCK_EX | LOCK_NB), 0);

  ASSERT_OK(cluster_->KillServer(SIGKILL));
  std::this_thread::sleep_for(seconds(1));
  ASSERT_OK(cluster_->StartServer());

  // The same descriptors, at once (the calls wait for the server as needed).
  ASSERT_EQ(pwrite(f, "after", 5, 0), 5) << strerror(errno);
  char buf[64] = {};
  ASSERT_EQ(pread(fb, buf, sizeof buf, 0), 10) << strerror(errno);
  EXPECT_EQ(std::string(buf, 10), "aftere....");  // "after" over "before...."
  ASSERT_EQ(pwrite(u, "UNLINKED", 8, 0), 8) << strerror(errno);
  // The other host asks for the locks: it waits out the grace period, then is refused, as
  // before the restart.
  int gb = open(B("g").c_str(), O_RDONLY);
  ASSERT_GE(gb, 0);
  EXPECT_EQ(SetLk(fb, F_RDLCK, 5, 1), EAGAIN);
  EXPECT_EQ(Flock(gb, LOCK_SH | LOCK_NB), EWOULDBLOCK);
  // Past the grace period the unlinked file is still there for its descriptor.
  std::this_thread::sleep_for(seconds(2));
  memset(buf, 0, sizeof buf);
  ASSERT_EQ(pread(u, buf, sizeof buf, 0), 17) << strerror(errno);
  EXPECT_EQ(std::string(buf, 17), "UNLINKED but open");
  // The locks are A's own still, and go when A closes.
  EXPECT_EQ(SetLk(f, F_WRLCK, 0, 10), 0);
  close(f);
  close(g);
  close(u);
  EXPECT_EQ(SetLk(fb, F_RDLCK, 5, 1), 0);
  EXPECT_EQ(AfterRelease([&] { return Flock(gb, LOCK_SH | LOCK_NB); }), 0);
  close(fb);
  close(gb);
  EXPECT_NE(cluster_->ClientLog(0).find("reclaimed 2 of 2 lock(s)"), std::string::npos);
}

}  // namespace
}  // namespace kite::fs::testing
