// checkpoint_job / restore_job over Thrift between real kite-remoted daemons on a simulated
// cluster: a counting job started on node2 is checkpointed there and restored on node3 through
// the shared /kite tree; its output continues with no line lost or repeated and its exit status
// comes through. A refused checkpoint (two threads) leaves the job running on node2.
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "common/config.h"
#include "common/migration.h"
#include "common/rpc.h"
#include "kite/rpc/Remote.h"
#include "tests/support/sim_cluster.h"
#include "tests/support/status_matchers.h"

namespace kite::testing {
namespace {

using ::testing::HasSubstr;
using RemoteConn = Conn<rpc::RemoteClient>;

std::string Lines(int from, int to) {
  std::string s;
  for (int i = from; i <= to; ++i) s += std::to_string(i) + "\n";
  return s;
}

// The scenarios run inside node1 (as homed would: its /etc/kite, the cluster's host names and
// addresses), started by MigrateTest below through `scripts/cluster exec`; outside a cluster
// host (no KITE_MIGRATE_DRIVER) they are skipped.
class MigrateDriver : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::getenv("KITE_MIGRATE_DRIVER") == nullptr) GTEST_SKIP() << "runs inside a simulated host (MigrateTest)";
    auto config = LoadConfig("/etc/kite/kite.toml");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = *config;
    auto tls = TlsContext::Create(config_);
    ASSERT_TRUE(tls.ok()) << tls.status().ToString();
    tls_ = *tls;
  }

  std::unique_ptr<RemoteConn> Remote(const std::string& host) {
    auto addr = config_.AddressOf(host);
    EXPECT_TRUE(addr.ok()) << addr.status().ToString();
    if (!addr.ok()) return nullptr;
    auto c = Connect<rpc::RemoteClient>(*tls_, *addr, config_.remote_port, 5000, 60000);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  static rpc::ExecSpec Counter(int n, int delay_ms, bool thread = false) {
    rpc::ExecSpec s;
    s.argv = {SimCluster::BinDir() + "/kite_migrate_counter", std::to_string(n), std::to_string(delay_ms)};
    if (thread) s.argv.push_back("thread");
    s.env = {"PATH=/usr/bin:/bin", "LANG=C"};
    s.cwd = "/";
    s.umask = 022;
    s.creds.uid = 65534;
    s.creds.gid = 65534;
    s.home_host = "node1";
    s.vpid = 777;
    s.home_ppid = 1;
    return s;
  }

  // Reads stdout from `off` until `want` appears or the job exits (*status set).
  static std::string Read(RemoteConn& c, int64_t id, int64_t off, int64_t err_off, const std::string& want,
                          int* status) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      rpc::JobOutput o;
      Status s = Call("read_output", [&] { c->read_output(o, id, off + out.size(), err_off, 500); });
      if (!s.ok()) {
        ADD_FAILURE() << s.ToString();
        break;
      }
      EXPECT_EQ(o.stdout_offset, off + static_cast<int64_t>(out.size()));
      out += o.stdout_data;
      err_off = o.stderr_offset + o.stderr_data.size();
      if (o.exited) {
        *status = o.wait_status;
        break;
      }
      if (!want.empty() && out.find(want) != std::string::npos) break;
    }
    return out;
  }

  Config config_;
  std::shared_ptr<TlsContext> tls_;
};

TEST_F(MigrateDriver, JobMovesFromNode2ToNode3) {
  constexpr int kLines = 200;
  auto node2 = Remote("node2");
  auto node3 = Remote("node3");
  ASSERT_TRUE(node2 && node3);
  rpc::ExecReply started;
  ASSERT_OK(Call("start_job", [&] { (*node2)->start_job(started, Counter(kLines, 10)); }));
  int status = -1;
  std::string before = Read(*node2, started.job_id, 0, 0, "\n20\n", &status);
  ASSERT_THAT(before, HasSubstr("\n20\n"));

  rpc::CheckpointReply ck;
  ASSERT_OK(Call("checkpoint_job", [&] { (*node2)->checkpoint_job(ck, started.job_id, false, false); }));
  // In node2's own checkpoint directory; node3's remoted copies it from there.
  EXPECT_THAT(ck.image_path, ::testing::StartsWith("/var/lib/kite/checkpoints/node2/65534/"));
  EXPECT_EQ(ck.image_host, "node2");
  EXPECT_GT(ck.image_bytes, 0);
  EXPECT_EQ(ck.processes, 1);
  before += Read(*node2, started.job_id, before.size(), 0, "", &status);
  ASSERT_TRUE(WIFSIGNALED(status)) << std::hex << status;
  ASSERT_EQ(static_cast<int64_t>(before.size()), ck.stdout_offset);
  ASSERT_OK(Call("release", [&] { (*node2)->release(started.job_id); }));

  rpc::RestoreSpec rs = RestoreSpecFor(ck);
  rpc::ExecReply restored;
  ASSERT_OK(Call("restore_job", [&] { (*node3)->restore_job(restored, rs); }));
  status = -1;
  std::string after = Read(*node3, restored.job_id, ck.stdout_offset, ck.stderr_offset, "", &status);
  ASSERT_TRUE(WIFEXITED(status)) << std::hex << status;
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_EQ(before + after, Lines(1, kLines));
  ASSERT_OK(Call("release", [&] { (*node3)->release(restored.job_id); }));

  // A hostile path is refused by node3.
  rs.image_path = "/etc/shadow";
  Status refused = Call("restore_job", [&] { (*node3)->restore_job(restored, rs); });
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument) << refused.ToString();
}

TEST_F(MigrateDriver, RefusedCheckpointKeepsTheJobRunning) {
  auto node2 = Remote("node2");
  ASSERT_TRUE(node2);
  rpc::ExecReply started;
  ASSERT_OK(Call("start_job", [&] { (*node2)->start_job(started, Counter(40, 20, true)); }));
  int status = -1;
  std::string out = Read(*node2, started.job_id, 0, 0, "\n2\n", &status);
  rpc::CheckpointReply ck;
  Status s = Call("checkpoint_job", [&] { (*node2)->checkpoint_job(ck, started.job_id, false, false); });
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("thread"));
  out += Read(*node2, started.job_id, out.size(), 0, "", &status);
  ASSERT_TRUE(WIFEXITED(status)) << std::hex << status;
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_EQ(out, Lines(1, 40));
  ASSERT_OK(Call("release", [&] { (*node2)->release(started.job_id); }));
}

TEST(MigrateTest, BetweenRealRemotedsOnASimulatedCluster) {
  SimCluster cluster;
  SimClusterOptions o;
  o.slots = 2;
  ASSERT_OK(cluster.Up(3, o));
  auto r = cluster.Exec("node1", {"env", "KITE_MIGRATE_DRIVER=1", SimCluster::BinDir() + "/migrate_test",
                                  "--gtest_filter=MigrateDriver.*"});
  ASSERT_OK(r.status());
  EXPECT_TRUE(r->Succeeded()) << r->stdout_data << r->stderr_data;
  EXPECT_THAT(r->stdout_data, HasSubstr("[  PASSED  ] 2 tests.")) << r->stdout_data << r->stderr_data;
}

// --- through homed and the kite command ------------------------------------------------

// A 3-host cluster for the kite-command tests (each test its own: they change owner states).
class KiteMigrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SimClusterOptions o;
    o.slots = 2;
    ASSERT_OK(cluster_.Up(3, o));
  }

  // Starts `kite run --host HOST -- kite_migrate_counter ARGS` on node1, in /kite.
  std::unique_ptr<Subprocess> StartCounter(const std::string& host, const std::string& args) {
    auto p = cluster_.Spawn("node1", {"sh", "-c", "cd /kite && exec kite run --host " + host + " -- " +
                                                      SimCluster::BinDir() + "/kite_migrate_counter " + args});
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? std::move(p).value() : nullptr;
  }

  // The vpid of node1's job whose command contains `needle` (kite ps --json), or 0.
  int VpidOf(const std::string& needle) {
    auto r = cluster_.Exec("node1", {"kite", "ps", "--json"});
    if (!r.ok()) return 0;
    std::istringstream lines(r->stdout_data);
    for (std::string line; std::getline(lines, line);) {
      if (line.find(needle) == std::string::npos || line.find("\"home\": \"node1\"") == std::string::npos) continue;
      auto at = line.find("\"vpid\": ");
      if (at != std::string::npos) return std::atoi(line.c_str() + at + 8);
    }
    return 0;
  }

  StatusOr<ProcessResult> Kite(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"kite"};
    argv.insert(argv.end(), args.begin(), args.end());
    return cluster_.Exec("node1", argv);
  }

  SimCluster cluster_;
};

TEST_F(KiteMigrateTest, AJobMovesTwiceAndBackHomeWithNothingLostOrRepeated) {
  constexpr int kLines = 300;
  auto job = StartCounter("node2", std::to_string(kLines) + " 15 ");
  ASSERT_TRUE(job);
  ASSERT_TRUE(job->WaitForStdout("\n20\n", std::chrono::seconds(30))) << job->Stdout() << job->Stderr();
  const int vpid = VpidOf("kite_migrate_counter");
  ASSERT_GT(vpid, 0);

  for (const char* to : {"node3", "node1", "node2"}) {  // to node3, home, and back to node2
    const size_t seen = job->Stdout().size();
    auto r = Kite({"migrate", std::to_string(vpid), "--to", to});
    ASSERT_OK(r.status());
    ASSERT_TRUE(r->Succeeded()) << r->Describe() << r->stdout_data << r->stderr_data;
    EXPECT_THAT(r->stdout_data, HasSubstr(std::string("to ") + to)) << r->stdout_data;
    // It goes on printing where it is now.
    auto more = cluster_.Exec("node1", {"sh", "-c", "kite ps --json | grep -c '\"host\": \"" + std::string(to) + "\"'"});
    ASSERT_OK(more.status());
    EXPECT_EQ(more->stdout_data, "1\n") << to;
    for (int i = 0; i < 200 && job->Stdout().size() < seen + 30; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto done = job->Wait(std::chrono::seconds(60));
  ASSERT_OK(done.status());
  ASSERT_TRUE(WIFEXITED(done->exit_status)) << done->Describe();
  EXPECT_EQ(WEXITSTATUS(done->exit_status), 7) << done->stderr_data;
  EXPECT_EQ(done->stdout_data, Lines(1, kLines));
}

// A job started with /dev/null as stdin starts at EOF on its first host; the copy a move
// makes must get that EOF from home too, not wait for stdin for ever.
TEST_F(KiteMigrateTest, AnEmptyStdinIsStillAtEofAfterAMove) {
  auto job = cluster_.Spawn("node1", {"sh", "-c",
                                      "cd /kite && rm -f go && exec kite run --host node2 -- sh -c "
                                      "'echo ready; until [ -e go ]; do sleep 0.1; done; wc -c; echo \"wc $?\"' "
                                      "< /dev/null"});
  ASSERT_OK(job.status());
  ASSERT_TRUE((*job)->WaitForStdout("ready\n", std::chrono::seconds(30))) << (*job)->Stderr();
  const int vpid = VpidOf("echo ready");
  ASSERT_GT(vpid, 0);
  auto r = Kite({"migrate", std::to_string(vpid), "--to", "node3"});
  ASSERT_OK(r.status());
  ASSERT_TRUE(r->Succeeded()) << r->Describe() << r->stdout_data << r->stderr_data;
  ASSERT_OK(cluster_.Exec("node1", {"touch", "/kite/go"}).status());
  auto done = (*job)->Wait(std::chrono::seconds(30));
  ASSERT_OK(done.status());
  EXPECT_TRUE(done->Succeeded()) << done->Describe();
  EXPECT_EQ(done->stdout_data, "ready\n0\nwc 0\n");
}

// One file description on several descriptors: the shell's stdout and stderr to one file
// (`exec >out 2>&1`), inherited by each `sleep` and by a subshell. Moved during the first loop
// and again during the subshell's; every line lands once, in order, as if it never moved: the
// restored descriptors share one description (and its offset) again, not one copy each.
TEST_F(KiteMigrateTest, DescriptorsSharingAFileDescriptionStillShareItAfterMoves) {
  const std::string script =
      "exec >shared.out 2>&1; i=0; while [ $i -lt 40 ]; do echo \"o $i\"; echo \"e $i\" >&2; i=$((i+1)); "
      "sleep 0.05; done; (j=0; while [ $j -lt 40 ]; do echo \"sub $j\"; j=$((j+1)); sleep 0.05; done); echo end";
  ASSERT_OK(cluster_.Exec("node1", {"sh", "-c", "mkdir -p /kite/t && rm -f /kite/t/shared.out"}).status());
  auto job = cluster_.Spawn("node1", {"sh", "-c", "cd /kite/t && exec kite run --host node2 -- sh -c '" + script + "'"});
  ASSERT_OK(job.status());
  auto wait_for = [&](const std::string& line) {
    for (int i = 0; i < 600; ++i) {
      auto r = cluster_.Exec("node1", {"grep", "-qx", line, "/kite/t/shared.out"});
      if (r.ok() && r->Succeeded()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  };
  ASSERT_TRUE(wait_for("o 10"));
  const int vpid = VpidOf("shared.out");
  ASSERT_GT(vpid, 0);
  for (const auto& [after, to] : {std::pair{"o 12", "node3"}, std::pair{"sub 10", "node1"}}) {
    ASSERT_TRUE(wait_for(after)) << "before the move to " << to;
    auto r = Kite({"migrate", std::to_string(vpid), "--to", to});
    ASSERT_OK(r.status());
    ASSERT_TRUE(r->Succeeded()) << to << ": " << r->Describe() << r->stdout_data << r->stderr_data;
  }
  auto done = (*job)->Wait(std::chrono::seconds(60));
  ASSERT_OK(done.status());
  EXPECT_TRUE(done->Succeeded()) << done->Describe();
  std::string want;
  for (int i = 0; i < 40; ++i) want += "o " + std::to_string(i) + "\ne " + std::to_string(i) + "\n";
  for (int j = 0; j < 40; ++j) want += "sub " + std::to_string(j) + "\n";
  want += "end\n";
  auto got = cluster_.Exec("node1", {"cat", "/kite/t/shared.out"});
  ASSERT_OK(got.status());
  EXPECT_EQ(got->stdout_data, want);
  std::ifstream log(cluster_.LogPath("node2", "remoted"));
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, ::testing::ContainsRegex("[1-9][0-9]* shared file description")) << "node2 recorded no sharing";
}

// A job tree of real programs: sh waiting on `seq | sort | md5sum`, moved mid-sort to another
// host and then home, pipes and all; the digest equals that of a run that never moved. sort
// runs with --parallel=1 (its sorting threads could not be migrated yet) and -S (no temporary
// files in the host's /tmp).
TEST_F(KiteMigrateTest, APipelineMovesMidSortAndHomeWithTheSameResult) {
  const std::string pipeline = "seq 6000000 | sort -rn --parallel=1 -S 1G | md5sum; echo \"status $?\"";
  auto plain = cluster_.Exec("node1", {"sh", "-c", pipeline});
  ASSERT_OK(plain.status());
  ASSERT_THAT(plain->stdout_data, HasSubstr("status 0")) << plain->Describe();
  auto job = cluster_.Spawn("node1", {"sh", "-c", "cd /kite && exec kite run --host node2 -- sh -c '" + pipeline + "'"});
  ASSERT_OK(job.status());
  int vpid = 0;
  for (int i = 0; i < 100 && vpid == 0; ++i) {
    vpid = VpidOf("md5sum");
    if (vpid == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(vpid, 0) << (*job)->Stderr();
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // sort is reading or sorting
  for (const char* to : {"node3", "node1"}) {
    auto r = Kite({"migrate", std::to_string(vpid), "--to", to});
    ASSERT_OK(r.status());
    ASSERT_TRUE(r->Succeeded()) << to << ": " << r->Describe() << r->stdout_data << r->stderr_data;
    EXPECT_THAT(r->stdout_data, HasSubstr(std::string("to ") + to)) << r->stdout_data;
  }
  auto done = (*job)->Wait(std::chrono::minutes(2));
  ASSERT_OK(done.status());
  ASSERT_TRUE(WIFEXITED(done->exit_status)) << done->Describe();
  EXPECT_EQ(WEXITSTATUS(done->exit_status), 0) << done->stderr_data;
  EXPECT_EQ(done->stdout_data, plain->stdout_data) << done->stderr_data;
  // Every image and pipe file of both moves is gone, on every host: the home has the source
  // drop them once the job runs, and each target removes the copies it fetched.
  for (const char* host : {"node1", "node2", "node3"}) {
    auto left = cluster_.Exec(host, {"sh", "-c", "find /var/lib/kite/checkpoints -type f | wc -l"});
    ASSERT_OK(left.status());
    EXPECT_EQ(left->stdout_data, "0\n")
        << host << ": " << cluster_.Exec(host, {"find", "/var/lib/kite/checkpoints"})->stdout_data;
  }
}

// A compiler driver and its cc1 (a job tree writing a temporary file): `gcc -O2 -c` of a large
// generated file, moved mid-compile to another host and then home. The temporary assembler
// file lives in the home's directory in the shared tree (remoted's TMPDIR), so it is there on
// every host; the object is byte-identical to a compile that never moved.
TEST_F(KiteMigrateTest, ACompilerMovesMidCompileAndHomeWithAnIdenticalObject) {
  const std::string gen =
      "mkdir -p /kite/cc && cd /kite/cc && python3 -c '"
      "import sys\n"
      "for i in range(600):\n"
      "  print(\"int f%d(int *a, int n) { int s = %d; for (int i = 0; i < n; i++) { s += a[i] * %d; "
      "if (s > %d) s ^= a[(i + %d) %% n]; } return s; }\" % (i, i, i % 7 + 1, i * 31, i))\n"
      "' > big.c && gcc -O2 -c big.c -o plain.o";
  auto plain = cluster_.Exec("node1", {"sh", "-c", gen});
  ASSERT_OK(plain.status());
  ASSERT_TRUE(plain->Succeeded()) << plain->Describe();
  auto job = cluster_.Spawn("node1", {"sh", "-c", "cd /kite/cc && exec kite run --host node2 -- gcc -O2 -c big.c -o moved.o"});
  ASSERT_OK(job.status());
  int vpid = 0;
  for (int i = 0; i < 100 && vpid == 0; ++i) {
    vpid = VpidOf("moved.o");
    if (vpid == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(vpid, 0) << (*job)->Stderr();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // cc1 is compiling
  for (const char* to : {"node3", "node1"}) {
    auto r = Kite({"migrate", std::to_string(vpid), "--to", to});
    ASSERT_OK(r.status());
    ASSERT_TRUE(r->Succeeded()) << to << ": " << r->Describe() << r->stdout_data << r->stderr_data;
  }
  auto done = (*job)->Wait(std::chrono::minutes(3));
  ASSERT_OK(done.status());
  ASSERT_TRUE(WIFEXITED(done->exit_status)) << done->Describe();
  ASSERT_EQ(WEXITSTATUS(done->exit_status), 0) << done->stderr_data;
  auto same = cluster_.Exec("node1", {"cmp", "/kite/cc/plain.o", "/kite/cc/moved.o"});
  ASSERT_OK(same.status());
  EXPECT_TRUE(same->Succeeded()) << same->Describe();
}

// kite checkpoint + kite restart: a job saved to a file in the shared tree runs on to its end;
// the file then restarts it on another host (and again at home): it goes on from the
// checkpoint to its end, with its exit status. Bad requests and bad files are refused clearly.
TEST_F(KiteMigrateTest, ACheckpointFileOutlivesTheJobAndRestartsElsewhere) {
  constexpr int kLines = 200;
  auto job = StartCounter("node2", std::to_string(kLines) + " 15");
  ASSERT_TRUE(job);
  ASSERT_TRUE(job->WaitForStdout("\n20\n", std::chrono::seconds(30))) << job->Stderr();
  const int vpid = VpidOf("kite_migrate_counter");
  ASSERT_GT(vpid, 0);
  ASSERT_OK(cluster_.Exec("node1", {"mkdir", "-p", "/kite/saved"}).status());
  auto saved = Kite({"checkpoint", std::to_string(vpid), "--to", "/kite/saved/counter.job"});
  ASSERT_OK(saved.status());
  ASSERT_TRUE(saved->Succeeded()) << saved->Describe() << saved->stderr_data;
  EXPECT_THAT(saved->stdout_data, HasSubstr("checkpointed on node2 to /kite/saved/counter.job")) << saved->stdout_data;
  // The original runs on, untouched.
  auto done = job->Wait(std::chrono::seconds(60));
  ASSERT_OK(done.status());
  EXPECT_EQ(WEXITSTATUS(done->exit_status), 7) << done->Describe();
  EXPECT_EQ(done->stdout_data, Lines(1, kLines));

  for (const char* host : {"node3", "node1"}) {  // another host, then home: the file is reusable
    auto again = cluster_.Exec("node1", {"sh", "-c", std::string("cd /kite && kite restart --host ") + host +
                                                         " saved/counter.job"});
    ASSERT_OK(again.status());
    ASSERT_TRUE(WIFEXITED(again->exit_status)) << again->Describe();
    EXPECT_EQ(WEXITSTATUS(again->exit_status), 7) << host << ": " << again->stderr_data;
    const int first = std::atoi(again->stdout_data.c_str());
    EXPECT_GT(first, 20) << host << ": it goes on from the checkpoint, not from the start";
    EXPECT_EQ(again->stdout_data, Lines(first, kLines)) << host;
  }

  struct Bad {
    std::vector<std::string> args;
    std::string why;
  };
  ASSERT_OK(cluster_.Exec("node1", {"sh", "-c", "(head -c 5000 /dev/urandom; echo) > /kite/saved/junk.job"}).status());
  for (const Bad& b : std::vector<Bad>{
           {{"restart", "/kite/saved/none.job"}, "no checkpoint"},
           {{"restart", "/kite/saved/junk.job"}, "not a kite job manifest"},
           {{"restart", "/etc/passwd"}, "not under"},
           {{"restart", "--host", "nowhere", "/kite/saved/counter.job"}, "nowhere"},
           {{"checkpoint", "999999", "--to", "/kite/saved/x.job"}, "no remote job 999999"},
           {{"checkpoint", std::to_string(vpid), "--to", "/kite/saved/x.img"}, "*.job"}}) {
    auto r = Kite(b.args);
    ASSERT_OK(r.status());
    EXPECT_FALSE(r->Succeeded()) << b.args[0] << " " << b.args.back();
    EXPECT_THAT(r->stderr_data, HasSubstr(b.why)) << b.args.back();
  }
}

// A temporary file with no name (Python's TemporaryFile: O_TMPFILE in the job's TMPDIR)
// moves with its contents and offset, and has no name again once the job runs elsewhere.
TEST_F(KiteMigrateTest, AnOpenFileWithNoNameMovesWithItsContents) {
  auto job = cluster_.Spawn(
      "node1", {"sh", "-c",
                "cd /kite && exec kite run --host node2 -- python3 -c '"
                "import os, tempfile, time\n"
                "f = tempfile.TemporaryFile()\n"
                "f.write(bytes(range(256)) * 400)\n"
                "f.flush()\n"
                "print(\"ready\", flush=True)\n"
                "for _ in range(60): time.sleep(0.05)\n"
                "print(f.tell(), os.fstat(f.fileno()).st_nlink, flush=True)\n"
                "f.seek(0)\n"
                "print(f.read() == bytes(range(256)) * 400)'"});
  ASSERT_OK(job.status());
  ASSERT_TRUE((*job)->WaitForStdout("ready", std::chrono::seconds(30))) << (*job)->Stderr();
  const int vpid = VpidOf("python3");
  ASSERT_GT(vpid, 0);
  auto r = Kite({"migrate", std::to_string(vpid), "--to", "node3"});
  ASSERT_OK(r.status());
  ASSERT_TRUE(r->Succeeded()) << r->Describe() << r->stderr_data;
  auto done = (*job)->Wait(std::chrono::seconds(60));
  ASSERT_OK(done.status());
  EXPECT_EQ(WEXITSTATUS(done->exit_status), 0) << done->stderr_data;
  EXPECT_EQ(done->stdout_data, "ready\n102400 0\nTrue\n") << done->stderr_data;
}

TEST_F(KiteMigrateTest, AJobThatCannotMoveSaysWhyAndRunsOnWhereItWas) {
  auto job = StartCounter("node2", "60 20 thread");
  ASSERT_TRUE(job);
  ASSERT_TRUE(job->WaitForStdout("\n3\n", std::chrono::seconds(30))) << job->Stderr();
  const int vpid = VpidOf("kite_migrate_counter");
  ASSERT_GT(vpid, 0);
  auto r = Kite({"migrate", std::to_string(vpid), "--to", "node3"});
  ASSERT_OK(r.status());
  EXPECT_FALSE(r->Succeeded());
  EXPECT_THAT(r->stderr_data, HasSubstr("thread")) << r->stderr_data;
  auto unknown = Kite({"migrate", "999999"});
  ASSERT_OK(unknown.status());
  EXPECT_FALSE(unknown->Succeeded());
  EXPECT_THAT(unknown->stderr_data, HasSubstr("no remote job 999999")) << unknown->stderr_data;
  auto done = job->Wait(std::chrono::seconds(60));
  ASSERT_OK(done.status());
  EXPECT_EQ(WEXITSTATUS(done->exit_status), 7) << done->Describe();
  EXPECT_EQ(done->stdout_data, Lines(1, 60));
}

TEST_F(KiteMigrateTest, TheOwnersReturnSendsEveryGuestHomeAndTheJobsGoOn) {
  auto a = StartCounter("node2", "150 20");
  auto b = StartCounter("node2", "120 25");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->WaitForStdout("\n10\n", std::chrono::seconds(30))) << a->Stderr();
  ASSERT_TRUE(b->WaitForStdout("\n10\n", std::chrono::seconds(30))) << b->Stderr();
  ASSERT_OK(Kite({"owner", "node2", "active"}).status());
  // node2 clears itself: both jobs come home (evict_to = home) and finish there.
  auto ra = a->Wait(std::chrono::seconds(60));
  auto rb = b->Wait(std::chrono::seconds(60));
  ASSERT_OK(ra.status());
  ASSERT_OK(rb.status());
  EXPECT_EQ(WEXITSTATUS(ra->exit_status), 7) << ra->Describe() << ra->stderr_data;
  EXPECT_EQ(WEXITSTATUS(rb->exit_status), 7) << rb->Describe() << rb->stderr_data;
  EXPECT_EQ(ra->stdout_data, Lines(1, 150));
  EXPECT_EQ(rb->stdout_data, Lines(1, 120));
  std::ifstream log(cluster_.LogPath("node2", "remoted"));
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("host cleared of 2 guest job(s) in"));
  std::ifstream home_log(cluster_.LogPath("node1", "homed"));
  std::string home_text((std::istreambuf_iterator<char>(home_log)), std::istreambuf_iterator<char>());
  EXPECT_THAT(home_text, HasSubstr("moved node2 -> node1"));

  // kite evict: the same on demand, with the time to clear printed.
  auto c = StartCounter("node3", "100 20");
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->WaitForStdout("\n5\n", std::chrono::seconds(30))) << c->Stderr();
  auto ev = Kite({"evict", "node3"});
  ASSERT_OK(ev.status());
  EXPECT_TRUE(ev->Succeeded()) << ev->stdout_data << ev->stderr_data;
  EXPECT_THAT(ev->stdout_data, ::testing::MatchesRegex("node3 cleared of 1 guest job\\(s\\) in [0-9]+ ms.*\n"));
  auto rc = c->Wait(std::chrono::seconds(60));
  ASSERT_OK(rc.status());
  EXPECT_EQ(WEXITSTATUS(rc->exit_status), 7) << rc->Describe();
  EXPECT_EQ(rc->stdout_data, Lines(1, 100));
}

}  // namespace
}  // namespace kite::testing
