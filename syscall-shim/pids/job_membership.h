// Whether a real pid on this host is a process of our job, for kill(): a job member is
// signalled here, anything else is a pid at home and the kill is forwarded there.
//
// A pid belongs to the job when it descends from the job's root (its parent chain in
// /proc/<pid>/stat reaches real_root_pid), or when it is in the job's own cgroup
// (/proc/<pid>/cgroup equals /proc/self/cgroup): remoted puts every job in a cgroup of its
// own, which also covers orphans reparented away from the root. If our cgroup is the same as
// that of the process that started the root (no cgroup of the job's own, e.g. the shim run by
// hand or in tests), only the ancestry test counts. If the root is gone, its launcher is
// unknown and the cgroup is trusted.
//
// Reads /proc only when asked (kill is not hot): open/read/close on stack buffers, no
// allocation, async-signal-safe. Needs /proc of this host's pid namespace mounted at /proc.
#pragma once

#include <sys/types.h>

namespace kite::shim {

class JobMembership {
 public:
  // Parent chains longer than this are not followed (each step is one /proc read).
  static constexpr int kMaxDepth = 64;

  constexpr JobMembership() = default;
  void set_real_root(pid_t real_root) { real_root_ = real_root; }

  // True when real pid `pid` (> 0) is a live process of the job on this host.
  bool Contains(pid_t pid) const;

  // The pieces of Contains(), public for tests.
  bool DescendsFromRoot(pid_t pid) const;
  bool SharesOurCgroup(pid_t pid) const;
  bool JobHasOwnCgroup() const;

  // The parent pid from /proc/<pid>/stat; -1 if the process does not exist or the file is
  // unreadable or malformed.
  static pid_t ReadParent(pid_t pid);

 private:
  pid_t real_root_ = 0;
};

}  // namespace kite::shim
