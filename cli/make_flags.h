// What `kite make` and kite-shell read from GNU make's command line and MAKEFLAGS: whether -j
// was given, where the jobserver is, and MAKEFLAGS as a remote job must see it. Pure functions
// on strings, no I/O; GNU make 4.x syntax (make 4.3's `--jobserver-auth=R,W`, 4.4's
// `--jobserver-auth=fifo:PATH`, 3.8x's `--jobserver-fds=R,W`).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kite {

// True when make's arguments set the number of jobs: -j, -jN, -j N, a cluster such as -kj8,
// --jobs, --jobs=N. Stops at "--"; skips the values of options that take one (-C dir, -f file...).
bool MakeArgsSetJobs(const std::vector<std::string>& args);

// True when MAKEFLAGS (as make exports it) already says how parallel to be: a -j word or a
// jobserver (kite make run from inside another make joins that make's jobserver).
bool MakeFlagsSetJobs(std::string_view makeflags);

struct Jobserver {
  enum class Kind { kNone, kPipe, kFifo };
  Kind kind = Kind::kNone;
  int read_fd = -1, write_fd = -1;  // kPipe
  std::string fifo;                 // kFifo
};
// The jobserver named in MAKEFLAGS; kNone when there is none or it is malformed.
Jobserver ParseJobserver(std::string_view makeflags);

// MAKEFLAGS with the jobserver and -j words removed (the part before " -- " only; variable
// definitions after it are kept byte for byte): what a serial make would export. A remote job
// gets this, so no tool in it takes an fd that happens to be open there for a jobserver.
std::string StripJobserver(std::string_view makeflags);

// Whether a recipe's command text runs a make: a word (split at blanks and shell operators)
// whose last path component is `make_name`'s. The fallback for a serial make, which has no
// jobserver to tell recursive recipes apart by.
bool CommandRunsMake(std::string_view command, std::string_view make_name);

}  // namespace kite
