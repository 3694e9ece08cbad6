// Integration tests of the simulated cluster itself (scripts/cluster through SimCluster): each
// host has its own name, network, PID space and CPU cap, all share /kite, exec passes status,
// stdio, signals and a terminal through, and `down` leaves nothing behind. Needs root.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/sim_cluster.h"
#include "tests/support/status_matchers.h"
#include "tests/support/subprocess.h"

namespace kite::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

SimClusterOptions NoDaemons(double cpu = 0.5) {
  SimClusterOptions o;
  o.cpu = cpu;
  o.daemons = false;
  return o;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a command on this machine (the root namespaces), to completion.
ProcessResult RunHere(const std::vector<std::string>& argv) {
  auto p = Subprocess::Start(argv, {});
  EXPECT_OK(p);
  if (!p.ok()) return {};
  (*p)->CloseStdin();
  auto r = (*p)->Wait(seconds(30));
  EXPECT_OK(r);
  return r.ok() ? *r : ProcessResult{};
}

// The group of v1 `controller`, or the unified (v2) group for "", in /proc/<pid>/cgroup text
// ("" if absent).
std::string GroupIn(const std::string& proc_cgroup, const std::string& controller) {
  std::istringstream in(proc_cgroup);
  for (std::string line; std::getline(in, line);) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    if (controller.empty()) {
      if (line.compare(0, a, "0") == 0 && b == a + 1) return line.substr(b + 1);
      continue;
    }
    std::istringstream names(line.substr(a + 1, b - a - 1));
    for (std::string n; std::getline(names, n, ',');)
      if (n == controller) return line.substr(b + 1);
  }
  return "";
}

// Where the unified (cgroup2) hierarchy is mounted ("" if nowhere).
std::string UnifiedMount() {
  std::istringstream in(ReadFile("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point, x;
    f >> id >> parent >> dev >> root >> point;
    while (f >> x && x != "-") {
    }
    if (f >> x && x == "cgroup2" && root == "/") return point;
  }
  return "";
}

// A process that is gone, or a zombie waiting for this machine's init to reap it.
bool Dead(int pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && stat.compare(paren + 2, 1, "Z") == 0;
}

class ClusterTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_OK(cluster_.Down()); }
  SimCluster cluster_;
};

TEST_F(ClusterTest, EachHostHasItsOwnName) {
  ASSERT_OK(cluster_.Up(2, NoDaemons()));
  EXPECT_EQ(cluster_.hosts(), (std::vector<std::string>{"node1", "node2"}));
  for (const std::string host : {"node1", "node2"}) {
    auto r = cluster_.Exec(host, {"hostname"});
    ASSERT_OK(r);
    EXPECT_TRUE(r->Succeeded()) << r->Describe();
    EXPECT_EQ(r->stdout_data, host + "\n");
  }
}

TEST_F(ClusterTest, HostsReachEachOtherAndNothingElse) {
  ASSERT_OK(cluster_.Up(2, NoDaemons()));
  auto addr1 = cluster_.Address("node1");
  auto addr2 = cluster_.Address("node2");
  ASSERT_OK(addr1);
  ASSERT_OK(addr2);
  EXPECT_NE(*addr1, *addr2);

  // node2 answers one TCP connection with its host name and the peer's address.
  const char* server =
      "import socket\n"
      "s = socket.socket()\n"
      "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
      "s.bind(('0.0.0.0', 7999)); s.listen(1)\n"
      "print('listening', flush=True)\n"
      "c, peer = s.accept()\n"
      "line = c.makefile().readline().strip()\n"
      "c.sendall(f'{line} from {socket.gethostname()} to {peer[0]}\\n'.encode())\n"
      "c.close()\n";
  auto listener = cluster_.Spawn("node2", {"python3", "-c", server});
  ASSERT_OK(listener);
  ASSERT_TRUE((*listener)->WaitForStdout("listening", seconds(30))) << (*listener)->Stderr();

  auto r = cluster_.Exec("node1", {"bash", "-c",
                                   "exec 3<>/dev/tcp/" + *addr2 + "/7999; echo ping >&3; "
                                   "read -r reply <&3; echo \"$reply\""});
  ASSERT_OK(r);
  EXPECT_TRUE(r->Succeeded()) << r->Describe();
  EXPECT_EQ(r->stdout_data, "ping from node2 to " + *addr1 + "\n");
  auto served = (*listener)->Wait(seconds(30));
  ASSERT_OK(served);
  EXPECT_TRUE(served->Succeeded()) << served->Describe();

  // No route leaves a host, and the cluster's subnet does not exist in the root namespace.
  auto out = cluster_.Exec("node1", {"ip", "route", "get", "1.1.1.1"});
  ASSERT_OK(out);
  EXPECT_FALSE(out->Succeeded()) << "node1 has a route out: " << out->stdout_data;
  std::string subnet = addr1->substr(0, addr1->rfind('.') + 1);
  ProcessResult here = RunHere({"ip", "-o", "addr"});
  EXPECT_TRUE(here.Succeeded()) << here.Describe();
  EXPECT_EQ(here.stdout_data.find(subnet), std::string::npos) << here.stdout_data;
}

TEST_F(ClusterTest, KiteIsSharedByAllHosts) {
  ASSERT_OK(cluster_.Up(2, NoDaemons()));
  auto w = cluster_.Exec("node1", {"sh", "-c", "cat > /kite/hello"}, "written on node1\n");
  ASSERT_OK(w);
  ASSERT_TRUE(w->Succeeded()) << w->Describe();
  auto r = cluster_.Exec("node2", {"cat", "/kite/hello"});
  ASSERT_OK(r);
  EXPECT_TRUE(r->Succeeded()) << r->Describe();
  EXPECT_EQ(r->stdout_data, "written on node1\n");
  EXPECT_EQ(ReadFile(cluster_.SharedDir() + "/hello"), "written on node1\n");

  // /run/kite is per host, /etc/kite is the host's own config directory.
  auto sock = cluster_.Exec("node1", {"sh", "-c", "touch /run/kite/mine"});
  ASSERT_OK(sock);
  auto other = cluster_.Exec("node2", {"test", "-e", "/run/kite/mine"});
  ASSERT_OK(other);
  EXPECT_FALSE(other->Succeeded()) << "node2 sees node1's /run/kite";
}

TEST_F(ClusterTest, ExecPassesStatusStdioSignalsAndPidNamespace) {
  ASSERT_OK(cluster_.Up(1, NoDaemons()));
  auto r = cluster_.Exec("node1", {"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_OK(r);
  EXPECT_TRUE(WIFEXITED(r->exit_status) && WEXITSTATUS(r->exit_status) == 3) << r->Describe();
  EXPECT_EQ(r->stdout_data, "out\n");
  EXPECT_EQ(r->stderr_data, "err\n");

  r = cluster_.Exec("node1", {"cat"}, "some input\n");
  ASSERT_OK(r);
  EXPECT_EQ(r->stdout_data, "some input\n");

  r = cluster_.Exec("node1", {"sh", "-c", "kill -TERM $$"});
  ASSERT_OK(r);
  EXPECT_TRUE(WIFSIGNALED(r->exit_status) && WTERMSIG(r->exit_status) == SIGTERM) << r->Describe();

  // The host has its own PID namespace, whose init is the cluster script's.
  r = cluster_.Exec("node1", {"sh", "-c", "tr '\\0' ' ' </proc/1/cmdline"});
  ASSERT_OK(r);
  EXPECT_NE(r->stdout_data.find("__host-init " + cluster_.name() + " node1"), std::string::npos)
      << r->stdout_data;

  // Kill() reaches the command inside the host.
  auto sleeper = cluster_.Spawn("node1", {"sh", "-c", "echo started; exec sleep 300"});
  ASSERT_OK(sleeper);
  ASSERT_TRUE((*sleeper)->WaitForStdout("started", seconds(30)));
  ASSERT_OK((*sleeper)->Kill(SIGTERM));
  auto done = (*sleeper)->Wait(seconds(30));
  ASSERT_OK(done);
  EXPECT_TRUE(WIFSIGNALED(done->exit_status) && WTERMSIG(done->exit_status) == SIGTERM)
      << done->Describe();
  r = cluster_.Exec("node1", {"sh", "-c", "ps -e -o stat=,comm= | awk '$1 !~ /^Z/ && $2 == \"sleep\"' | wc -l"});
  ASSERT_OK(r);
  // Only the host init's own idle sleeper remains.
  EXPECT_EQ(r->stdout_data, "1\n");
}

TEST_F(ClusterTest, ExecPassesATerminalThrough) {
  ASSERT_OK(cluster_.Up(1, NoDaemons()));
  Subprocess::Options pty;
  pty.pty = true;
  pty.pty_rows = 33;
  pty.pty_cols = 101;
  auto p = cluster_.Spawn("node1", {"sh", "-c", "test -t 0 && test -t 1 && stty size"}, pty);
  ASSERT_OK(p);
  auto r = (*p)->Wait(seconds(60));
  ASSERT_OK(r);
  EXPECT_TRUE(r->Succeeded()) << r->Describe() << r->stdout_data;
  EXPECT_NE(r->stdout_data.find("33 101"), std::string::npos) << r->stdout_data;
}

TEST_F(ClusterTest, HostsAreCpuCapped) {
  ASSERT_OK(cluster_.Up(1, NoDaemons(0.25)));
  std::string cpu = cluster_.CgroupPath("cpu", "node1");
  long quota = std::stol(ReadFile(cpu + "/cpu.cfs_quota_us"));
  long period = std::stol(ReadFile(cpu + "/cpu.cfs_period_us"));
  EXPECT_EQ(quota, period / 4);

  auto r = cluster_.Exec("node1", {"cat", "/proc/self/cgroup"});
  ASSERT_OK(r);
  for (const std::string c : {"cpu", "cpuacct", "memory", "freezer", "pids"}) {
    EXPECT_EQ("/sys/fs/cgroup/" + c + GroupIn(r->stdout_data, c), cluster_.CgroupPath(c, "node1"))
        << r->stdout_data;
  }
  if (!UnifiedMount().empty()) {
    EXPECT_EQ(UnifiedMount() + GroupIn(r->stdout_data, ""), cluster_.CgroupPath("unified", "node1"))
        << r->stdout_data;
  }

  // A busy loop gets at most its quarter core (plus one period of slack), however idle the
  // machine is.
  std::string acct = cluster_.CgroupPath("cpuacct", "node1") + "/cpuacct.usage";
  long long before = std::stoll(ReadFile(acct));
  auto start = std::chrono::steady_clock::now();
  r = cluster_.Exec("node1", {"timeout", "2", "sh", "-c", "while :; do :; done"});
  ASSERT_OK(r);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double used = static_cast<double>(std::stoll(ReadFile(acct)) - before) / 1e9;
  EXPECT_GT(used, 0.05) << "the busy loop did not run";
  EXPECT_LT(used, 0.25 * wall + 0.15) << "used " << used << " s of CPU in " << wall << " s";
}

TEST_F(ClusterTest, DownLeavesNothing) {
  ASSERT_OK(cluster_.Up(2, NoDaemons()));
  const std::string name = cluster_.name();
  // What remoted leaves after a crash: job groups below the host's groups (v1, and v2 if
  // mounted), with a process in them; and a daemonised process in the host's own group.
  std::string cpu_job = cluster_.CgroupPath("cpu", "node1") + "/kite/node1/job-1";
  std::string pids_job = cluster_.CgroupPath("pids", "node1") + "/kite/node1/job-1";
  ASSERT_NE(cluster_.CgroupPath("pids", "node1"), "");
  std::string v2_job, v2_jobs;
  if (!UnifiedMount().empty()) {
    ASSERT_NE(cluster_.CgroupPath("unified", "node1"), "");
    v2_job = cluster_.CgroupPath("unified", "node1") + "/kite/node1/job-2";
    v2_jobs = "mkdir -p " + v2_job + " && setsid sh -c 'echo $$ >" + v2_job +
              "/cgroup.procs; sleep 302 & exec sleep 303' </dev/null >/dev/null 2>&1 & ";
  }
  auto r = cluster_.Exec("node1", {"sh", "-c",
      "mkdir -p " + cpu_job + " " + pids_job + " && "
      "setsid sh -c 'for d in " + cpu_job + " " + pids_job + "; do echo $$ >$d/cgroup.procs; done; "
      "exec sleep 300' </dev/null >/dev/null 2>&1 & " + v2_jobs +
      "setsid sleep 301 </dev/null >/dev/null 2>&1 &"});
  ASSERT_OK(r);
  ASSERT_TRUE(r->Succeeded()) << r->Describe();
  std::string job = pids_job + "/cgroup.procs";
  for (int i = 0; i < 100 && ReadFile(job).empty(); ++i) usleep(50000);
  ASSERT_FALSE(ReadFile(job).empty()) << "the job process did not start";
  if (!v2_job.empty()) {
    auto members = [&] {
      std::string procs = ReadFile(v2_job + "/cgroup.procs");
      return std::count(procs.begin(), procs.end(), '\n');
    };
    for (int i = 0; i < 100 && members() < 2; ++i) usleep(50000);
    ASSERT_EQ(members(), 2) << "the v2 job's two processes did not start";
  }
  std::vector<int> pids;
  for (const auto& e : fs::recursive_directory_iterator(cluster_.CgroupPath("cpu", "node1"))) {
    if (e.path().filename() != "cgroup.procs") continue;
    std::istringstream in(ReadFile(e.path()));
    for (int pid; in >> pid;) pids.push_back(pid);
  }
  ASSERT_GE(pids.size(), v2_job.empty() ? 4u : 6u);  // init's parent, init, its sleeper, the sleeps

  ASSERT_OK(cluster_.Down());
  for (int pid : pids) EXPECT_TRUE(Dead(pid)) << "pid " << pid << " survived down";
  ProcessResult groups = RunHere({"find", "/sys/fs/cgroup", "-type", "d", "-name", name + "-sim"});
  EXPECT_TRUE(groups.Succeeded()) << groups.Describe();
  EXPECT_EQ(groups.stdout_data, "") << "cgroups left behind";
  if (fs::exists("/run/netns")) {
    for (const auto& e : fs::directory_iterator("/run/netns")) {
      EXPECT_NE(e.path().filename().string().rfind(name + "-", 0), 0u) << e.path();
    }
  }
  std::string mounts = ReadFile("/proc/self/mountinfo");
  EXPECT_EQ(mounts.find(name), std::string::npos) << mounts;
  EXPECT_FALSE(fs::exists(cluster_.StateDir()));
  EXPECT_FALSE(fs::exists(cluster_.SharedDir()));
  // Down is idempotent.
  EXPECT_OK(cluster_.Down());
}

TEST_F(ClusterTest, ClusterOfADeadOwnerIsRemovedAsStale) {
  ASSERT_OK(cluster_.Up(1, NoDaemons()));  // a live owner: must survive the stale sweep
  auto owner = Subprocess::Start({"sleep", "300"}, {});
  ASSERT_OK(owner);
  std::string stale = cluster_.name() + "-stale";
  auto up = Subprocess::Start({SimCluster::ScriptPath(), "up", "1", "--name", stale,
                               "--owner-pid", std::to_string((*owner)->pid())},
                              {.env = {"KITE_SIM_NO_DAEMONS=1", "KITE_BIN=" + SimCluster::BinDir()}});
  ASSERT_OK(up);
  (*up)->CloseStdin();
  auto upr = (*up)->Wait(seconds(120));
  ASSERT_OK(upr);
  ASSERT_TRUE(upr->Succeeded()) << upr->Describe();
  ASSERT_TRUE(fs::exists("/run/kite-sim/" + stale));

  ASSERT_OK(SimCluster::RemoveStaleClusters());
  EXPECT_TRUE(fs::exists("/run/kite-sim/" + stale)) << "removed while its owner lives";
  ASSERT_OK((*owner)->Kill(SIGKILL));
  ASSERT_OK((*owner)->Wait(seconds(30)));
  ASSERT_OK(SimCluster::RemoveStaleClusters());
  EXPECT_FALSE(fs::exists("/run/kite-sim/" + stale));
  ProcessResult groups = RunHere({"find", "/sys/fs/cgroup", "-type", "d", "-name", stale + "-sim"});
  EXPECT_EQ(groups.stdout_data, "") << "cgroups of the stale cluster left behind";
  EXPECT_TRUE(fs::exists(cluster_.StateDir())) << "a cluster with a live owner was removed";
}

// The real thing: kite-homed and kite-remoted in every host, each configured for its host, and
// every host's homed hears from every remoted before Up() returns.
TEST_F(ClusterTest, DaemonsComeUpOnEveryHost) {
  SimClusterOptions options;
  options.slots = 2;
  ASSERT_OK(cluster_.Up(2, options));
  for (const std::string host : {"node1", "node2"}) {
    auto r = cluster_.Exec(host, {"sh", "-c", "test -S /run/kite/homed.sock && kite hosts"});
    ASSERT_OK(r);
    ASSERT_TRUE(r->Succeeded()) << r->Describe();
    EXPECT_NE(r->stdout_data.find("node1 "), std::string::npos) << r->stdout_data;
    EXPECT_NE(r->stdout_data.find("node2 "), std::string::npos) << r->stdout_data;
    EXPECT_EQ(r->stdout_data.find("unreachable"), std::string::npos) << r->stdout_data;
  }
}

// A guest job lands inside its host's groups, so the host's CPU cap covers guests too: in v1,
// in the guests' group remoted lives in (<host>/kite/<host>: inherited, no attach per job), and
// on the v2 hierarchy in the group remoted made for it (<host>/kite/<host>/job-N). It sees its
// home's name and its status comes home.
TEST_F(ClusterTest, GuestJobsRunInsideTheirHostsGroups) {
  ASSERT_OK(cluster_.Up(2));
  auto r = cluster_.Exec("node1", {"sh", "-c",
                                   "cd /kite && kite run --host node2 -- "
                                   "sh -c 'hostname; cat /proc/self/cgroup; exit 5'"});
  ASSERT_OK(r);
  EXPECT_TRUE(WIFEXITED(r->exit_status) && WEXITSTATUS(r->exit_status) == 5) << r->Describe();
  EXPECT_EQ(r->stdout_data.rfind("node1\n", 0), 0u) << r->stdout_data;
  for (const std::string c : {"cpu", "cpuacct", "memory", "pids"}) {
    EXPECT_EQ("/sys/fs/cgroup/" + c + GroupIn(r->stdout_data, c), cluster_.CgroupPath(c, "node2") + "/kite/node2")
        << r->stdout_data;
  }
  if (!UnifiedMount().empty()) {
    std::string group = UnifiedMount() + GroupIn(r->stdout_data, "");
    std::string jobs = cluster_.CgroupPath("unified", "node2") + "/kite/node2/job-";
    EXPECT_EQ(group.rfind(jobs, 0), 0u) << group << " is not below " << jobs;
  }
}

}  // namespace
}  // namespace kite::testing
