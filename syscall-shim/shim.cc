// Start-up of the shim's per-process state (see shim.h).
#include "syscall-shim/shim.h"

namespace kite::shim {

bool Shim::Init(const char* job, const char* home, const char* sock) {
  if (active_ || !env_.Parse(job, home, sock)) return active_;
  // The root is known to the job by its vpid, and its parent is the deputy's parent at home.
  if (!pids_.Add(env_.real_root_pid(), env_.vpid(), env_.home_ppid())) return false;
  identity_.SetNodename(env_.home());
  members_.set_real_root(env_.real_root_pid());
  forwarder_.Configure(env_.sock(), env_.home());
  active_ = true;
  return true;
}

}  // namespace kite::shim
