// End-to-end checkpoint/restore tests in CRIU zdtm's shape: a subject (ckpt_prog) sets up
// state, is checkpointed by the shim on request, is killed, and kite-restore brings it back in
// a new process; the subject then checks every piece of state and reports PASS or FAIL.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "syscall-shim/checkpoint/checkpoint_protocol.h"
#include "syscall-shim/restorer/restorer.h"
#include "tests/checkpoint/ckpt_harness.h"

namespace kite::testing {
namespace {

using Pieces = std::vector<std::string>;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Checkpoints `pid` in exit mode and checks the original is gone (SIGKILL) with an image left.
std::string CheckpointAndKill(CkptHarness& h, pid_t pid) {
  std::string image = h.Checkpoint(pid, KITE_CKPT_EXIT);
  EXPECT_TRUE(EndsWith(image, ".img")) << "no image: " << image << " " << h.ReadFile(std::to_string(pid) + ".err");
  int status = h.Wait(pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the original must be gone after an exit-mode image: " << DescribeStatus(status);
  EXPECT_FALSE(h.Exists(std::to_string(pid) + ".img.tmp"));
  return image;
}

// The restored process runs its own program (PR_SET_MM_MAP's exe_fd) and nothing of
// kite-restore is left mapped (the tail unmapped its window).
void ExpectNoTraceOfTheRestorer(pid_t restored) {
  std::string proc = "/proc/" + std::to_string(restored);
  std::error_code ec;
  std::string exe = std::filesystem::read_symlink(proc + "/exe", ec).string();
  EXPECT_TRUE(EndsWith(exe, "kite_ckpt_prog")) << "exe is " << exe;
  std::ifstream maps(proc + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uint64_t start = std::stoull(line.substr(0, line.find('-')), nullptr, 16);
    EXPECT_FALSE(start >= KITE_RESTORER_BASE && start < KITE_RESTORER_BASE + KITE_RESTORER_WINDOW)
        << "left in the restored process: " << line;
    EXPECT_EQ(line.find("kite-restore"), std::string::npos) << line;
  }
}

// Restores `image`, lets it finish, expects PASS.
void RestoreAndCheck(CkptHarness& h, const std::string& image,
                     const CkptHarness::RestoreOptions& options) {
  pid_t launched = h.Restore(image, options);
  ASSERT_GT(launched, 0);
  pid_t restored = h.RestoredPid(launched, options.pid_namespace);
  ASSERT_GT(restored, 0) << "restore did not complete: " << h.ReadFile("restore.log");
  ExpectNoTraceOfTheRestorer(restored);
  h.Go();
  int status = h.Wait(launched);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << DescribeStatus(status) << "\nsubject: " << h.Output() << "\nrestore: " << h.ReadFile("restore.log");
  EXPECT_NE(h.Output().find("PASS"), std::string::npos) << h.Output();
}

// ---- One test per piece of state ---------------------------------------------------------

class PieceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PieceTest, SurvivesCheckpointKillRestore) {
  CkptHarness h;
  pid_t pid = h.StartSubject({GetParam()}, {});
  ASSERT_GT(pid, 0) << h.Output();
  std::string image = CheckpointAndKill(h, pid);
  ASSERT_TRUE(EndsWith(image, ".img"));
  RestoreAndCheck(h, image, {});
}

INSTANTIATE_TEST_SUITE_P(Checkpoint, PieceTest,
                         ::testing::Values("counter", "heap", "fpu", "signals", "itimer",
                                           "pending", "umask", "cwd", "file", "deleted", "mmap", "rlimit",
                                           "name", "tid", "stack", "brk"),
                         [](const auto& info) { return info.param; });

const Pieces kAll = {"counter", "heap", "fpu", "signals", "itimer", "pending", "umask", "cwd",
                     "file", "mmap", "rlimit", "name", "tid", "stack", "brk", "vpid"};

TEST(Checkpoint, AllStateWithVpid) {
  CkptHarness h;
  pid_t pid = h.StartSubject(kAll, {.vpid = true});
  ASSERT_GT(pid, 0);
  std::string image = CheckpointAndKill(h, pid);
  RestoreAndCheck(h, image, {});
}

TEST(Checkpoint, AllStateInNewPidNamespaceAsPid2) {
  CkptHarness h;
  pid_t pid = h.StartSubject(kAll, {.vpid = true});
  ASSERT_GT(pid, 0);
  std::string image = CheckpointAndKill(h, pid);
  RestoreAndCheck(h, image, {.pid_namespace = true});
}

// ---- Modes ----------------------------------------------------------------------------------

TEST(Checkpoint, ContinueModeLeavesTheOriginalRunningUnchanged) {
  CkptHarness h;
  Pieces pieces = {"heap", "fpu", "signals", "pending", "file", "tid", "vpid"};
  pid_t pid = h.StartSubject(pieces, {.vpid = true});
  ASSERT_GT(pid, 0);
  std::string image = h.Checkpoint(pid, KITE_CKPT_CONTINUE);
  ASSERT_TRUE(EndsWith(image, ".img")) << image;
  EXPECT_EQ(kill(pid, 0), 0) << "the original must keep running";
  h.Go();
  int status = h.Wait(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeStatus(status) << h.Output();
  EXPECT_NE(h.Output().find("PASS"), std::string::npos) << h.Output();
  // The image taken on the way is good too.
  unlink(h.Path("go").c_str());
  RestoreAndCheck(h, image, {});
}

TEST(Checkpoint, RestoreTwiceFromOneImage) {
  CkptHarness h;
  Pieces pieces = {"heap", "fpu", "signals", "itimer", "file", "mmap", "tid", "vpid"};
  pid_t pid = h.StartSubject(pieces, {.vpid = true});
  ASSERT_GT(pid, 0);
  std::string image = CheckpointAndKill(h, pid);
  RestoreAndCheck(h, image, {});
  unlink(h.Path("go").c_str());
  RestoreAndCheck(h, image, {.pid_namespace = true});
}

// A restored process is checkpointed and restored again, three times, with its output file
// continuing across all of them.
TEST(Checkpoint, ChainOfThreeRestores) {
  CkptHarness h;
  pid_t pid = h.StartSubject({"counter", "heap", "signals", "itimer", "tid", "vpid"}, {.vpid = true});
  ASSERT_GT(pid, 0);
  std::string image = CheckpointAndKill(h, pid);
  for (int round = 0; round < 3; ++round) {
    bool ns = round == 1;
    pid_t launched = h.Restore(image, {.pid_namespace = ns});
    pid_t restored = h.RestoredPid(launched, ns);
    ASSERT_GT(restored, 0) << "round " << round << ": " << h.ReadFile("restore.log");
    if (round == 2) {
      h.Go();
      int status = h.Wait(launched);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeStatus(status) << h.Output();
      EXPECT_NE(h.Output().find("PASS"), std::string::npos) << h.Output();
      break;
    }
    usleep(100 * 1000);  // let it run on a little
    image = h.Checkpoint(restored, KITE_CKPT_EXIT);
    ASSERT_TRUE(EndsWith(image, ".img")) << "round " << round << ": " << image << " "
                                         << h.ReadFile(std::to_string(restored) + ".err");
    int status = h.Wait(launched);
    EXPECT_TRUE(ns ? WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL
                   : WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << DescribeStatus(status);
  }
}

// ---- Refusals: .err written, process unharmed ----------------------------------------------

void ExpectRefused(const Pieces& pieces, const std::string& reason,
                   const CkptHarness::SubjectOptions& options = {}) {
  CkptHarness h;
  pid_t pid = h.StartSubject(pieces, options);
  ASSERT_GT(pid, 0);
  std::string result = h.Checkpoint(pid, KITE_CKPT_EXIT);
  ASSERT_TRUE(EndsWith(result, ".err")) << result;
  std::string err = h.ReadFile(std::to_string(pid) + ".err");
  EXPECT_NE(err.find(reason), std::string::npos) << err;
  EXPECT_FALSE(h.Exists(std::to_string(pid) + ".img"));
  EXPECT_FALSE(h.Exists(std::to_string(pid) + ".img.tmp"));
  EXPECT_EQ(kill(pid, 0), 0) << "a refused checkpoint must leave the process running";
  h.Go();
  int status = h.Wait(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeStatus(status) << h.Output();
}

TEST(CheckpointRefusal, Socket) { ExpectRefused({"counter", "pending", "socket"}, "is a socket"); }
TEST(CheckpointRefusal, TwoThreads) { ExpectRefused({"counter", "threads"}, "more than one thread"); }
TEST(CheckpointRefusal, SharedMemory) { ExpectRefused({"counter", "shared"}, "shared memory"); }

// A write that fails half-way (disk full) in exit mode: no image, the reason, and the process
// runs on unchanged, its pending signals back in place.
TEST(CheckpointRefusal, WriteFailureInExitModeKeepsTheProcess) {
  ExpectRefused({"counter", "heap", "pending", "signals"}, "ENOSPC", {.fault = "enospc"});
}

TEST(CheckpointRefusal, UnknownModeKeepsRunning) {
  CkptHarness h;
  pid_t pid = h.StartSubject({"counter"}, {});
  ASSERT_GT(pid, 0);
  std::string result = h.Checkpoint(pid, 77);
  ASSERT_TRUE(EndsWith(result, ".err")) << result;
  EXPECT_NE(h.ReadFile(std::to_string(pid) + ".err").find("unknown checkpoint request"), std::string::npos);
  h.Go();
  int status = h.Wait(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeStatus(status) << h.Output();
}

// ---- Identity -------------------------------------------------------------------------------

TEST(RestoreIdentity, RootImageNeedsAllowRoot) {
  CkptHarness h;
  pid_t pid = h.StartSubject({"counter", "heap"}, {.uid = 0});
  ASSERT_GT(pid, 0);
  std::string image = CheckpointAndKill(h, pid);
  std::string out;
  int status = CkptHarness::RunRestoreTool({image}, &out);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == KITE_RESTORE_EXIT_DENIED) << DescribeStatus(status);
  EXPECT_NE(out.find("--allow-root"), std::string::npos) << out;
  RestoreAndCheck(h, image, {.allow_root = true});
}

TEST(RestoreIdentity, ExpectUidMismatchIsDenied) {
  CkptHarness h;
  pid_t pid = h.StartSubject({"counter"}, {});
  ASSERT_GT(pid, 0);
  std::string image = CheckpointAndKill(h, pid);
  std::string out;
  int status = CkptHarness::RunRestoreTool({"--expect-uid", "1234", image}, &out);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == KITE_RESTORE_EXIT_DENIED) << DescribeStatus(status) << out;
}

}  // namespace
}  // namespace kite::testing
