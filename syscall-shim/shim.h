// The shim's per-process state: the parsed job environment and one object per subsystem
// (pids, identity, signals). shim_exports.cc holds the single instance and the extern "C"
// wrappers that call into it.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "syscall-shim/identity/host_identity.h"
#include "syscall-shim/job_env.h"
#include "syscall-shim/pids/job_membership.h"
#include "syscall-shim/pids/pid_table.h"
#include "syscall-shim/signals/kill_forwarder.h"
#include "syscall-shim/signals/kill_router.h"

namespace kite::shim {

// Thread safety: Init() runs once, from the library constructor, before other threads exist;
// everything else is read-only afterwards and async-signal-safe. Constant-initialised and
// trivially destructible, so it is usable before and after any other constructor/destructor.
class Shim {
 public:
  constexpr Shim() = default;
  Shim(const Shim&) = delete;
  Shim& operator=(const Shim&) = delete;

  // Takes the values of KITE_JOB, KITE_HOME and KITE_SOCK (nullptr: unset). Becomes active only
  // when they parse (JobEnv::Parse); otherwise stays inert: every wrapper then makes the plain
  // system call. Returns active().
  bool Init(const char* job, const char* home, const char* sock);

  bool active() const { return active_; }

  // Called by the wrappers before they translate pids. After kite-restore brought this
  // process back (the restore count in kite_restore_fixup moved on), every process of the job
  // has another real pid: the table is rebuilt from the job's pid map (pid_map_file.h), or,
  // without one, the root is rebound to its vpid. One load and compare when nothing changed;
  // async-signal-safe; idempotent.
  void SyncRestore();
  // How many restores SyncRestore has applied: a wrapper that translated a pid before a
  // restore and got ECHILD/ESRCH after it translates again.
  uint32_t restores_seen() const { return restores_seen_; }
  const JobEnv& env() const { return env_; }
  const PidTable& pids() const { return pids_; }
  const HostIdentity& identity() const { return identity_; }
  const KillRouter& kill_router() const { return router_; }

 private:
  // Rebuilds the table from <run dir>/pids/<sid> when that file exists, is ours and names our
  // root. False (table unchanged) otherwise.
  bool LoadPidMap(pid_t sid);

  bool active_ = false;
  uint32_t restores_seen_ = 0;  // kite_restore_fixup.restore_count last applied
  JobEnv env_;
  PidTable pids_;
  HostIdentity identity_;
  JobMembership members_;
  KillForwarder forwarder_;
  KillRouter router_{&pids_, &members_, &forwarder_};
};

}  // namespace kite::shim
