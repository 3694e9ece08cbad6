// `kite make` and kite-shell: GNU make whose recipes run as kite jobs on idle hosts (pmake).
//
// `kite make [--quiet] [MAKE ARGS...]` runs make with `SHELL=<bin>/kite-shell.d/sh` added to
// its command line (so sub-makes inherit it through MAKEFLAGS) and, unless the arguments or
// MAKEFLAGS set it, -j<free slots of the idle hosts>. kite-shell gets each recipe as make's
// shell would (`-c 'recipe'`) and runs `$KITE_MAKE_SHELL` (default /bin/sh) with the same
// arguments as a kite job, through the deputy (cli/deputy.h), with line-buffered output; a
// recursive make (its recipe has the jobserver fds, or runs make) stays at home. Design and
// limits: docs/design-notes.md, "kite make".
#pragma once

#include <string>
#include <vector>

namespace kite {

struct MakeOptions {
  std::string socket_path;          // homed's local socket
  bool quiet = false;               // no summary at the end
  std::vector<std::string> args;    // make's arguments, untouched
};

// Runs make to completion; returns its exit status (dies of its signal, as a shell expects),
// or 255 with a "kite make:" message when kite itself cannot start the build. Prints the
// per-host summary on stderr unless quiet.
int RunMake(const MakeOptions& options);

// True when argv[0] names kite-shell: ".../kite-shell" or ".../kite-shell.d/sh".
bool IsKiteShellName(const std::string& argv0);

// kite-shell: runs the recipe and never returns (exits as the recipe did).
[[noreturn]] void RunKiteShell(int argc, char** argv);

// Environment variables between `kite make` and kite-shell.
inline constexpr const char* kMakeLogEnv = "KITE_MAKE_LOG";        // the summary log file
inline constexpr const char* kMakeSocketEnv = "KITE_MAKE_SOCKET";  // homed's socket
inline constexpr const char* kMakeProgramEnv = "KITE_MAKE";        // the make to run (default "make")
inline constexpr const char* kMakeShellEnv = "KITE_MAKE_SHELL";    // the real shell (default /bin/sh)

}  // namespace kite
