// The processes of a guest job on this host as checkpoint_job sees them, read from /proc: the
// root and its descendants, with what a whole-job checkpoint needs to know about each (see
// docs/design-notes.md, "Migration: job trees").
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kite {

struct TreeProcess {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgid = 0;
  pid_t sid = 0;
  char state = '?';  // /proc/<pid>/stat's: 'Z' zombie, 'T' stopped, ...
  int exit_code = 0;  // a zombie's wait status
  std::string comm;

  bool zombie() const { return state == 'Z' || state == 'X'; }
  bool stopped() const { return state == 'T'; }
  std::string Describe() const;  // "pid 123 (sort)"
};

class JobTree {
 public:
  // The root and its descendants, parents before children. NOT_FOUND when the root is gone.
  static StatusOr<std::vector<TreeProcess>> List(pid_t root);
  static StatusOr<TreeProcess> Read(pid_t pid);

  // Whether `pid` has a handler for `signo` installed (SigCgt).
  static bool Catches(pid_t pid, int signo);

  // Whether `pid`'s environment preloads `lib` (that path, as the launcher puts it): a process
  // that does but has no handler yet is between its exec and the shim's constructor.
  static bool Preloads(pid_t pid, const std::string& lib);
  // Whether an LD_PRELOAD value (entries separated by colons or spaces) lists `lib`.
  static bool PreloadListHas(std::string_view list, std::string_view lib);

  // The pipes `pid` holds: descriptor -> the pipe's inode.
  static std::map<int, uint64_t> PipeFds(pid_t pid);

  // An open description of a regular file (one with a name) that more than one descriptor of
  // the processes holds: dup'd in one process (`2>&1`), or inherited by a child.
  struct SharedFile {
    int64_t pos = 0;                              // its file offset, from fdinfo
    std::vector<std::pair<pid_t, int>> holders;   // (pid, descriptor), two or more
  };
  // Every such description among `pids`' descriptors, found with kcmp(KCMP_FILE) among the
  // descriptors of the same file. Only while the processes are stopped (else the offsets move).
  static std::vector<SharedFile> SharedFiles(const std::vector<pid_t>& pids);

  // Reads every byte buffered in the pipe that `pid` holds as descriptor `fd` (opening it
  // anew through /proc, non-blocking). Only while every process that might read or write it
  // is stopped.
  static StatusOr<std::string> DrainPipe(pid_t pid, int fd);
  // Puts `bytes` back into that pipe (after a checkpoint that leaves the job running).
  static Status RefillPipe(pid_t pid, int fd, const std::string& bytes);
};

}  // namespace kite
