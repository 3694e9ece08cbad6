// JobLauncher: turns an ExecSpec into a running job root. Prepare() validates the request and
// builds every string and array the child needs; Launch() forks (or spawns into a cgroup) and,
// the process being multi-threaded, runs only async-signal-safe calls between fork and exec.
//
// The child: resets signal dispositions (ignored ones from the spec, all others SIG_DFL),
// starts a new session, takes the pty (if any) as its controlling terminal, sets rlimits,
// groups, gid, uid, cwd, umask and signal mask, and execs argv[0] looked up in the job's PATH
// like execvpe. If exec fails it writes "kite: <cmd>: <error>" to its stderr and exits 127
// (126 for EACCES), as a shell does. A failure before exec (chdir, setuid, ...) is not the
// job's: Launch() reports it as an error and reaps the child.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "kite/rpc/kite_types.h"
#include "remoted/unique_fd.h"

namespace kite {

struct LaunchOptions {
  bool allow_root = false;  // may the job run as uid 0?
  std::string shim_path;    // preloaded (LD_PRELOAD) into the job; empty: nothing preloaded
  std::string sock_path;    // KITE_SOCK
  std::string ckpt_dir;     // KITE_CKPT_DIR (where the shim writes checkpoint images); empty: unset
  // TMPDIR for a job whose own is unset or /tmp: its home's temporary directory in the shared
  // tree, so temporary files travel with a migrated job. Empty: the job's TMPDIR as it is.
  std::string tmp_dir;
  std::optional<int> oom_score_adj;  // the job's root sets it (remoted lowered its own); unset: inherited
};

// The parent's ends of a started job. The fds are non-blocking and close-on-exec.
struct LaunchedJob {
  pid_t pid = 0;
  UniqueFd pidfd;        // invalid if pidfd_open failed (exit then noticed by polling)
  UniqueFd master;       // the pty master, when the spec's tty_mask has any bit
  UniqueFd stdin_pipe;   // write end, when stdin is not the pty
  UniqueFd stdout_pipe;  // read end, when stdout is not the pty
  UniqueFd stderr_pipe;  // read end, when stderr is not the pty
  std::string pty_slave; // "/dev/pts/N" when there is a pty
};

class JobLauncher {
 public:
  // Limits on what a request may ask for; beyond them it is malformed.
  static constexpr size_t kMaxArgBytes = 4 << 20;  // argv + env, all strings together
  static constexpr size_t kMaxRlimits = 64;
  static constexpr size_t kMaxGroups = 65536;
  static constexpr size_t kMaxHomeLen = 64;
  // ExecSpec.tty_mask bits: the IDL's TTY_STDIN, TTY_STDOUT, TTY_STDERR.
  static constexpr int kTtyStdin = 1, kTtyStdout = 2, kTtyStderr = 4;

  // INVALID_ARGUMENT: malformed spec (empty argv, relative cwd, bad umask, rlimit, signal
  // set, tty mask, window size, host name, NUL bytes, oversized argv/env). PERMISSION_DENIED:
  // uid 0 without options.allow_root, or a uid this daemon cannot switch to.
  static StatusOr<std::unique_ptr<JobLauncher>> Prepare(const rpc::ExecSpec& spec, const LaunchOptions& options);

  // Starts and execs the job. With a valid `cgroup_fd` (a cgroup v2 directory) the child is
  // created in that group by clone3(CLONE_INTO_CGROUP): no cgroup attach, which would take
  // the kernel's global cgroup_threadgroup_rwsem for writing. It is then spawned as by
  // posix_spawn (CLONE_VM|CLONE_VFORK, on x86-64 and arm64): `on_forked(pid)` runs once it has
  // exec'd (or failed before), so the caller must keep its reaper from taking the pid until
  // on_forked has registered it. Without a cgroup (or on other CPUs) the child is forked
  // (cloned), and `on_forked(pid)` runs before the child may do anything that can end it
  // (before setsid and exec): the caller registers the pid for reaping and attaches it to
  // cgroups there. Errors: a pty or pipe could not be made (RESOURCE_EXHAUSTED, ...),
  // fork/clone3 failed, or the child failed before exec (FAILED_PRECONDITION: cwd missing
  // here; PERMISSION_DENIED; ...).
  StatusOr<LaunchedJob> Launch(const std::function<void(pid_t)>& on_forked, int cgroup_fd = -1);

  const std::string& command() const { return command_; }  // argv joined, for display
  bool has_pty() const { return tty_mask_ != 0; }
  int tty_mask() const { return tty_mask_; }

 private:
  JobLauncher() = default;
  Status BuildEnv(const rpc::ExecSpec& spec, const LaunchOptions& options);
  void BuildCandidates(const std::string& file);

  // Everything below is prepared before fork; the child only reads it (and writes the pid
  // into kite_job_pid_).
  std::vector<std::string> argv_;
  std::vector<std::string> env_;
  std::vector<char*> argv_ptrs_;
  std::vector<char*> envp_ptrs_;
  std::vector<char*> sh_argv_ptrs_;         // "/bin/sh <file> args..." for ENOEXEC scripts
  size_t kite_job_env_ = 0;                 // index in env_ of KITE_JOB
  size_t kite_job_pid_pos_ = 0;             // where the root's pid goes in that string
  std::vector<std::string> candidates_;     // argv[0] resolved through PATH, in order
  std::vector<char*> candidate_ptrs_;
  std::string cwd_;
  mode_t umask_ = 022;
  std::vector<std::pair<int, struct rlimit>> rlimits_;
  bool set_creds_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::vector<gid_t> groups_;
  sigset_t blocked_{};
  uint64_t ignored_ = 0;
  int tty_mask_ = 0;
  std::optional<rpc::WinSize> winsize_;
  std::string oom_score_adj_;  // decimal, written to /proc/self/oom_score_adj; empty: not
  std::string command_;
};

}  // namespace kite
