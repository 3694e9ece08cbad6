// Remote exec end to end (issue: transparent remote exec): real daemons on a simulated
// 3-host cluster; every job started on node1 with `kite run` must behave as if it ran at home.
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "tests/support/sim_cluster.h"
#include "tests/support/status_matchers.h"

namespace kite::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// One cluster for the suite: bringing one up takes seconds, and these tests leave it as they
// found it.
class RemoteExecTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new SimCluster();
    SimClusterOptions o;
    o.slots = 4;
    Status s = cluster_->Up(3, o);
    if (!s.ok()) {
      setup_error_ = new std::string(s.ToString());
    }
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (setup_error_) GTEST_FAIL() << "cluster did not come up: " << *setup_error_;
  }

  // Runs a shell command on node1 (the home) in /kite/<test dir>.
  ProcessResult Home(const std::string& script, const std::string& stdin_data = "") {
    auto r = cluster_->Exec("node1", {"sh", "-c", "mkdir -p /kite/t; cd /kite/t || exit 99; " + script}, stdin_data);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ProcessResult{};
  }
  ProcessResult On(const std::string& host, const std::string& script) {
    auto r = cluster_->Exec(host, {"sh", "-c", script});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ProcessResult{};
  }
  // Waits until `script` on `host` prints nothing (e.g. a pgrep finding no process; write the
  // pattern as 'slee[p] 12' so that it does not match the shell running the pgrep).
  bool EventuallyEmpty(const std::string& host, const std::string& script, int seconds = 5) {
    for (int i = 0; i < seconds * 10; ++i) {
      if (On(host, script).stdout_data.empty()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  static SimCluster* cluster_;
  static std::string* setup_error_;
};
SimCluster* RemoteExecTest::cluster_ = nullptr;
std::string* RemoteExecTest::setup_error_ = nullptr;

TEST_F(RemoteExecTest, JobRunsOnAnotherHostAndSeesHomeHostName) {
  ProcessResult r = Home("kite run -v --host node2 -- hostname");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_EQ(r.stdout_data, "node1\n");
  EXPECT_THAT(r.stderr_data, HasSubstr("running on node2"));
  // uname(2) too, and the host really is node2 underneath (the shim only changes the view).
  r = Home("kite run --host node2 -- sh -c 'uname -n; cat /proc/sys/kernel/hostname'");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_EQ(r.stdout_data, "node1\nnode2\n");
}

TEST_F(RemoteExecTest, PlacementUsesOtherHostsWithoutBeingTold) {
  ProcessResult r = Home("for i in 1 2 3 4 5 6; do kite run -v -- true; done");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_THAT(r.stderr_data, HasSubstr("running on node"));
  EXPECT_THAT(r.stderr_data, Not(HasSubstr("running on node1 ")));
}

TEST_F(RemoteExecTest, EveryExitCodeRoundTrips) {
  ProcessResult r = Home(
      "bad=0; for i in $(seq 0 255); do kite run --host node2 -- sh -c \"exit $i\"; "
      "s=$?; [ $s = $i ] || { echo \"exit $i came back as $s\"; bad=1; }; done; exit $bad");
  EXPECT_TRUE(r.Succeeded()) << r.Describe() << r.stdout_data;
}

TEST_F(RemoteExecTest, SignalDeathsRoundTrip) {
  for (int sig : {SIGTERM, SIGKILL, SIGSEGV, SIGUSR1, SIGINT}) {
    auto r = cluster_->Exec("node1", {"sh", "-c", "cd /kite && exec kite run --host node3 -- sh -c 'kill -" +
                                                       std::to_string(sig) + " $$'"});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(WIFSIGNALED(r->exit_status)) << "signal " << sig << ": " << r->Describe();
    EXPECT_EQ(WTERMSIG(r->exit_status), sig);
  }
}

TEST_F(RemoteExecTest, HundredMebibytesThroughStdinAndStdoutUnchanged) {
  ProcessResult r = Home(
      "head -c 100M /dev/urandom > big && sha256sum < big > want && "
      "kite run --host node2 -- cat < big | sha256sum > got && cmp want got && echo same; rm -f big");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_EQ(r.stdout_data, "same\n");
}

// /dev/null at home: the job starts at EOF (kRunStdinEmpty, no stdin relayed), and a stdin
// with bytes in it still arrives whole.
TEST_F(RemoteExecTest, AnEmptyStdinIsAtEofFromTheStartAndAFullOneArrives) {
  ProcessResult r = Home(
      "kite run --host node2 -- sh -c 'wc -c; echo \"wc $?\"' < /dev/null; "
      "printf 'a\\nb' | kite run --host node2 -- sh -c 'wc -c; echo \"wc $?\"'");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_EQ(r.stdout_data, "0\nwc 0\n3\nwc 0\n");
}

TEST_F(RemoteExecTest, StderrStaysSeparateFromStdout) {
  ProcessResult r = Home("kite run --host node3 -- sh -c 'echo out1; echo err1 >&2; echo out2; echo err2 >&2'");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_EQ(r.stdout_data, "out1\nout2\n");
  EXPECT_EQ(r.stderr_data, "err1\nerr2\n");
}

TEST_F(RemoteExecTest, EnvironmentCwdUmaskRlimitsAndSignalStateArrive) {
  ProcessResult r = Home(
      "mkdir -p sub && cd sub && umask 027 && ulimit -n 777 && trap '' USR2 && "
      "FOO='a b' kite run --host node2 -- sh -c "
      "'echo \"$FOO\"; pwd; umask; ulimit -n; id -u; grep -E \"^SigIgn\" /proc/self/status'");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_THAT(r.stdout_data, HasSubstr("a b\n/kite/t/sub\n0027\n777\n0\n"));
  // SIGUSR2 (12) ignored at home is ignored in the job: bit 11 of SigIgn.
  EXPECT_THAT(r.stdout_data, ::testing::MatchesRegex("(.|\n)*SigIgn:\t0*[0-9a-f]*[89abcdef][0-9a-f]{2}\n"));
}

TEST_F(RemoteExecTest, NonRootUserRunsAsThemselves) {
  ProcessResult r = Home(
      "chmod 1777 /kite/t && setpriv --reuid=65534 --regid=65534 --clear-groups -- "
      "kite run --host node2 -- sh -c 'id -u; id -g; touch mine; stat -c %u mine; rm mine'");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_EQ(r.stdout_data, "65534\n65534\n65534\n");
}

TEST_F(RemoteExecTest, GetpidInTheJobIsTheDeputysPid) {
  // $! is what the caller's fork returned; $$ in the job is its getpid().
  ProcessResult r = Home("kite run --host node2 -- sh -c 'echo $$; echo $PPID' > pids & echo $! > deputy; "
                         "echo $$ > caller; wait; cat deputy caller pids");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  std::istringstream in(r.stdout_data);
  std::string deputy, caller, job_pid, job_ppid;
  in >> deputy >> caller >> job_pid >> job_ppid;
  EXPECT_EQ(job_pid, deputy);
  EXPECT_EQ(job_ppid, caller);
}

// The job knows its root by the deputy's pid at home. A child forked on the remote host must
// never get that pid as its own (the shim and a checkpoint would take it for the root), even
// when the remote's pid counter is just below it: node2's counter is put up to 40 below the
// deputy's pid before the job starts, and the job then forks 150 children.
TEST_F(RemoteExecTest, NoChildOfTheJobGetsThePidItsRootIsKnownBy) {
  ASSERT_TRUE(Home("rm -f go vpid kids.txt; printf 'for i in $(seq 150); do sh -c %s; done\\n' \"'echo \\$\\$'\" "
                   "> kids.sh").Succeeded());
  auto p = cluster_->Spawn("node1", {"sh", "-c",
                                     "cd /kite/t && sh -c 'echo $$ > vpid.tmp && mv vpid.tmp vpid; "
                                     "until [ -e go ]; do sleep 0.05; done; exec kite run --host node2 -- sh kids.sh' "
                                     "> kids.txt"});
  ASSERT_OK(p.status());
  std::string vpid;
  for (int i = 0; i < 200 && vpid.empty(); ++i) {
    vpid = Home("cat vpid 2>/dev/null").stdout_data;
    if (vpid.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_FALSE(vpid.empty());
  const long v = std::stol(vpid);
  ASSERT_GT(v, 1);
  auto set = cluster_->Exec("node2", {"sh", "-c", "echo " + std::to_string(std::max(v - 40, 1L)) +
                                                      " > /proc/sys/kernel/ns_last_pid"});
  ASSERT_OK(set.status());
  ASSERT_TRUE(set->Succeeded()) << set->Describe();
  ASSERT_TRUE(Home("touch go").Succeeded());
  auto done = (*p)->Wait(std::chrono::seconds(60));
  ASSERT_OK(done.status());
  ASSERT_TRUE(done->Succeeded()) << done->Describe();
  std::istringstream kids(Home("cat kids.txt").stdout_data);
  int n = 0;
  for (long pid; kids >> pid; ++n) EXPECT_NE(pid, v) << "a child of the job got the root's vpid";
  EXPECT_EQ(n, 150);
}

TEST_F(RemoteExecTest, ChildrenOfTheJobSeeTheirParentAsTheVpid) {
  ProcessResult r = Home("kite run --host node3 -- sh -c 'echo $$; sh -c \"echo \\$PPID\"' & wait");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  std::istringstream in(r.stdout_data);
  std::string root, childs_parent;
  in >> root >> childs_parent;
  EXPECT_EQ(root, childs_parent);
}

TEST_F(RemoteExecTest, JobOnAPtySeesATerminal) {
  Subprocess::Options o;
  o.pty = true;
  o.pty_cols = 123;
  auto p = cluster_->Spawn("node1",
                           {"sh", "-c", "cd /kite && kite run --host node2 -- python3 -c "
                                        "'import os,sys; print(os.isatty(0), os.isatty(1), os.get_terminal_size().columns)'"},
                           o);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  auto r = (*p)->Wait(std::chrono::seconds(60));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->Succeeded()) << r->Describe();
  EXPECT_THAT(r->stdout_data, HasSubstr("True True 123"));
}

TEST_F(RemoteExecTest, CtrlCOnTheTerminalStopsTheJob) {
  Subprocess::Options o;
  o.pty = true;
  auto p = cluster_->Spawn("node1", {"sh", "-c", "cd /kite && exec kite run --host node3 -- sh -c 'echo ready; exec sleep 1234'"}, o);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_TRUE((*p)->WaitForStdout("ready", std::chrono::seconds(30))) << (*p)->Stdout();
  ASSERT_OK((*p)->WriteStdin("\x03"));
  auto r = (*p)->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(WIFSIGNALED(r->exit_status) && WTERMSIG(r->exit_status) == SIGINT) << r->Describe();
  EXPECT_TRUE(EventuallyEmpty("node3", "pgrep -f 'slee[p] 1234' || true"));
}

TEST_F(RemoteExecTest, CtrlZStopsTheJobAndTheDeputyAndSigcontResumesBoth) {
  Subprocess::Options o;
  o.pty = true;
  auto p = cluster_->Spawn("node1", {"sh", "-c", "cd /kite && exec kite run --host node2 -- sh -c "
                                                 "'while :; do echo tick; sleep 0.1; done'"}, o);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_TRUE((*p)->WaitForStdout("tick", std::chrono::seconds(30)));
  ASSERT_OK((*p)->WriteStdin("\x1a"));  // ^Z: the terminal sends SIGTSTP to the deputy
  // The deputy stops itself (as a local job would) and the job on node2 is stopped too.
  auto state_of = [&](const std::string& host, const std::string& pattern) {
    return On(host, "ps -o stat= -p $(pgrep -f '" + pattern + "' | head -1) 2>/dev/null | cut -c1").stdout_data;
  };
  bool stopped = false;
  for (int i = 0; i < 50 && !stopped; ++i) {
    stopped = state_of("node1", "kit[e] run --host node2") == "T\n" && state_of("node2", "whil[e] :") == "T\n";
    if (!stopped) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(stopped) << "deputy: " << state_of("node1", "kit[e] run --host node2")
                       << " job: " << state_of("node2", "whil[e] :");
  size_t before = (*p)->Stdout().size();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ((*p)->Stdout().size(), before) << "the job kept printing while stopped";
  // fg: a shell sends SIGCONT to the job's whole process group (here it also holds the
  // `scripts/cluster exec` wrapper, whose nsenter stopped along with the deputy).
  ASSERT_OK((*p)->Kill(SIGCONT));
  bool resumed = false;
  for (int i = 0; i < 50 && !resumed; ++i) {
    resumed = (*p)->Stdout().size() > before + 10;
    if (!resumed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(resumed) << "no output after SIGCONT";
  ASSERT_OK((*p)->WriteStdin("\x03"));
  auto r = (*p)->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(WIFSIGNALED(r->exit_status) && WTERMSIG(r->exit_status) == SIGINT) << r->Describe();
}

TEST_F(RemoteExecTest, SignalsReachTheJob) {
  auto p = cluster_->Spawn("node1", {"sh", "-c", "cd /kite && exec kite run --host node2 -- sh -c "
                                                 "'trap \"echo got HUP; exit 7\" HUP; echo ready; while :; do sleep 0.1; done'"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_TRUE((*p)->WaitForStdout("ready", std::chrono::seconds(30)));
  // To the deputy alone (the test's process group also holds the `scripts/cluster exec` wrapper).
  ASSERT_TRUE(On("node1", "pkill -HUP -x kite").Succeeded());
  auto r = (*p)->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, "ready\ngot HUP\n");
  EXPECT_TRUE(WIFEXITED(r->exit_status) && WEXITSTATUS(r->exit_status) == 7) << r->Describe();
}

TEST_F(RemoteExecTest, KilledDeputyLeavesNoProcessOnTheRemoteHost) {
  auto p = cluster_->Spawn("node1", {"sh", "-c", "cd /kite && exec kite run --host node2 -- sh -c 'echo ready; exec sleep 4321'"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_TRUE((*p)->WaitForStdout("ready", std::chrono::seconds(30)));
  ASSERT_FALSE(On("node2", "pgrep -f 'slee[p] 4321' || true").stdout_data.empty());
  ASSERT_OK((*p)->Kill(SIGKILL));
  EXPECT_TRUE(EventuallyEmpty("node2", "pgrep -f 'slee[p] 4321' || true"));
}

TEST_F(RemoteExecTest, KillFromTheJobReachesAProcessAtHome) {
  ProcessResult r = Home(
      "sleep 1000 & victim=$!; "
      "kite run --host node2 -- sh -c \"kill -TERM $victim; echo rc=\\$?\"; "
      "wait $victim; echo victim=$?");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_EQ(r.stdout_data, "rc=0\nvictim=143\n");
}

TEST_F(RemoteExecTest, AUserCannotSignalAnotherUsersProcess) {
  ProcessResult r = Home(
      "chmod 1777 /kite/t && sleep 1000 & victim=$!; "
      "setpriv --reuid=65534 --regid=65534 --clear-groups -- "
      "kite run --host node2 -- sh -c \"kill -TERM $victim 2>/dev/null; echo rc=\\$?\"; "
      "kill -0 $victim && echo alive; kill $victim");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_EQ(r.stdout_data, "rc=1\nalive\n");
}

TEST_F(RemoteExecTest, PsShowsOnlyTheCallersJobs) {
  auto p = cluster_->Spawn("node1", {"sh", "-c", "cd /kite && exec kite run --host node3 -- sh -c 'echo ready; exec sleep 777'"});
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE((*p)->WaitForStdout("ready", std::chrono::seconds(30)));
  ProcessResult mine = Home("kite ps");
  EXPECT_THAT(mine.stdout_data, HasSubstr("node3"));
  EXPECT_THAT(mine.stdout_data, HasSubstr("sleep 777"));
  ProcessResult json = Home("kite ps --json");
  EXPECT_THAT(json.stdout_data, HasSubstr("\"command\": \"sh -c echo ready; exec sleep 777\""));
  ProcessResult theirs = Home("setpriv --reuid=65534 --regid=65534 --clear-groups -- kite ps");
  EXPECT_THAT(theirs.stdout_data, Not(HasSubstr("sleep 777")));
  ASSERT_OK((*p)->Kill(SIGTERM));
  (void)(*p)->Wait(std::chrono::seconds(30));
}

TEST_F(RemoteExecTest, HostsListsEveryHost) {
  ProcessResult r = Home("kite hosts");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  for (const char* h : {"node1", "node2", "node3"}) EXPECT_THAT(r.stdout_data, HasSubstr(h));
  EXPECT_THAT(r.stdout_data, HasSubstr("idle"));
  r = Home("kite hosts --json");
  EXPECT_THAT(r.stdout_data, HasSubstr("\"host\": \"node2\""));
}

TEST_F(RemoteExecTest, HostWithActiveOwnerGetsNoJob) {
  ASSERT_TRUE(Home("kite owner node2 active").Succeeded());
  ProcessResult r = Home("kite run --host node2 -- true");
  EXPECT_EQ(WEXITSTATUS(r.exit_status), 255) << r.Describe();
  EXPECT_THAT(r.stderr_data, HasSubstr("owner"));
  r = Home("for i in 1 2 3 4 5 6 7 8; do kite run -v -- true; done");
  EXPECT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_THAT(r.stderr_data, Not(HasSubstr("running on node2")));
  ASSERT_TRUE(Home("kite owner node2 idle && kite owner node2 auto").Succeeded());
}

TEST_F(RemoteExecTest, UnknownHostAndMissingCommandAreClearErrors) {
  ProcessResult r = Home("kite run --host nowhere -- true");
  EXPECT_EQ(WEXITSTATUS(r.exit_status), 255);
  EXPECT_THAT(r.stderr_data, HasSubstr("unknown host 'nowhere'"));
  r = Home("kite run --host node2 -- /no/such/program");
  EXPECT_EQ(WEXITSTATUS(r.exit_status), 127) << r.Describe();
  EXPECT_THAT(r.stderr_data, HasSubstr("/no/such/program"));
}

TEST_F(RemoteExecTest, MalformedLocalFramesGetAnErrorAndTheDaemonLivesOn) {
  ProcessResult r = Home(
      "python3 - <<'EOF'\n"
      "import socket, struct\n"
      "for payload in [b'garbage garbage garbage', struct.pack('<IHHI', 0x4554494b, 1, 1, 0xffffffff),\n"
      "                struct.pack('<IHHI', 0x4554494b, 1, 1, 8) + b'\\xff' * 8,\n"
      "                struct.pack('<IHHI', 0x4554494b, 1, 999, 0)]:\n"
      "    s = socket.socket(socket.AF_UNIX); s.connect('/run/kite/homed.sock'); s.sendall(payload)\n"
      "    s.settimeout(5); reply = s.recv(4096); s.close()\n"
      "    print('ok' if reply[:4] == b'KITE' or reply == b'' else 'bad')\n"
      "EOF\n"
      "kite run --host node2 -- echo alive");
  ASSERT_TRUE(r.Succeeded()) << r.Describe();
  EXPECT_EQ(r.stdout_data, "ok\nok\nok\nok\nalive\n");
}

// Tests that break a host get their own cluster.
class RemoteExecFailureTest : public ::testing::Test {
 protected:
  SimCluster cluster_;
};

TEST_F(RemoteExecFailureTest, LosingTheJobsHostEndsTheDeputyWith255) {
  ASSERT_OK(cluster_.Up(2));
  auto p = cluster_.Spawn("node1", {"sh", "-c", "cd /kite && exec kite run --host node2 -- sh -c 'echo ready; exec sleep 999'"});
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE((*p)->WaitForStdout("ready", std::chrono::seconds(30)));
  auto killed = cluster_.Exec("node2", {"pkill", "-KILL", "-x", "kite-remoted"});
  ASSERT_TRUE(killed.ok());
  auto start = std::chrono::steady_clock::now();
  auto r = (*p)->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(WIFEXITED(r->exit_status) && WEXITSTATUS(r->exit_status) == 255) << r->Describe();
  EXPECT_THAT(r->stderr_data, HasSubstr("lost contact with node2"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

}  // namespace
}  // namespace kite::testing
