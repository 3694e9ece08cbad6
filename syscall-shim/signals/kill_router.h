// kill(2) for a job process: decides, for the pid the job passed, whether the signal is for a
// process of the job on this host (signalled here, after vpid -> real translation) or for a
// process at home (forwarded there), and carries it out.
#pragma once

#include <sys/types.h>

namespace kite::shim {

class JobMembership;
class KillForwarder;
class PidTable;

// Thread safety: holds only const references to state fixed at start-up; Kill() is
// async-signal-safe (see KillForwarder and JobMembership).
class KillRouter {
 public:
  enum class Action { kLocal, kForward };
  struct Route {
    Action action;
    pid_t pid;  // the pid to signal here (kLocal) or to name at home (kForward)
  };

  constexpr KillRouter(const PidTable* pids, const JobMembership* members,
                       const KillForwarder* forwarder)
      : pids_(pids), members_(members), forwarder_(forwarder) {}

  // Where kill(pid, ...) goes:
  //   0, -1, INT_MIN         local, unchanged (own group, everything we may signal, kernel's ESRCH);
  //   ±vpid in the table     local, ±its real pid (the vpid is what the job knows);
  //   ±p, p a job process    local, unchanged (real pids of the job's other processes); for a
  //                          group, p is its leader: a group whose leader has exited is
  //                          forwarded home, where it does not exist (ESRCH);
  //   anything else          forwarded home, unchanged.
  Route Decide(pid_t pid) const;

  // kill(pid, signo) by the rules above. Returns 0 or the errno: EINVAL for a signal outside
  // 0..64, what the local kill(2) said, or what KillForwarder::Forward() returned.
  int Kill(pid_t pid, int signo) const;

 private:
  const PidTable* pids_;
  const JobMembership* members_;
  const KillForwarder* forwarder_;
};

}  // namespace kite::shim
