// The job's vpid table: which processes on this host the job knows under another pid, and
// their parents as the job sees them. Translates real <-> virtual for every pid-taking or
// pid-returning call the shim wraps.
//
// A job that never moved has one entry, its root (real_root_pid -> vpid, parent home_ppid);
// every other process is known by its real pid. A restored job has one entry per process that
// was restored (its pid before the move stays its vpid: PidMapFile), and processes forked
// since are again known by their real pids. A job member whose real pid equalled a vpid in the
// table would be shadowed by that entry in kill/getpgid/... arguments: kite-remoted moves the
// host's pid counter past the job's vpids when it starts or restores the job (SkipPidsThrough
// in remoted/job_manager.cc), so that happens only after the counter wraps around pid_max.
//
// Thread safety: written only by the process's one thread (the constructor, or the first
// wrapper call after a restore, with signals blocked), so lookups take no lock and are
// async-signal-safe (signal handlers call getpid and kill). Jobs are single-threaded while
// migration supports only those; threads will need a seqlock here.
#pragma once

#include <sys/types.h>

namespace kite::shim {

class PidTable {
 public:
  // Enough for a restored job's process tree; lookups are a linear scan, cheap at this size.
  static constexpr int kCapacity = 64;

  // Add()'s vparent for a process whose parent is in the job: getppid() translates the real
  // parent's pid (ToVirtual) rather than returning a recorded value.
  static constexpr pid_t kRealParent = -1;

  constexpr PidTable() = default;

  // Records that the process with real pid `real` (> 0) is `vpid` (> 0) to the job and that its
  // parent, as the job sees it, is `vparent` (>= 0; may be a process at home; or kRealParent).
  // False when the
  // table is full, a pid is out of range, or `real` or `vpid` is already in the table.
  bool Add(pid_t real, pid_t vpid, pid_t vparent);

  // The pid the job sees for real pid `real`; a pid not in the table is its own vpid. Process
  // group and session ids translate the same way (their leader's pid). 0 and negative values
  // are returned unchanged.
  pid_t ToVirtual(pid_t real) const;
  // The real pid of vpid `vpid`; a pid not in the table is its own real pid.
  pid_t ToReal(pid_t vpid) const;
  // True when `vpid` is a vpid in the table.
  bool HasVirtual(pid_t vpid) const;
  // What getppid() returns in the process `real` whose real parent is `real_parent`: its
  // recorded virtual parent if it is in the table, else ToVirtual(real_parent).
  pid_t ParentOf(pid_t real, pid_t real_parent) const;

  int size() const { return size_; }
  // Empties the table (before it is rebuilt from a restored job's pid map).
  void Clear() { size_ = 0; }

  // After a restore the process known as `vpid` has another real pid: makes `new_real` (> 0)
  // its real pid. False when `vpid` is not in the table or `new_real` belongs to another entry.
  // Single writer (the process's own thread), like Add.
  bool Rebind(pid_t vpid, pid_t new_real);

 private:
  struct Entry {
    pid_t real = 0;
    pid_t vpid = 0;
    pid_t vparent = 0;
  };
  const Entry* FindReal(pid_t real) const;
  const Entry* FindVirtual(pid_t vpid) const;

  Entry entries_[kCapacity] = {};
  int size_ = 0;
};

}  // namespace kite::shim
