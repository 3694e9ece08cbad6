// A child process for tests: argv run in its own process group, its stdin fed from the test,
// its stdout and stderr (or one pty) collected by a reader thread so that it never blocks.
// Not for the daemons: it runs threads and is built for clarity, not for many processes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"

namespace kite::testing {

// How a finished process ended, and everything it wrote.
struct ProcessResult {
  int exit_status = 0;      // raw wait(2) status: use WIFEXITED/WEXITSTATUS/WTERMSIG
  std::string stdout_data;  // with a pty: everything the terminal showed
  std::string stderr_data;  // with a pty: empty
  bool output_complete = true;  // false: a leftover process still held stdout/stderr open

  bool Succeeded() const;   // exited with status 0
  // "exited with status 3" or "killed by signal 9 (Killed)", then stderr's last lines: for
  // failure messages.
  std::string Describe() const;
};

class Subprocess {
 public:
  struct Options {
    std::vector<std::string> env;  // "NAME=value", added to (or replacing) the test's environment
    bool pty = false;              // stdin, stdout and stderr on a new pty; its own session
    unsigned short pty_rows = 24, pty_cols = 80;
  };
  static constexpr std::chrono::milliseconds kOutputGrace{5000};

  // Starts argv[0] (looked up in PATH) with stdin on a pipe (or the pty). NotFound /
  // PermissionDenied: it could not be executed; the error names it.
  static StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                     const Options& options);
  // A process still running is killed (SIGKILL to its group) and reaped.
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `sig` to the process group (the process and what it started, unless they moved to
  // another group). FailedPrecondition once it has been reaped.
  Status Kill(int sig);
  // Writes all of `data` to stdin, waiting up to `timeout` for room. Unavailable: stdin is closed
  // (by CloseStdin or because the process closed it).
  Status WriteStdin(std::string_view data,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // End of input: closes the pipe; with a pty, types the EOF character (^D) instead.
  void CloseStdin();
  // Output so far (thread-safe, also while running).
  std::string Stdout() const;
  std::string Stderr() const;
  // Waits until stdout contains `needle`; false on timeout or when stdout ended without it.
  bool WaitForStdout(std::string_view needle, std::chrono::milliseconds timeout) const;
  // Waits for the exit and the end of its output (at most kOutputGrace past the exit). Called
  // again, returns the same result. DeadlineExceeded: still running after `timeout` (left so).
  StatusOr<ProcessResult> Wait(std::chrono::milliseconds timeout = std::chrono::minutes(10));

 private:
  Subprocess() = default;
  void ReadLoop();  // the reader thread: drains out_fd_/err_fd_ into the buffers until EOF

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdin_fd_ = -1;      // the pipe's write end, or the pty master (dup)
  int out_fd_ = -1;        // stdout pipe or pty master; owned by the reader thread
  int err_fd_ = -1;        // stderr pipe, -1 with a pty; owned by the reader thread
  int wake_fd_[2] = {-1, -1};  // written to stop the reader thread early
  bool pty_ = false;
  bool reaped_ = false;
  int wait_status_ = 0;
  std::thread reader_;

  mutable std::mutex mu_;
  mutable std::condition_variable output_cv_;  // signalled on new output and at end of output
  std::string stdout_;   // GUARDED_BY(mu_)
  std::string stderr_;   // GUARDED_BY(mu_)
  bool output_done_ = false;  // GUARDED_BY(mu_): both streams at EOF (or the reader stopped)
  bool output_complete_ = true;  // GUARDED_BY(mu_)
};

}  // namespace kite::testing
