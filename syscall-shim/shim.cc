// Start-up of the shim's per-process state (see shim.h).
#include "syscall-shim/shim.h"

#include <signal.h>
#include <sys/stat.h>

#include "syscall-shim/checkpoint/proc_files.h"
#include "syscall-shim/checkpoint/raw_syscall.h"
#include "syscall-shim/checkpoint/restore_fixup.h"
#include "syscall-shim/pids/pid_map_file.h"
#include "syscall-shim/sys_calls.h"

namespace kite::shim {

bool Shim::Init(const char* job, const char* home, const char* sock) {
  if (active_ || !env_.Parse(job, home, sock)) return active_;
  // The root is known to the job by its vpid, and its parent is the deputy's parent at home.
  if (!pids_.Add(env_.real_root_pid(), env_.vpid(), env_.home_ppid())) return false;
  identity_.SetNodename(env_.home());
  members_.set_real_root(env_.real_root_pid());
  forwarder_.Configure(env_.sock(), env_.home());
  active_ = true;
  // KITE_JOB names the root's pid when the job started; a program started after the job was
  // restored elsewhere inherited that stale value. Every process of a job is in the root's
  // session, so a session id other than that pid means a restored job (or a process that made
  // its own session): the job's pid map, if there is one, says who is who now.
  pid_t sid = sys::getsid(0);
  if (sid > 0 && sid != env_.real_root_pid()) LoadPidMap(sid);
  return true;
}

bool Shim::LoadPidMap(pid_t sid) {
  char path[JobEnv::kMaxSockLen + 32];
  if (!PidMapFile::PathFor(env_.sock(), sid, path, sizeof path)) return false;
  struct stat st;
  if (StatPath(path, &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_uid != static_cast<uid_t>(raw::Syscall(SYS_getuid))) {
    return false;
  }
  char text[PidMapFile::kMaxBytes + 1];
  long n = ReadWholeFile(path, text, sizeof text);
  PidPair pairs[PidMapFile::kMaxEntries];
  int count = 0;
  if (n <= 0 || !PidMapFile::Parse(text, static_cast<size_t>(n), pairs, &count)) return false;
  PidTable table;
  pid_t root_real = 0;
  for (int i = 0; i < count; ++i) {
    const bool root = pairs[i].vpid == env_.vpid();
    if (!table.Add(pairs[i].real, pairs[i].vpid, root ? env_.home_ppid() : PidTable::kRealParent)) return false;
    if (root) root_real = pairs[i].real;
  }
  if (root_real == 0) return false;
  pids_ = table;
  members_.set_real_root(root_real);
  return true;
}

void Shim::SyncRestore() {
  uint32_t count = RestoreFixup::count();
  if (count == restores_seen_) return;
  if (!active_) {
    restores_seen_ = count;
    return;
  }
  // A signal handler calling getpid() must not see the table half rebuilt.
  uint64_t all = ~uint64_t{0}, old = 0;
  raw::Syscall(SYS_rt_sigprocmask, SIG_SETMASK, raw::Arg(&all), raw::Arg(&old), 8);
  if (RestoreFixup::count() != restores_seen_) {
    restores_seen_ = RestoreFixup::count();
    if (!LoadPidMap(sys::getsid(0))) {
      pid_t real = RestoreFixup::real_pid();
      if (real > 0 && pids_.Rebind(env_.vpid(), real)) members_.set_real_root(real);
    }
  }
  raw::Syscall(SYS_rt_sigprocmask, SIG_SETMASK, raw::Arg(&old), 0, 8);
}

}  // namespace kite::shim
