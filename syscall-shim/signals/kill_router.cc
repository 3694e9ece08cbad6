// Local-or-home routing of kill(2) (see kill_router.h).
#include "syscall-shim/signals/kill_router.h"

#include <cerrno>
#include <climits>

#include "syscall-shim/pids/job_membership.h"
#include "syscall-shim/pids/pid_table.h"
#include "syscall-shim/signals/kill_forwarder.h"
#include "syscall-shim/sys_calls.h"

namespace kite::shim {
namespace {
constexpr int kMaxSignal = 64;  // _NSIG - 1 on Linux
}  // namespace

KillRouter::Route KillRouter::Decide(pid_t pid) const {
  if (pid == 0 || pid == -1 || pid == INT_MIN) return {Action::kLocal, pid};
  pid_t target = pid > 0 ? pid : -pid;
  if (pids_->HasVirtual(target)) {
    pid_t real = pids_->ToReal(target);
    return {Action::kLocal, pid > 0 ? real : -real};
  }
  if (members_->Contains(target)) return {Action::kLocal, pid};
  return {Action::kForward, pid};
}

int KillRouter::Kill(pid_t pid, int signo) const {
  if (signo < 0 || signo > kMaxSignal) return EINVAL;
  Route r = Decide(pid);
  if (r.action == Action::kForward) return forwarder_->Forward(r.pid, signo);
  return sys::kill(r.pid, signo) == 0 ? 0 : errno;
}

}  // namespace kite::shim
