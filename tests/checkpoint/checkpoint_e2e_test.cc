// End-to-end checkpoint/restore tests in CRIU zdtm's shape: a subject (ckpt_prog) sets up
// state, is checkpointed by the shim on request, is killed, and kite-restore brings it back in
// a new process; the subject then checks every piece of state and reports PASS or FAIL. A
// restore can take its pages from a stream (--pages), as a move between hosts does.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
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

// ---- Pages through a stream (kite-restore --pages, as a move between hosts does) ----------

struct StreamedImage {
  std::string image;  // header and metadata, a hole where the pages were
  std::string fifo;   // <image>.pages
  std::string pages;  // the page data, for the writer
};

// Splits `image` as kite-remoted's streaming fetch does (remoted/checkpoint_transfer.h).
StreamedImage SplitForStreaming(CkptHarness& h, const std::string& image) {
  std::ifstream in(image, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  StreamedImage out;
  kite_img_header hdr;
  EXPECT_GE(bytes.size(), sizeof hdr);
  if (bytes.size() < sizeof hdr) return out;
  std::memcpy(&hdr, bytes.data(), sizeof hdr);
  for (const kite_img_section& s : hdr.sections) {
    if (s.type != KITE_SEC_PAGE_DATA) continue;
    out.pages = bytes.substr(s.offset, s.size);
    std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(s.offset),
              bytes.begin() + static_cast<std::ptrdiff_t>(s.offset + s.size), '\0');
  }
  EXPECT_GT(out.pages.size(), 0u);
  out.image = h.Path("streamed.img");
  out.fifo = out.image + ".pages";
  std::ofstream(out.image, std::ios::binary) << bytes;
  EXPECT_EQ(mkfifo(out.fifo.c_str(), 0600), 0);
  // kite-restore opens it as the image's user.
  EXPECT_EQ(chown(out.fifo.c_str(), CkptHarness::kNobody, CkptHarness::kNobody), 0);
  EXPECT_EQ(chown(out.image.c_str(), CkptHarness::kNobody, CkptHarness::kNobody), 0);
  return out;
}

// Writes `len` bytes of `data` into the FIFO in small pieces (a network copy's pace), then
// closes it.
std::thread StreamWriter(const std::string& fifo, const std::string& data, size_t len) {
  return std::thread([fifo, data, len] {
    int fd = open(fifo.c_str(), O_WRONLY | O_CLOEXEC);  // blocks until kite-restore opens it
    if (fd < 0) return;
    for (size_t done = 0; done < len;) {
      ssize_t n = write(fd, data.data() + done, std::min<size_t>(len - done, 100000));
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    close(fd);
  });
}

TEST(StreamedPages, ARestoreFromAPageStreamIsTheSameProcess) {
  CkptHarness h;
  pid_t pid = h.StartSubject(kAll, {.vpid = true});
  ASSERT_GT(pid, 0);
  StreamedImage s = SplitForStreaming(h, CheckpointAndKill(h, pid));
  ASSERT_FALSE(s.pages.empty());
  std::thread writer = StreamWriter(s.fifo, s.pages, s.pages.size());
  RestoreAndCheck(h, s.image, {.pages = s.fifo});
  writer.join();
}

TEST(StreamedPages, AStreamThatBreaksOffFailsTheRestoreWithTheReason) {
  signal(SIGPIPE, SIG_IGN);  // the writer outlives a restore that stops reading
  CkptHarness h;
  pid_t pid = h.StartSubject({"counter", "heap"}, {});
  ASSERT_GT(pid, 0);
  StreamedImage s = SplitForStreaming(h, CheckpointAndKill(h, pid));
  ASSERT_GT(s.pages.size(), 8192u);
  std::thread writer = StreamWriter(s.fifo, s.pages, s.pages.size() / 2);
  std::string out;
  int status = CkptHarness::RunRestoreTool({"--pages", s.fifo, s.image}, &out);
  writer.join();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == KITE_RESTORE_EXIT_FAILED) << DescribeStatus(status) << out;
  EXPECT_NE(out.find("the page stream ended early"), std::string::npos) << out;

  // Bytes that are not the pages: the run checksums catch them before anything runs.
  std::string wrong = s.pages;
  for (size_t i = 0; i < wrong.size(); i += 4096) wrong[i] ^= 0x5a;
  writer = StreamWriter(s.fifo, wrong, wrong.size());
  status = CkptHarness::RunRestoreTool({"--pages", s.fifo, s.image}, &out);
  writer.join();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == KITE_RESTORE_EXIT_FAILED) << DescribeStatus(status) << out;
  EXPECT_NE(out.find("checksum mismatch"), std::string::npos) << out;

  // A --pages that is no FIFO is refused before the point of no return.
  status = CkptHarness::RunRestoreTool({"--pages", s.image, s.image}, &out);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == KITE_RESTORE_EXIT_HOST) << DescribeStatus(status) << out;
  EXPECT_NE(out.find("not a FIFO"), std::string::npos) << out;
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
