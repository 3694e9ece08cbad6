// checkpoint_job / restore_job over Thrift between real kite-remoted daemons on a simulated
// cluster: a counting job started on node2 is checkpointed there and restored on node3 through
// the shared /kite tree; its output continues with no line lost or repeated and its exit status
// comes through. A refused checkpoint (two threads) leaves the job running on node2.
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "common/config.h"
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
  ASSERT_OK(Call("checkpoint_job", [&] { (*node2)->checkpoint_job(ck, started.job_id, false); }));
  EXPECT_THAT(ck.image_path, ::testing::StartsWith("/kite/.kite-ckpt/node2/65534/"));
  before += Read(*node2, started.job_id, before.size(), 0, "", &status);
  ASSERT_TRUE(WIFSIGNALED(status)) << std::hex << status;
  ASSERT_EQ(static_cast<int64_t>(before.size()), ck.stdout_offset);
  ASSERT_OK(Call("release", [&] { (*node2)->release(started.job_id); }));

  rpc::RestoreSpec rs;
  rs.image_path = ck.image_path;
  rs.creds = ck.creds;
  rs.home_host = ck.home_host;
  rs.vpid = ck.vpid;
  rs.home_ppid = ck.home_ppid;
  rs.stdout_offset = ck.stdout_offset;
  rs.stderr_offset = ck.stderr_offset;
  rs.stdin_offset = ck.stdin_offset;
  rs.tty_mask = ck.tty_mask;
  rs.command = ck.command;
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
  Status s = Call("checkpoint_job", [&] { (*node2)->checkpoint_job(ck, started.job_id, false); });
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

}  // namespace
}  // namespace kite::testing
