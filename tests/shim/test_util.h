// Helpers for the shim tests: a temporary directory, a throw-away cgroup, and running the probe
// program (shim_probe.c) under LD_PRELOAD=libkite-shim.so with a crafted job environment.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace kite::shim::testing {

// Paths of the built shim and probe (compile definitions from tests/shim/CMakeLists.txt).
const char* ShimPath();
const char* ProbePath();

// A fresh directory under /tmp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A new cgroup below ours in the v1 "pids" hierarchy: stands in for the cgroup remoted gives a
// job. ok() is false when cgroups cannot be made here (tests then skip). Removed on destruction
// (this process is moved out first); every other process put in it must have exited by then.
class TestCgroup {
 public:
  TestCgroup();
  ~TestCgroup();
  bool ok() const { return !dir_.empty(); }
  std::string procs_path() const { return dir_ + "/cgroup.procs"; }
  bool Join(pid_t pid) const;   // moves `pid` into the cgroup
  bool Leave(pid_t pid) const;  // moves `pid` back to the cgroup we were made in

 private:
  std::string parent_;
  std::string dir_;
};

// A child process that waits in pause() to be signalled; killed and reaped on destruction
// unless Wait() reaped it already. Fork it before starting threads, or only from tests whose
// other threads hold no locks the child could need (it calls nothing but pause()).
class Sleeper {
 public:
  Sleeper();
  ~Sleeper();
  pid_t pid() const { return pid_; }
  int Wait();  // waits up to 5 s for it to end: the raw wait status, or -1

 private:
  pid_t pid_;
  bool reaped_ = false;
};

// A pid that no process on this host has right now: stands for a process at home.
pid_t UnusedPid();

struct ProbeOptions {
  // Environment of the probe, "NAME=value" each; "{self}" in a value becomes the probe's pid,
  // so "KITE_JOB=4242:4000:{self}" makes the probe the job's root.
  std::vector<std::string> env;
  bool preload = true;       // prepend LD_PRELOAD=<shim>
  bool setsid = true;        // start a session first, as remoted does for a job root
  std::string cgroup_procs;  // if set, the probe joins this cgroup before exec
};

struct ProbeResult {
  int status = -1;                          // raw wait status
  std::string out;                          // everything printed
  std::map<std::string, std::string> kv;    // "key=value" lines
  int Int(const std::string& key) const;    // kv[key] as a number; fails the test if absent
};

// Runs `probe args...` and waits for it (the probe times itself out with alarm()).
ProbeResult RunProbe(const std::vector<std::string>& args, const ProbeOptions& opts);

}  // namespace kite::shim::testing
