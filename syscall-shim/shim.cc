// Start-up of the shim's per-process state (see shim.h).
#include "syscall-shim/shim.h"

#include "syscall-shim/checkpoint/restore_fixup.h"

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

// Limit (job trees come later): KITE_JOB in the environment still names the old real pid, so
// a child forked after a restore does not know its parent's new real pid.
void Shim::SyncRestore() {
  uint32_t count = RestoreFixup::count();
  if (count == restores_seen_) return;
  restores_seen_ = count;
  if (!active_) return;
  pid_t real = RestoreFixup::real_pid();
  if (real > 0 && pids_.Rebind(env_.vpid(), real)) members_.set_real_root(real);
}

}  // namespace kite::shim
