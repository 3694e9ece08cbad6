// SimCluster: a thin C++ face on scripts/cluster; the script does all the work, so a cluster a
// test made can be inspected and removed by hand with the same tool.
#include "tests/support/sim_cluster.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>

#ifndef KITE_SOURCE_DIR
#error "KITE_SOURCE_DIR must be defined (tests/support/CMakeLists.txt does)"
#endif
#ifndef KITE_BIN_DIR
#error "KITE_BIN_DIR must be defined (tests/support/CMakeLists.txt does)"
#endif

namespace kite::testing {
namespace {

constexpr std::chrono::milliseconds kScriptTimeout{std::chrono::minutes(2)};

// "kt<pid>-<n>": unique among processes and within one; short, for the script's 24-char limit.
std::string UniqueName() {
  static std::atomic<int> counter{0};
  return "kt" + std::to_string(getpid()) + "-" + std::to_string(++counter);
}

// Runs a started process to completion with `stdin_data`; kills it (its group) on timeout.
StatusOr<ProcessResult> Finish(Subprocess& p, const std::string& stdin_data,
                               std::chrono::milliseconds timeout, const std::string& what) {
  Status written = p.WriteStdin(stdin_data, timeout);
  p.CloseStdin();
  StatusOr<ProcessResult> r = p.Wait(timeout);
  if (r.ok()) return r;
  p.Kill(SIGKILL).ok();
  StatusOr<ProcessResult> killed = p.Wait(std::chrono::seconds(30));
  std::string detail = killed.ok() ? killed->Describe() : killed.status().ToString();
  return Status(r.status().code(), what + ": " + r.status().message() + " (killed; " + detail + ")" +
                                       (written.ok() ? "" : "; " + written.ToString()));
}

}  // namespace

SimCluster::SimCluster() : name_(UniqueName()) {}

SimCluster::~SimCluster() {
  if (!up_called_) return;
  Status s = Down();
  if (!s.ok()) fprintf(stderr, "SimCluster %s: down failed: %s\n", name_.c_str(), s.ToString().c_str());
}

std::string SimCluster::SourceDir() { return KITE_SOURCE_DIR; }
std::string SimCluster::BinDir() { return KITE_BIN_DIR; }
std::string SimCluster::ScriptPath() { return SourceDir() + "/scripts/cluster"; }

StatusOr<ProcessResult> SimCluster::RunScript(const std::vector<std::string>& args,
                                              const std::vector<std::string>& env) {
  std::vector<std::string> argv = {ScriptPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess::Options options;
  options.env = env;
  options.env.push_back("KITE_BIN=" + BinDir());
  KITE_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> p, Subprocess::Start(argv, options));
  return Finish(*p, "", kScriptTimeout, "scripts/cluster " + (args.empty() ? "" : args[0]));
}

Status SimCluster::RemoveStaleClusters() {
  KITE_ASSIGN_OR_RETURN(ProcessResult r, RunScript({"down", "--stale"}));
  if (!r.Succeeded()) return Internal("scripts/cluster down --stale " + r.Describe());
  return OkStatus();
}

Status SimCluster::Up(int hosts, const SimClusterOptions& options) {
  if (up_called_) return FailedPrecondition("SimCluster " + name_ + " is already up");
  if (hosts < 1) return InvalidArgument("SimCluster::Up: need at least one host");
  static std::once_flag stale_once;
  Status stale;
  std::call_once(stale_once, [&] { stale = RemoveStaleClusters(); });
  if (!stale.ok()) fprintf(stderr, "SimCluster: removing stale clusters: %s\n", stale.ToString().c_str());

  std::vector<std::string> args = {"up", std::to_string(hosts), "--name", name_,
                                   "--cpu", std::to_string(options.cpu),
                                   "--owner-pid", std::to_string(getpid())};
  if (options.slots > 0) {
    args.push_back("--slots");
    args.push_back(std::to_string(options.slots));
  }
  up_called_ = true;  // from here on Down() is due, whatever happens
  KITE_ASSIGN_OR_RETURN(ProcessResult r,
                        RunScript(args, {options.daemons ? "KITE_SIM_NO_DAEMONS=0"
                                                         : "KITE_SIM_NO_DAEMONS=1"}));
  if (!r.Succeeded()) return Internal("scripts/cluster up " + name_ + " " + r.Describe());
  return OkStatus();
}

Status SimCluster::Down() {
  KITE_ASSIGN_OR_RETURN(ProcessResult r, RunScript({"down", "--name", name_}));
  if (!r.Succeeded()) return Internal("scripts/cluster down " + name_ + " " + r.Describe());
  up_called_ = false;
  return OkStatus();
}

std::vector<std::string> SimCluster::hosts() const {
  std::vector<std::string> out;
  std::ifstream in(StateDir() + "/hosts");
  std::string host, address;
  while (in >> host >> address) out.push_back(host);
  return out;
}

StatusOr<std::string> SimCluster::Address(const std::string& host) const {
  std::ifstream in(StateDir() + "/hosts");
  std::string h, address;
  while (in >> h >> address)
    if (h == host) return address;
  return NotFound("cluster " + name_ + " has no host '" + host + "'");
}

StatusOr<ProcessResult> SimCluster::Exec(const std::string& host,
                                         const std::vector<std::string>& argv,
                                         const std::string& stdin_data,
                                         std::chrono::milliseconds timeout) {
  KITE_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> p, Spawn(host, argv));
  return Finish(*p, stdin_data, timeout, "exec on " + host);
}

StatusOr<std::unique_ptr<Subprocess>> SimCluster::Spawn(const std::string& host,
                                                        const std::vector<std::string>& argv,
                                                        const Subprocess::Options& options) {
  if (argv.empty()) return InvalidArgument("SimCluster::Spawn: empty argv");
  // Checked here so that a wrong host is an error, not an exit status of 1 from the script.
  KITE_RETURN_IF_ERROR(Address(host).status());
  std::vector<std::string> full = {ScriptPath(), "exec", "--name", name_, host, "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  Subprocess::Options o = options;
  o.env.push_back("KITE_BIN=" + BinDir());
  return Subprocess::Start(full, o);
}

std::string SimCluster::StateDir() const { return "/run/kite-sim/" + name_; }
std::string SimCluster::SharedDir() const { return "/var/lib/kite-sim/" + name_ + "/shared"; }

std::string SimCluster::LogPath(const std::string& host, const std::string& daemon) const {
  return StateDir() + "/" + host + "/" + daemon + ".log";
}

std::string SimCluster::CgroupPath(const std::string& controller, const std::string& host) const {
  std::ifstream in(StateDir() + "/cgroups");  // "<controller> <instance group>" lines
  std::string c, base;
  while (in >> c >> base)
    if (c == controller) return base + "/" + host;
  return "";
}

}  // namespace kite::testing
