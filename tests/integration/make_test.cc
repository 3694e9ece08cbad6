// `kite make` end to end (issue 4): a generated C project with recursive make, built on a
// simulated cluster and compared with a plain local `make`: identical outputs, work on every
// host, make's own failure messages and statuses, -k, Ctrl-C, an owner coming back, two homes
// sharing the hosts, and `kite top --once`. Projects come from gen_make_project.sh.
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/support/sim_cluster.h"
#include "tests/support/status_matchers.h"

namespace kite::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Gen() { return SimCluster::SourceDir() + "/tests/integration/gen_make_project.sh"; }

// "  node2     85 recipes" lines of kite make's summary.
std::map<std::string, int> SummaryCounts(const std::string& err) {
  std::map<std::string, int> counts;
  std::regex line(R"(^  (\S+) +(\d+) recipes?)");
  std::istringstream in(err);
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    if (std::regex_search(l, m, line)) counts[m[1]] = std::stoi(m[2]);
  }
  return counts;
}

// make's "***" lines, minus the one whose presence depends on timing.
std::vector<std::string> StarLines(const std::string& err) {
  std::vector<std::string> out;
  std::istringstream in(err);
  for (std::string l; std::getline(in, l);)
    if (l.find("***") != std::string::npos && l.find("Waiting for unfinished jobs") == std::string::npos) out.push_back(l);
  return out;
}

class MakeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new SimCluster();
    SimClusterOptions o;
    o.slots = 2;
    Status s = cluster_->Up(3, o);
    if (!s.ok()) setup_error_ = new std::string(s.ToString());
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (setup_error_) GTEST_FAIL() << "cluster did not come up: " << *setup_error_;
  }

  ProcessResult On(const std::string& host, const std::string& script,
                   std::chrono::milliseconds timeout = std::chrono::minutes(4)) {
    auto r = cluster_->Exec(host, {"sh", "-c", script}, "", timeout);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ProcessResult{};
  }
  // Generates a project in /kite/<dir> (removing an old one).
  void Generate(const std::string& dir, const std::string& shape) {
    ProcessResult r = On("node1", "rm -rf /kite/" + dir + " && " + Gen() + " /kite/" + dir + " " + shape);
    ASSERT_TRUE(r.Succeeded()) << r.Describe();
  }
  // The build's products (objects, archives, app) in /kite/<dir>, sorted.
  std::string Products(const std::string& dir) {
    return On("node1", "cd /kite/" + dir + " && find . \\( -name '*.o' -o -name '*.a' -o -name app \\) | sort").stdout_data;
  }
  // Waits until `script` on `host` prints nothing.
  bool EventuallyEmpty(const std::string& host, const std::string& script, int seconds = 10) {
    std::string last;
    for (int i = 0; i < seconds * 5; ++i) {
      last = On(host, script).stdout_data;
      if (last.empty()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ADD_FAILURE() << "still on " << host << ":\n" << last;
    return false;
  }

  static SimCluster* cluster_;
  static std::string* setup_error_;
};
SimCluster* MakeTest::cluster_ = nullptr;
std::string* MakeTest::setup_error_ = nullptr;

TEST_F(MakeTest, OutputsEqualAPlainMakesAndEveryHostGetsWork) {
  Generate("kite", "4 3 20");
  Generate("local", "4 3 20");
  ProcessResult k = On("node1", "cd /kite/kite && kite make");
  ASSERT_TRUE(k.Succeeded()) << k.Describe();
  ProcessResult m = On("node1", "cd /kite/local && make -j2");
  ASSERT_TRUE(m.Succeeded()) << m.Describe();

  std::string products = Products("kite");
  EXPECT_EQ(products, Products("local"));
  EXPECT_EQ(std::count(products.begin(), products.end(), '\n'), 4 * 3 * 20 + 4 + 1 + 1);
  ProcessResult cmp = On("node1", "cd /kite/kite && for f in $(find . \\( -name '*.o' -o -name '*.a' -o -name app \\)); do "
                                  "cmp \"$f\" \"/kite/local/$f\" || echo \"DIFFERS: $f\"; done; ./app; /kite/local/app");
  EXPECT_THAT(cmp.stdout_data, Not(HasSubstr("DIFFERS")));
  std::istringstream runs(cmp.stdout_data);
  std::string a, b;
  runs >> a >> b;
  EXPECT_EQ(a, b);

  // Every host did work; the summary adds up to every recipe make ran.
  auto counts = SummaryCounts(k.stderr_data);
  EXPECT_GT(counts["node2"], 0) << k.stderr_data;
  EXPECT_GT(counts["node3"], 0) << k.stderr_data;
  EXPECT_EQ(counts.count("node1"), 0u) << "the home is listed as home";
  EXPECT_THAT(k.stderr_data, ::testing::ContainsRegex("kite make: [0-9]+ recipes, wall time [0-9.]+ s"));
  EXPECT_THAT(k.stderr_data, HasSubstr("sub-makes"));
  // stdout is make's own: the commands it echoed, each whole on its line.
  EXPECT_THAT(k.stdout_data, HasSubstr("ar rcsD lib3.a"));
  EXPECT_THAT(k.stdout_data, Not(HasSubstr("kite make:")));

  // --quiet drops the summary; a second run has nothing to do, as with make.
  ProcessResult again = On("node1", "cd /kite/kite && kite make --quiet lib1/lib1.a main.o");
  EXPECT_TRUE(again.Succeeded()) << again.Describe();
  EXPECT_THAT(again.stderr_data, Not(HasSubstr("kite make:")));
  EXPECT_THAT(again.stdout_data, HasSubstr("'main.o' is up to date"));
}

TEST_F(MakeTest, AFailingRecipeFailsTheBuildAsPlainMakeDoes) {
  Generate("fail-kite", "2 2 5");
  Generate("fail-local", "2 2 5");
  ProcessResult k = On("node1", "cd /kite/fail-kite && kite make BREAK=1");
  ProcessResult m = On("node1", "cd /kite/fail-local && make -j6 BREAK=1");
  ASSERT_TRUE(WIFEXITED(m.exit_status)) << m.Describe();
  ASSERT_TRUE(WIFEXITED(k.exit_status)) << k.Describe();
  EXPECT_EQ(WEXITSTATUS(k.exit_status), WEXITSTATUS(m.exit_status));
  EXPECT_EQ(WEXITSTATUS(k.exit_status), 2);
  EXPECT_THAT(k.stderr_data, HasSubstr("injected failure in broken.o\n"));
  for (const auto& line : StarLines(m.stderr_data)) EXPECT_THAT(k.stderr_data, HasSubstr(line + "\n"));
  EXPECT_THAT(k.stderr_data, HasSubstr("make[2]: *** Deleting file 'broken.o'"));  // .DELETE_ON_ERROR
  EXPECT_TRUE(On("node1", "test -e /kite/fail-kite/lib2/s2/broken.o").exit_status != 0);
  EXPECT_THAT(k.stderr_data, ::testing::ContainsRegex("kite make: [0-9]+ recipes"));
}

TEST_F(MakeTest, KeepGoingBuildsEverythingElse) {
  Generate("k-kite", "2 2 5");
  Generate("k-local", "2 2 5");
  ProcessResult k = On("node1", "cd /kite/k-kite && kite make -k BREAK=1");
  ProcessResult m = On("node1", "cd /kite/k-local && make -j6 -k BREAK=1");
  EXPECT_EQ(WEXITSTATUS(k.exit_status), WEXITSTATUS(m.exit_status)) << k.Describe() << m.Describe();
  EXPECT_THAT(k.stderr_data, HasSubstr("Target 'all' not remade because of errors."));
  std::string products = Products("k-kite");
  EXPECT_EQ(products, Products("k-local"));
  EXPECT_THAT(products, HasSubstr("./lib1/lib1.a\n"));  // the library without the failure is done
  EXPECT_THAT(products, HasSubstr("./lib2/s2/f5.o\n"));
  EXPECT_THAT(products, Not(HasSubstr("broken.o")));
}

TEST_F(MakeTest, CtrlCStopsEveryRecipeAndLeavesNoProcess) {
  Generate("intr", "2 2 8");
  auto p = cluster_->Spawn("node1", {"sh", "-c", "cd /kite/intr && exec kite make SLOW=3"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  // Recipes are running (on the other hosts too) once make has echoed a few compiles.
  ASSERT_TRUE((*p)->WaitForStdout("-c f2.c", std::chrono::seconds(60))) << (*p)->Stdout();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_FALSE(On("node2", "pgrep -x sleep -a | grep -v infinity || true").stdout_data.empty() &&
               On("node3", "pgrep -x sleep -a | grep -v infinity || true").stdout_data.empty())
      << "no recipe was running remotely when Ctrl-C came";
  ASSERT_OK((*p)->Kill(SIGINT));
  auto r = (*p)->Wait(std::chrono::seconds(60));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((WIFSIGNALED(r->exit_status) && WTERMSIG(r->exit_status) == SIGINT) ||
              (WIFEXITED(r->exit_status) && WEXITSTATUS(r->exit_status) == 130))
      << r->Describe();
  EXPECT_THAT(r->stderr_data, HasSubstr("Interrupt"));
  // Nothing of the build is left anywhere (zombies waiting for the host's init aside).
  const std::string leftovers =
      "ps -e -o stat=,args= | awk '$1 !~ /^Z/' | grep -E 'kite-shell|kite make|cc1|^[^ ]+ sleep 3$|make ' | "
      "grep -v grep || true";
  for (const char* host : {"node1", "node2", "node3"}) EXPECT_TRUE(EventuallyEmpty(host, leftovers)) << host;
}

TEST_F(MakeTest, AHostWhoseOwnerComesBackGetsNoNewRecipes) {
  Generate("owner", "3 2 10");
  auto p = cluster_->Spawn("node1", {"sh", "-c", "cd /kite/owner && exec kite make TRACE=/kite/owner/trace SLOW=0.3"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  // Wait until node3 has run some recipes.
  bool started = false;
  for (int i = 0; i < 300 && !started; ++i) {
    started = !On("node1", "grep '^node3 ' /kite/owner/trace 2>/dev/null || true").stdout_data.empty();
    if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(started) << "node3 never got a recipe";
  ProcessResult active = On("node1", "kite owner node3 active && date +%s.%N");
  ASSERT_TRUE(active.Succeeded()) << active.Describe();
  const double since = std::stod(active.stdout_data);
  auto r = (*p)->Wait(std::chrono::minutes(3));
  ASSERT_TRUE(On("node1", "kite owner node3 auto").Succeeded());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->Succeeded()) << r->Describe();

  std::istringstream trace(On("node1", "cat /kite/owner/trace").stdout_data);
  int node3_after = 0, elsewhere_after = 0;
  for (std::string host, object; ;) {
    double t;
    if (!(trace >> host >> t >> object)) break;
    // A recipe placed just before the switch may start its shell a moment after it.
    if (t < since + 0.5) continue;
    (host == "node3" ? node3_after : elsewhere_after)++;
  }
  EXPECT_EQ(node3_after, 0);
  EXPECT_GT(elsewhere_after, 0) << "the build went on elsewhere";
}

TEST_F(MakeTest, RecipesEvictedMidRunMoveOrAreRequeuedAndTheBuildSucceeds) {
  // Each recipe is a shell waiting on a child. The odd ones migrate (the whole tree moves); the
  // even ones run a child without the shim, which cannot be checkpointed, so an eviction
  // requeues them. Six recipes on four slots of the two evicted hosts: both kinds are evicted.
  ProcessResult setup = On("node1", "rm -rf /kite/evict && mkdir -p /kite/evict && cd /kite/evict && "
                                    "cat > Makefile <<'EOF'\n"
                                    "all: $(patsubst %,out%,1 2 3 4 5 6)\n"
                                    "out%:\n"
                                    "\t@echo start $@; case $@ in *[246]) env -u LD_PRELOAD sleep 3;; *) sleep 3;; esac; "
                                    "echo made $@ > $@\n"
                                    "EOF\n");
  ASSERT_TRUE(setup.Succeeded()) << setup.Describe();
  auto p = cluster_->Spawn("node1", {"sh", "-c", "cd /kite/evict && exec kite make -j6"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_TRUE((*p)->WaitForStdout("start out6", std::chrono::seconds(30))) << (*p)->Stdout() << (*p)->Stderr();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(On("node1", "kite owner node2 active && kite owner node3 active").Succeeded());
  auto r = (*p)->Wait(std::chrono::minutes(2));
  // Cleared, and given no new recipe. The host table is the hosts' last reports (about 1 s
  // old): wait for reports made after the build ended.
  auto cleared = [](const std::string& json) {
    for (const char* host : {"node2", "node3"}) {
      if (!std::regex_search(json, std::regex(std::string("\"host\": \"") + host + "\"[^}]*\"guests\": 0[,}]")))
        return false;
    }
    return true;
  };
  ProcessResult guests;
  for (int i = 0; i < 30; ++i) {
    guests = On("node1", "kite hosts --json");
    if (cleared(guests.stdout_data)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(On("node1", "kite owner node2 auto && kite owner node3 auto").Succeeded());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->Succeeded()) << r->Describe() << r->stdout_data << r->stderr_data;
  EXPECT_EQ(On("node1", "cd /kite/evict && cat out1 out2 out3 out4 out5 out6").stdout_data,
            "made out1\nmade out2\nmade out3\nmade out4\nmade out5\nmade out6\n");
  // Every recipe's "start" line once: a requeued recipe's repeated output is not shown again.
  for (int i = 1; i <= 6; ++i) {
    const std::string line = "start out" + std::to_string(i) + "\n";
    size_t first = r->stdout_data.find(line);
    EXPECT_NE(first, std::string::npos) << line;
    EXPECT_EQ(r->stdout_data.find(line, first + 1), std::string::npos) << "twice: " << line << r->stdout_data;
  }
  EXPECT_TRUE(cleared(guests.stdout_data)) << guests.stdout_data;
  std::ifstream log(cluster_->LogPath("node1", "homed"));
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("requeued: killed on node"));
  EXPECT_THAT(text, HasSubstr("moved node"));
  EXPECT_TRUE(std::regex_search(r->stderr_data + r->stdout_data,
                                std::regex("evicted while running: [1-3] migrated, [1-3] requeued")))
      << r->stdout_data << r->stderr_data;
}

// The issue's eviction test on a real C build: both guest hosts' owners come back mid-build;
// the compiles running there (each a shell waiting on `sleep` or on cc -> cc1) move home, or
// are rerun where they cannot move, and the products are byte-identical to a plain make's.
TEST_F(MakeTest, CompilesEvictedMidBuildLeaveAndTheOutputsEqualAPlainMakes) {
  Generate("evk", "2 2 10");
  Generate("evl", "2 2 10");
  auto p = cluster_->Spawn("node1", {"sh", "-c", "cd /kite/evk && exec kite make -j6 SLOW=2"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  // Wait until compiles run on both guest hosts (homed's own job table, not the hosts' reports,
  // which are up to a second old), then send every guest away while they sleep before cc.
  for (int i = 0; i < 300; ++i) {
    ProcessResult ps = On("node1", "kite ps --json");
    if (ps.stdout_data.find("\"host\": \"node2\"") != std::string::npos &&
        ps.stdout_data.find("\"host\": \"node3\"") != std::string::npos && ps.stdout_data.find("-c f") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(On("node1", "kite owner node2 active && kite owner node3 active").Succeeded());
  auto r = (*p)->Wait(std::chrono::minutes(3));
  ASSERT_TRUE(On("node1", "kite owner node2 auto && kite owner node3 auto").Succeeded());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->Succeeded()) << r->Describe() << r->stdout_data << r->stderr_data;
  std::smatch m;
  const std::string summary = r->stderr_data + r->stdout_data;
  ASSERT_TRUE(std::regex_search(summary, m, std::regex("evicted while running: (\\d+) migrated, (\\d+) requeued")))
      << summary;
  EXPECT_GT(std::stoi(m[1]) + std::stoi(m[2]), 0) << summary;
  EXPECT_GT(std::stoi(m[1]), 0) << "recipes are job trees and migrate: " << summary;

  ProcessResult plain = On("node1", "cd /kite/evl && make -j2");
  ASSERT_TRUE(plain.Succeeded()) << plain.Describe();
  EXPECT_EQ(Products("evk"), Products("evl"));
  ProcessResult cmp = On("node1", "cd /kite/evk && for f in $(find . \\( -name '*.o' -o -name '*.a' -o -name app \\)); do "
                                  "cmp \"$f\" \"/kite/evl/$f\" || echo \"DIFFERS: $f\"; done");
  EXPECT_THAT(cmp.stdout_data, Not(HasSubstr("DIFFERS")));
}

TEST_F(MakeTest, TopOnceListsHostsAndGuestJobs) {
  auto p = cluster_->Spawn("node1", {"sh", "-c", "cd /kite && exec kite run --host node2 -- sh -c 'echo ready; exec sleep 555'"});
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE((*p)->WaitForStdout("ready", std::chrono::seconds(30)));
  std::string top;
  for (int i = 0; i < 30; ++i) {  // the host reports its guests about once a second
    top = On("node3", "kite top --once").stdout_data;
    if (top.find("sleep 555") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_THAT(top, HasSubstr("3 hosts"));
  EXPECT_THAT(top, ::testing::ContainsRegex("\nnode1 +idle"));
  EXPECT_THAT(top, ::testing::ContainsRegex("\nnode3 +idle"));
  // The guest, under its host, with its home and vpid.
  EXPECT_THAT(top, ::testing::ContainsRegex("\nnode2 +idle[^\n]*\n    node1:[0-9]+  uid 0  [^\n]*sleep 555"));
  ASSERT_OK((*p)->Kill(SIGTERM));
  (void)(*p)->Wait(std::chrono::seconds(30));
}

// Two homes building at once on two hosts get about half of the slots each, and both finish.
TEST(MakeFairnessTest, TwoHomesBuildingAtOnceShareTheHosts) {
  SimCluster cluster;
  SimClusterOptions o;
  o.slots = 2;
  ASSERT_OK(cluster.Up(4, o));
  auto run = [&](const std::string& host, const std::string& script) {
    auto r = cluster.Exec(host, {"sh", "-c", script}, "", std::chrono::minutes(4));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ProcessResult{};
  };
  // node1 and node2 are the homes; only node3 and node4 take guests.
  ASSERT_TRUE(run("node1", "kite owner node1 active && kite owner node2 active").Succeeded());
  for (const char* h : {"h1", "h2"})
    ASSERT_TRUE(run("node1", Gen() + " /kite/" + std::string(h) + " 3 3 10").Succeeded());
  // Give every homed a report that node1 and node2 are taken.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  auto sampler = cluster.Spawn(
      "node3", {"sh", "-c", "while [ ! -e /kite/h1.done ] && [ ! -e /kite/h2.done ]; do "
                            "kite top --once >> /kite/samples; echo --- >> /kite/samples; sleep 0.5; done"});
  auto b1 = cluster.Spawn("node1", {"sh", "-c", "cd /kite/h1 && kite make SLOW=0.3; s=$?; touch /kite/h1.done; exit $s"});
  auto b2 = cluster.Spawn("node2", {"sh", "-c", "cd /kite/h2 && kite make SLOW=0.3; s=$?; touch /kite/h2.done; exit $s"});
  ASSERT_TRUE(sampler.ok() && b1.ok() && b2.ok());
  auto r1 = (*b1)->Wait(std::chrono::minutes(4));
  auto r2 = (*b2)->Wait(std::chrono::minutes(4));
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_TRUE(r1->Succeeded()) << r1->Describe();
  EXPECT_TRUE(r2->Succeeded()) << r2->Describe();
  (void)(*sampler)->Wait(std::chrono::seconds(30));
  // Both used the shared hosts.
  for (const auto* r : {&*r1, &*r2}) {
    auto counts = SummaryCounts(r->stderr_data);
    EXPECT_GT(counts["node3"] + counts["node4"], 0) << r->stderr_data;
    EXPECT_EQ(counts["node1"] + counts["node2"], 0) << r->stderr_data;
  }
  // Slot-time: guests of each home on node3/node4, summed over the samples while both built.
  std::istringstream samples(run("node1", "cat /kite/samples").stdout_data);
  int of1 = 0, of2 = 0;
  for (std::string l; std::getline(samples, l);) {
    if (l.rfind("    node1:", 0) == 0) ++of1;
    if (l.rfind("    node2:", 0) == 0) ++of2;
  }
  fprintf(stderr, "guest samples on node3/node4: home node1 %d, home node2 %d\n", of1, of2);
  ASSERT_GT(of1 + of2, 20) << "too few samples of guest jobs";
  const double share = static_cast<double>(of1) / (of1 + of2);
  EXPECT_GE(share, 0.375) << of1 << " vs " << of2;
  EXPECT_LE(share, 0.625) << of1 << " vs " << of2;
  run("node1", "kite owner node1 auto; kite owner node2 auto");
}

}  // namespace
}  // namespace kite::testing
