// Test harness for end-to-end checkpoint/restore tests: runs ckpt_prog subjects under the shim
// in a directory of their own, asks them to checkpoint (sigqueue, as a controller would), runs
// kite-restore (plainly or as PID 2 of a new PID namespace), and kills whatever it started.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace kite::testing {

class CkptHarness {
 public:
  static constexpr uid_t kNobody = 65534;
  static constexpr auto kTimeout = std::chrono::seconds(20);

  struct SubjectOptions {
    uid_t uid = kNobody;   // the subject runs as this user (its image too)
    bool vpid = false;     // KITE_JOB=<pid>:<ppid>:<pid>: getpid() must keep returning <pid>
    const char* fault = nullptr;  // KITE_CKPT_FAULT for the shim
  };
  struct RestoreOptions {
    bool pid_namespace = false;  // as PID 2 under ckpt_nsinit
    bool allow_root = false;
    std::string pages;           // --pages FIFO: the page data comes through it
  };

  // Makes a fresh directory (owned by kNobody) for one test.
  CkptHarness();
  // Kills (SIGKILL) and reaps every process it started, removes the directory.
  ~CkptHarness();

  const std::string& dir() const { return dir_; }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // Starts ckpt_prog with `pieces` and waits for it to say ready. Returns its pid or -1.
  pid_t StartSubject(const std::vector<std::string>& pieces, const SubjectOptions& options);
  // Sends the checkpoint request (mode KITE_CKPT_CONTINUE/EXIT) to host pid `pid` and waits for
  // <pid>.img or <pid>.err. Returns the path of whichever appeared, "" on timeout.
  std::string Checkpoint(pid_t pid, int mode);
  // Runs kite-restore on `image` (stdout/stderr to restore.log). Returns the pid of the process
  // the test waits for (kite-restore itself, or the outer ckpt_nsinit).
  pid_t Restore(const std::string& image, const RestoreOptions& options);
  // The pid of the restored process as this host sees it: `launched` itself, or with a PID
  // namespace the grandchild of ckpt_nsinit. Waits until the restore is done (kite-restore's
  // window is unmapped). -1 on timeout.
  pid_t RestoredPid(pid_t launched, bool pid_namespace);
  // Creates ./go: every subject still looping runs its checks and exits.
  void Go();
  // Waits for a child started here; returns its raw wait status, or -1 on timeout.
  int Wait(pid_t pid);
  // Runs kite-restore with `args` to completion; returns its wait status, output in *output.
  static int RunRestoreTool(const std::vector<std::string>& args, std::string* output);

  std::string ReadFile(const std::string& name) const;
  bool Exists(const std::string& name) const;
  // The subject's stdout (its verdict: "PASS" or "FAIL: ..." lines).
  std::string Output() const { return ReadFile("out.txt"); }

 private:
  // fork + exec with only 0 (/dev/null), 1 and 2 (out_name) open, in dir(), as `uid`; a
  // `subject` gets the shim (LD_PRELOAD) and KITE_CKPT_DIR.
  pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_name, uid_t uid,
              bool vpid, bool subject, const char* fault = nullptr);

  std::string dir_;
  std::vector<pid_t> started_;
};

// "exited with status N" / "killed by signal N" for messages.
std::string DescribeStatus(int status);

}  // namespace kite::testing
