// The job manifest (syscall-shim/tree/job_manifest.h) and the pid map
// (syscall-shim/pids/pid_map_file.h): round trips, every rule the formats state, hostile
// input, and the checkpoint file listing the home uses to remove a checkpoint.
#include "syscall-shim/tree/job_manifest.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

#include "syscall-shim/pids/pid_map_file.h"

namespace kite {
namespace {

const std::string kStreams = "stream 0 pipe 11\nstream 1 tty\nstream 2 none\n";

std::string Manifest(const std::string& body) { return std::string(JobManifest::kHeader) + "\n" + kStreams + body; }

TEST(JobManifestTest, RoundTripsAShellWithAPipeline) {
  JobManifest m;
  m.streams[0] = {JobManifest::StreamKind::kPipe, 11};
  m.streams[1] = {JobManifest::StreamKind::kTty, 0};
  m.procs.push_back({4242, 0, 4242, false, "job-1.4242.img", 0});
  m.procs.push_back({5001, 4242, 4242, false, "job-1.5001.img", 0});
  m.procs.push_back({5002, 4242, 4242, true, "", 256});
  m.pipes.push_back({777, "job-1.pipe-777"});
  m.pipes.push_back({778, ""});
  m.shares.push_back({12345, {{4242, 1}, {4242, 2}, {5001, 1}}});
  m.ckpt_dir = "/kite/.kite-ckpt/node2/1000";
  auto back = JobManifest::Parse(m.Serialize());
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << m.Serialize();
  EXPECT_EQ(back->Serialize(), m.Serialize());
  EXPECT_EQ(back->IndexOf(5001), 1);
  EXPECT_EQ(back->IndexOf(9), -1);
  EXPECT_EQ(back->StreamOfPipe(11), 0);
  EXPECT_EQ(back->StreamOfPipe(777), -1);
  ASSERT_NE(back->FindPipe(777), nullptr);
  EXPECT_EQ(back->FindPipe(777)->data_file, "job-1.pipe-777");
  EXPECT_TRUE(back->procs[2].exited);
  EXPECT_EQ(back->procs[2].wait_status, 256);
  EXPECT_EQ(back->ckpt_dir, "/kite/.kite-ckpt/node2/1000");
  ASSERT_EQ(back->shares.size(), 1u);
  EXPECT_EQ(back->FindShare(5001, 1), &back->shares[0]);
  EXPECT_EQ(back->FindShare(5001, 2), nullptr);
  EXPECT_EQ(back->shares[0].pos, 12345);
  EXPECT_EQ(back->shares[0].holders.size(), 3u);
}

TEST(JobManifestTest, RefusesWhatTheFormatForbids) {
  struct Case {
    std::string text, why;
  };
  for (const Case& c : std::vector<Case>{
           {"", "empty"},
           {"kite-job-checkpoint 2\n", "not a kite job manifest"},
           {Manifest("proc 5 0 5 image a.img"), "newline"},
           {std::string(JobManifest::kHeader) + "\nproc 5 0 5 image a.img\n", "lacks stream"},
           {Manifest("stream 1 tty\nproc 5 0 5 image a.img\n"), "stream listed twice"},
           {Manifest(""), "no process"},
           {Manifest("proc 5 3 5 image a.img\n"), "root's parent must be 0"},
           {Manifest("proc 5 0 5 exited 0\n"), "root has exited"},
           {Manifest("proc 5 0 5 image a.img\nproc 6 9 5 image b.img\n"), "parent is not a live process"},
           {Manifest("proc 5 0 5 image a.img\nproc 6 5 5 exited 0\nproc 7 6 5 image c.img\n"), "parent is not a live"},
           {Manifest("proc 5 0 5 image a.img\nproc 5 5 5 image b.img\n"), "listed twice"},
           {Manifest("proc 5 0 5 image ../a.img\n"), "bad image file name"},
           {Manifest("proc 5 0 5 image /etc/passwd\n"), "bad image file name"},
           {Manifest("proc 5 0 5 image .\n"), "bad image file name"},
           {Manifest("proc 5 0 5 image a.img\nproc 6 5 5 exited 99999999\n"), "bad wait status"},
           {Manifest("proc -5 0 5 image a.img\n"), "bad proc"},
           {Manifest("proc 5 0 5 image a.img\npipe 11 -\n"), "standard stream's pipe"},
           {Manifest("proc 5 0 5 image a.img\npipe 12 -\npipe 12 -\n"), "pipe listed twice"},
           {Manifest("proc 5 0 5 image a.img\npipe 12 x/y\n"), "bad pipe data file name"},
           {Manifest("proc 5 0 5 image a.img\nrm -rf /\n"), "unknown record"},
           {Manifest("proc 5 0 5 image a.img\nckpt-dir relative\n"), "bad ckpt-dir"},
           {Manifest("proc 5 0 5 image a.img\nckpt-dir /a/../etc\n"), "bad ckpt-dir"},
           {Manifest("proc 5 0 5 image a.img\nckpt-dir /a/\n"), "bad ckpt-dir"},
           {Manifest("proc 5 0 5 image a.img\nckpt-dir /a\nckpt-dir /b\n"), "listed twice"},
           {Manifest("proc 5 0 5 image a.img\nshare 0 5 1\n"), "bad share"},  // one holder only
           {Manifest("proc 5 0 5 image a.img\nshare -1 5 1 5 2\n"), "bad share"},
           {Manifest("proc 5 0 5 image a.img\nshare 0 5 1 5\n"), "bad share"},
           {Manifest("proc 5 0 5 image a.img\nshare 0 5 1 6 1\n"), "not a live process"},
           {Manifest("proc 5 0 5 image a.img\nproc 6 5 5 exited 0\nshare 0 5 1 6 1\n"), "not a live process"},
           {Manifest("proc 5 0 5 image a.img\nshare 0 5 1 5 x\n"), "bad share holder"},
           {Manifest("proc 5 0 5 image a.img\nshare 0 5 1 5 1048576\n"), "bad share holder"},
           {Manifest("proc 5 0 5 image a.img\nshare 0 5 1 5 2\nshare 9 5 2 5 3\n"), "two shares"},
           {Manifest("proc 5 0 5 image a.img\nshare 0 5 1 5 1\n"), "two shares"},
       }) {
    auto m = JobManifest::Parse(c.text);
    ASSERT_FALSE(m.ok()) << c.text;
    EXPECT_NE(m.status().message().find(c.why), std::string::npos) << c.text << "\n" << m.status().ToString();
  }
  std::string many = Manifest("proc 5 0 5 image a.img\n");
  for (int i = 0; i < JobManifest::kMaxProcs; ++i) many += "proc " + std::to_string(100 + i) + " 5 5 image a.img\n";
  EXPECT_FALSE(JobManifest::Parse(many).ok());
}

TEST(JobManifestTest, RandomBytesNeverCrashTheParser) {
  std::mt19937 rng(7);
  const std::string good = Manifest("proc 5 0 5 image a.img\nproc 6 5 5 exited 0\npipe 12 p\n");
  for (int round = 0; round < 20000; ++round) {
    std::string t = good;
    for (int k = 0; k < 1 + round % 4; ++k) t[rng() % t.size()] = static_cast<char>(rng() % 256);
    auto m = JobManifest::Parse(t);
    if (m.ok()) {
      EXPECT_TRUE(JobManifest::Parse(m->Serialize()).ok());
    }
  }
}

TEST(JobManifestTest, ListsAndRemovesEveryFileOfACheckpoint) {
  char tmpl[] = "/tmp/kite-manifest-test-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  auto put = [&](const std::string& name, const std::string& data) { std::ofstream(dir + "/" + name) << data; };
  put("job-1.job", Manifest("proc 5 0 5 image job-1.5.img\nproc 6 5 5 exited 0\nproc 7 5 5 image job-1.7.img\n"
                            "pipe 12 job-1.pipe-12\npipe 13 -\n"));
  put("job-1.5.img", std::string(1000, 'a'));
  put("job-1.7.img", std::string(24, 'b'));
  put("job-1.pipe-12", "xyz");
  put("other.img", "not this checkpoint's");
  auto files = ListCheckpointFiles(dir + "/job-1.job");
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(files->processes, 2);
  ASSERT_EQ(files->paths.size(), 4u);
  EXPECT_EQ(files->paths[0], dir + "/job-1.job");
  struct stat st;
  ASSERT_EQ(::stat((dir + "/job-1.job").c_str(), &st), 0);
  EXPECT_EQ(files->bytes, st.st_size + 1000 + 24 + 3);
  RemoveCheckpoint(dir + "/job-1.job");
  for (const std::string& p : files->paths) EXPECT_NE(::access(p.c_str(), F_OK), 0) << p;
  EXPECT_EQ(::access((dir + "/other.img").c_str(), F_OK), 0);
  EXPECT_FALSE(ListCheckpointFiles(dir + "/job-1.job").ok());
  RemoveCheckpoint(dir + "/none.job");  // nothing there: no error, nothing else touched
  EXPECT_EQ(::access((dir + "/other.img").c_str(), F_OK), 0);
  std::system(("rm -rf " + dir).c_str());
}

TEST(PidMapFileTest, ParsesMapsAndRefusesMalformedOnes) {
  using shim::PidMapFile;
  using shim::PidPair;
  PidPair pairs[PidMapFile::kMaxEntries];
  int n = 0;
  const std::string good = std::string(PidMapFile::kHeader) + "4242 700\n5001 701\n";
  ASSERT_TRUE(PidMapFile::Parse(good.data(), good.size(), pairs, &n));
  ASSERT_EQ(n, 2);
  EXPECT_EQ(pairs[1].vpid, 5001);
  EXPECT_EQ(pairs[1].real, 701);
  for (const std::string& bad : std::vector<std::string>{
           "", "kite-pids 2\n", std::string(PidMapFile::kHeader) + "4242 700", std::string(PidMapFile::kHeader) + "0 700\n",
           std::string(PidMapFile::kHeader) + "4242  700\n", std::string(PidMapFile::kHeader) + "4242 700\n4242 701\n",
           std::string(PidMapFile::kHeader) + "4242 700\n4243 700\n", std::string(PidMapFile::kHeader) + "99999999999 1\n",
           std::string(PidMapFile::kHeader) + "-4 7\n"}) {
    EXPECT_FALSE(PidMapFile::Parse(bad.data(), bad.size(), pairs, &n)) << bad;
  }
  char path[64];
  EXPECT_TRUE(PidMapFile::PathFor("/run/kite/homed.sock", 77, path, sizeof path));
  EXPECT_STREQ(path, "/run/kite/pids/77");
  EXPECT_FALSE(PidMapFile::PathFor("/run/kite/homed.sock", 77, path, 10));
  EXPECT_FALSE(PidMapFile::PathFor("/run/kite/homed.sock", 0, path, sizeof path));
}

}  // namespace
}  // namespace kite
