// Deputy: what `kite run` becomes (DESIGN §2). It is the real child of its caller and stands in
// for the job: it sends the job's whole execution context to homed, relays stdin, stdout,
// stderr, signals and window size, and exits exactly as the job did (same code, or killed by
// the same signal). When no host takes the job it execs the command itself, at home.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace kite {

struct DeputyOptions {
  std::string socket_path;          // homed's local socket
  std::string host;                 // requested host; empty: placement decides
  bool allow_local = true;          // run at home when no host has a free slot
  bool requeue_ok = false;          // an eviction may rerun it from the start (build recipes)
  bool verbose = false;             // say where the job runs, and why at home
  std::vector<std::string> argv;    // the command (kite restart: a name for kite ps)
  // kite restart: the absolute path of a checkpoint to restore as this deputy's job.
  std::string restart;
  // kite-shell (a make recipe): the job's stdout and stderr are written in whole lines (a
  // partial last line at the end), so recipes running side by side do not cut into each
  // other's lines.
  bool line_buffered = false;
  // false (kite-shell): when stdin is a terminal the job gets an empty stdin and the terminal
  // is left alone; several recipes at once must not fight over the keyboard and its modes.
  bool terminal_stdin = true;
  // Called once, when it is known where the job runs: the host's name, or "" at home.
  std::function<void(const std::string& where)> on_start;
  // Called each time the job moves (kite migrate, an eviction): to where, and whether it was
  // requeued (killed and started again) rather than migrated.
  std::function<void(const std::string& to, bool requeued)> on_move;
};

// Runs the job and never returns: exits with the job's status, or 255 with a message on
// stderr when kite itself failed (homed unreachable, the job's host lost).
[[noreturn]] void RunDeputy(const DeputyOptions& options);

}  // namespace kite
