// checkpoint_job / restore_job at the JobManager level: a counting job started on "node2" is
// checkpointed (exit mode) and restored by a second manager as "node3"; its output continues
// at the same offsets with no line lost or repeated and its exit status comes through. A
// refused checkpoint (two threads) leaves the job running; hostile image paths are refused.
// The two managers run one after the other: a process can host only one reaper
// (JobManager waits for any child). Runs as root; jobs run as nobody.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/migration.h"
#include "remoted/job_checkpoint.h"
#include "remoted/job_manager.h"

namespace kite {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr int kNobody = 65534;
const std::string kBin = KITE_BIN_DIR;

std::string Lines(int from, int to) {
  std::string s;
  for (int i = from; i <= to; ++i) s += std::to_string(i) + "\n";
  return s;
}

class JobMigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "runs jobs as nobody: run as root";
    char tmpl[] = "/tmp/kite-migrate-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    ::chmod(dir_.c_str(), 0755);
    config_.slots = 2;
    config_.allow_root = false;
    config_.cgroup_parent = "kite-mtest-" + std::to_string(::getpid());
    config_.owner_detect = "none";
    config_.shim_path = kBin + "/libkite-shim.so";
    config_.run_dir = dir_ + "/run";
    config_.shared_paths = {dir_ + "/shared"};  // the cluster FS both "hosts" see
    // One checkpoint directory for both "hosts": restore_job finds the images where they were
    // written, as it does after checkpoint_transfer has copied them (tested on real hosts).
    config_.checkpoint_dir = dir_ + "/checkpoints";
    ::mkdir(config_.run_dir.c_str(), 0755);
    ::mkdir(config_.shared_paths[0].c_str(), 0755);
    Become("node2");
  }

  void TearDown() override {
    jobs_.reset();
    owner_.reset();
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  void Become(const std::string& host) {
    jobs_.reset();
    owner_.reset();
    config_.host_name = host;
    owner_ = std::make_unique<OwnerMonitor>(config_);
    auto m = JobManager::Create(config_, owner_.get());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    jobs_ = std::move(m).value();
  }

  static rpc::ExecSpec Counter(int n, int delay_ms, bool thread = false) {
    rpc::ExecSpec s;
    s.argv = {kBin + "/kite_migrate_counter", std::to_string(n), std::to_string(delay_ms)};
    if (thread) s.argv.push_back("thread");
    s.env = {"PATH=/usr/bin:/bin", "LANG=C"};
    s.cwd = "/";
    s.umask = 022;
    s.creds.uid = kNobody;
    s.creds.gid = kNobody;
    s.home_host = "home1";
    s.vpid = 4242;
    s.home_ppid = 17;
    return s;
  }

  // Reads stdout from `out_off` until `want` is in it or the job exits (then *status is set).
  std::string Read(int64_t id, int64_t out_off, int64_t err_off, const std::string& want, int* status,
                   std::string* err = nullptr, std::chrono::seconds timeout = 30s) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto o = jobs_->ReadOutput(id, out_off + out.size(), err_off, 500);
      if (!o.ok()) {
        ADD_FAILURE() << o.status().ToString();
        break;
      }
      EXPECT_EQ(o->stdout_offset, out_off + static_cast<int64_t>(out.size()));
      out += o->stdout_data;
      err_off = o->stderr_offset + o->stderr_data.size();
      if (err) *err += o->stderr_data;
      if (o->exited) {
        if (status) *status = o->wait_status;
        break;
      }
      if (!want.empty() && out.find(want) != std::string::npos) break;
    }
    return out;
  }

  std::string dir_;
  Config config_;
  std::unique_ptr<OwnerMonitor> owner_;
  std::unique_ptr<JobManager> jobs_;
};

class JobMigrationByProgramTest : public JobMigrationTest, public ::testing::WithParamInterface<bool> {};

// The C counter, and python3 (an interpreter with many mappings) doing the same.
TEST_P(JobMigrationByProgramTest, JobMovesToAnotherHostWithItsOutputContinuing) {
  constexpr int kLines = 300;
  rpc::ExecSpec spec = Counter(kLines, 4);
  if (GetParam())
    spec.argv = {"python3", "-c",
                 "import sys, time\nfor i in range(1, 301):\n  print(i, flush=True)\n  time.sleep(0.004)\nsys.exit(7)"};
  auto id = jobs_->Start(spec);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  int status = -1;
  std::string before = Read(*id, 0, 0, "\n40\n", &status);
  ASSERT_THAT(before, HasSubstr("\n40\n")) << "the job did not get going";

  auto ck = jobs_->Checkpoint(*id, AfterCheckpoint::kExit);
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_FALSE(ck->left_running);
  EXPECT_EQ(ck->image_path, config_.checkpoint_dir + "/node2/65534/job-" + std::to_string(*id) + ".job");
  EXPECT_EQ(ck->creds.uid, kNobody);
  EXPECT_EQ(ck->vpid, 4242);
  EXPECT_EQ(ck->home_ppid, 17);
  EXPECT_EQ(ck->stdin_offset, 0);
  EXPECT_THAT(ck->command, HasSubstr(GetParam() ? "python3" : "kite_migrate_counter"));
  // The original is gone; everything it wrote is readable up to the returned offset.
  before += Read(*id, before.size(), 0, "", &status);
  ASSERT_TRUE(WIFSIGNALED(status)) << std::hex << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  ASSERT_EQ(static_cast<int64_t>(before.size()), ck->stdout_offset);
  ASSERT_TRUE(jobs_->Release(*id).ok());
  const int last = before.empty() ? 0 : std::atoi(before.substr(before.rfind('\n', before.size() - 2) + 1).c_str());
  ASSERT_EQ(before, Lines(1, last)) << "output before the move is not 1.." << last;
  ASSERT_LT(last, kLines) << "the job finished before its checkpoint";

  Become("node3");
  auto id2 = jobs_->Restore(RestoreSpecFor(*ck));
  ASSERT_TRUE(id2.ok()) << id2.status().ToString();
  status = -1;
  std::string errs;
  std::string after = Read(*id2, ck->stdout_offset, ck->stderr_offset, "", &status, &errs, 60s);
  ASSERT_TRUE(WIFEXITED(status)) << std::hex << status << " stderr: " << errs;
  EXPECT_EQ(WEXITSTATUS(status), 7) << "stderr: " << errs;
  EXPECT_EQ(before + after, Lines(1, kLines));
  EXPECT_TRUE(jobs_->Release(*id2).ok());
}


// Input the job had not read when it stopped is the home's to resend: the stdin offset
// returned counts only what the job consumed.
TEST_F(JobMigrationTest, UnreadStdinIsResentFromTheReturnedOffset) {
  rpc::ExecSpec spec = Counter(0, 300);
  spec.argv[1] = "cat";
  auto id = jobs_->Start(spec);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto acc = jobs_->WriteInput(*id, 0, "a\nb\n", false);
  ASSERT_TRUE(acc.ok() && *acc == 4);
  int status = -1;
  std::string before = Read(*id, 0, 0, "a\n", &status);
  ASSERT_EQ(before, "a\n");
  auto ck = jobs_->Checkpoint(*id, AfterCheckpoint::kExit);  // while it sleeps after "a\n"; "b\n" is in the pipe
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  before += Read(*id, before.size(), 0, "", &status);
  ASSERT_EQ(static_cast<int64_t>(before.size()), ck->stdout_offset);
  EXPECT_EQ(ck->stdin_offset, static_cast<int64_t>(before.size()));
  ASSERT_TRUE(jobs_->Release(*id).ok());

  Become("node3");
  auto id2 = jobs_->Restore(RestoreSpecFor(*ck));
  ASSERT_TRUE(id2.ok()) << id2.status().ToString();
  const std::string input = "a\nb\nc\n";
  auto acc2 = jobs_->WriteInput(*id2, ck->stdin_offset, input.substr(ck->stdin_offset), true);
  ASSERT_TRUE(acc2.ok()) << acc2.status().ToString();
  EXPECT_EQ(*acc2, static_cast<int64_t>(input.size()));
  std::string errs;
  std::string after = Read(*id2, ck->stdout_offset, 0, "", &status, &errs);
  ASSERT_TRUE(WIFEXITED(status)) << std::hex << status << " stderr: " << errs;
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_EQ(before + after, input);
  EXPECT_TRUE(jobs_->Release(*id2).ok());
}

// stdout on a pty: the restored job writes to the new job's pty, with the old settings.
TEST_F(JobMigrationTest, PtyStdoutIsReattached) {
  constexpr int kLines = 200;
  rpc::ExecSpec spec = Counter(kLines, 4);
  spec.tty_mask = JobLauncher::kTtyStdout;
  spec.winsize.rows = 33;
  spec.winsize.cols = 101;
  spec.__isset.winsize = true;
  auto id = jobs_->Start(spec);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  int status = -1;
  std::string before = Read(*id, 0, 0, "\n30\r\n", &status);
  auto ck = jobs_->Checkpoint(*id, AfterCheckpoint::kExit);
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_TRUE(ck->__isset.termios);
  ASSERT_TRUE(ck->__isset.winsize);
  EXPECT_EQ(ck->winsize.rows, 33);
  EXPECT_EQ(ck->winsize.cols, 101);
  before += Read(*id, before.size(), 0, "", &status);
  ASSERT_EQ(static_cast<int64_t>(before.size()), ck->stdout_offset);
  ASSERT_TRUE(jobs_->Release(*id).ok());

  Become("node3");
  auto id2 = jobs_->Restore(RestoreSpecFor(*ck));
  ASSERT_TRUE(id2.ok()) << id2.status().ToString();
  std::string errs;
  std::string after = Read(*id2, ck->stdout_offset, ck->stderr_offset, "", &status, &errs, 60s);
  ASSERT_TRUE(WIFEXITED(status)) << std::hex << status << " stderr: " << errs;
  EXPECT_EQ(WEXITSTATUS(status), 7);
  std::string all = before + after;
  std::erase(all, '\r');
  EXPECT_EQ(all, Lines(1, kLines));
  EXPECT_TRUE(jobs_->Release(*id2).ok());
}

INSTANTIATE_TEST_SUITE_P(CounterAndPython, JobMigrationByProgramTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Python3" : "C"; });

TEST_F(JobMigrationTest, RefusedCheckpointLeavesTheJobRunning) {
  constexpr int kLines = 60;
  auto id = jobs_->Start(Counter(kLines, 20, /*thread=*/true));
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  int status = -1;
  std::string out = Read(*id, 0, 0, "\n3\n", &status);
  auto ck = jobs_->Checkpoint(*id, AfterCheckpoint::kExit);
  ASSERT_FALSE(ck.ok());
  EXPECT_EQ(ck.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(ck.status().message(), HasSubstr("thread"));
  out += Read(*id, out.size(), 0, "", &status);
  ASSERT_TRUE(WIFEXITED(status)) << std::hex << status;
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_EQ(out, Lines(1, kLines));
  EXPECT_TRUE(jobs_->Release(*id).ok());
}

TEST_F(JobMigrationTest, SocketsAndUnshimmedChildrenAreRefusedWithTheReason) {
  struct Case {
    std::vector<std::string> argv;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {{"python3", "-c", "import socket,time\ns=socket.socket()\nprint('up',flush=True)\ntime.sleep(30)"},
            "socket"},
           // "up" comes from the child once it runs without the shim.
           {{"sh", "-c", "env -u LD_PRELOAD sh -c 'echo up; exec sleep 30'; echo never"}, "does not run the kite shim"}}) {
    rpc::ExecSpec spec = Counter(1, 1);
    spec.argv = c.argv;
    auto id = jobs_->Start(spec);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    int status = -1;
    ASSERT_EQ(Read(*id, 0, 0, "up\n", &status), "up\n") << c.argv[0];
    auto guests = jobs_->Guests();
    ASSERT_EQ(guests.size(), 1u);
    const pid_t pid = guests[0].local_pid;
    auto ck = jobs_->Checkpoint(*id, AfterCheckpoint::kExit);
    ASSERT_FALSE(ck.ok()) << c.argv[0];
    EXPECT_EQ(ck.status().code(), StatusCode::kFailedPrecondition) << ck.status().ToString();
    EXPECT_THAT(ck.status().message(), HasSubstr(c.want));
    EXPECT_TRUE(::kill(pid, 0) == 0) << c.argv[0] << " was lost";
    EXPECT_TRUE(jobs_->Release(*id).ok());
  }
}

// A job tree: sh waiting on a pipeline of three processes, with bytes in the pipes between
// them. Every process moves, in shape (sh reaps its restored children natively), the pipes
// keep their unread bytes, and the output goes on with nothing lost or repeated.
TEST_F(JobMigrationTest, APipelineMovesWholeWithTheBytesInItsPipes) {
  constexpr int kLines = 400;
  rpc::ExecSpec spec = Counter(kLines, 4);
  spec.argv = {"sh", "-c", "\"$0\" " + std::to_string(kLines) + " 4 | cat | cat; echo \"done $?\"; exit 5",
               kBin + "/kite_migrate_counter"};
  auto id = jobs_->Start(spec);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  int status = -1;
  std::string before = Read(*id, 0, 0, "\n40\n", &status);
  ASSERT_THAT(before, HasSubstr("\n40\n")) << "the job did not get going";
  auto ck = jobs_->Checkpoint(*id, AfterCheckpoint::kExit);
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  before += Read(*id, before.size(), 0, "", &status);
  ASSERT_EQ(static_cast<int64_t>(before.size()), ck->stdout_offset);
  ASSERT_TRUE(jobs_->Release(*id).ok());
  std::ifstream manifest(ck->image_path);
  std::string text((std::istreambuf_iterator<char>(manifest)), std::istreambuf_iterator<char>());
  // Header, 3 streams, the ckpt-dir line; sh and its 3 processes; the 2 pipes between them.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n') - 5, 4 + 2) << "sh, 3 processes, 2 pipes:\n" << text;
  EXPECT_NE(text.find("\nckpt-dir " + config_.checkpoint_dir + "/node2/65534\n"), std::string::npos) << text;

  Become("node3");
  auto id2 = jobs_->Restore(RestoreSpecFor(*ck));
  ASSERT_TRUE(id2.ok()) << id2.status().ToString();
  std::string errs;
  std::string after = Read(*id2, ck->stdout_offset, ck->stderr_offset, "", &status, &errs, 60s);
  ASSERT_TRUE(WIFEXITED(status)) << std::hex << status << " stderr: " << errs;
  EXPECT_EQ(WEXITSTATUS(status), 5) << "stderr: " << errs;
  EXPECT_EQ(before + after, Lines(1, kLines) + "done 0\n") << "stderr: " << errs;
  EXPECT_TRUE(jobs_->Release(*id2).ok());
}

TEST_F(JobMigrationTest, HostileImagesAreRefused) {
  rpc::RestoreSpec rs;
  rs.creds.uid = kNobody;
  rs.creds.gid = kNobody;
  rs.home_host = "home1";
  rs.vpid = 1;
  auto refused = [&](const std::string& path, StatusCode code, const std::string& why) {
    rs.image_path = path;
    auto r = jobs_->Restore(rs);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.status().code(), code) << path << ": " << r.status().ToString();
    EXPECT_THAT(r.status().message(), HasSubstr(why)) << path;
  };
  auto dir = JobCheckpoint::PrepareDir(config_, kNobody, kNobody);
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  refused("/etc/passwd", StatusCode::kInvalidArgument, "not under the checkpoint directory");
  refused("relative.job", StatusCode::kInvalidArgument, "absolute");
  refused(*dir + "/../../../../../../etc/x.job", StatusCode::kInvalidArgument, "");
  refused(*dir + "/none.job", StatusCode::kNotFound, "no checkpoint");
  refused(*dir + "/an-image.img", StatusCode::kInvalidArgument, "not named *.job");
  // A symlink inside the directory to a file elsewhere.
  ASSERT_EQ(::symlink("/etc/passwd", (*dir + "/link.job").c_str()), 0);
  refused(*dir + "/link.job", StatusCode::kInvalidArgument, "not canonical");
  auto owned = [&](const std::string& name, const std::string& text) {
    const std::string path = *dir + "/" + name;
    std::ofstream(path) << text;
    EXPECT_EQ(::chown(path.c_str(), kNobody, kNobody), 0);
    return path;
  };
  const std::string streams = "stream 0 none\nstream 1 none\nstream 2 none\n";
  // Garbage owned by the right user.
  const std::string junk = owned("junk.job", std::string(8192, 'x') + "\n");
  refused(junk, StatusCode::kInvalidArgument, "not a kite job manifest");
  // Manifests that point out of the directory, at a garbage image, at a missing one, or that
  // have no shape.
  refused(owned("up.job", "kite-job-checkpoint 1\n" + streams + "proc 5 0 5 image ../x.img\n"),
          StatusCode::kInvalidArgument, "bad image file name");
  owned("junk.img", std::string(8192, 'x'));
  refused(owned("bad-image.job", "kite-job-checkpoint 1\n" + streams + "proc 5 0 5 image junk.img\n"),
          StatusCode::kInvalidArgument, "invalid");
  refused(owned("no-image.job", "kite-job-checkpoint 1\n" + streams + "proc 5 0 5 image gone.img\n"),
          StatusCode::kNotFound, "no checkpoint");  // the image
  refused(owned("orphan.job", "kite-job-checkpoint 1\n" + streams + "proc 5 0 5 image junk.img\nproc 6 9 5 image junk.img\n"),
          StatusCode::kInvalidArgument, "parent is not a live process");
  refused(owned("nostream.job", "kite-job-checkpoint 1\nproc 5 0 5 image junk.img\n"), StatusCode::kInvalidArgument,
          "lacks stream");
  // Someone else's file.
  ASSERT_EQ(::chown(junk.c_str(), 0, 0), 0);
  refused(junk, StatusCode::kPermissionDenied, "belongs to uid 0");
  // Root, without allow_root.
  rs.creds.uid = 0;
  rs.creds.gid = 0;
  refused(junk, StatusCode::kPermissionDenied, "root");
  // Negative offsets.
  rs.creds.uid = kNobody;
  rs.stdout_offset = -1;
  refused(junk, StatusCode::kInvalidArgument, "negative");
}

}  // namespace
}  // namespace kite
