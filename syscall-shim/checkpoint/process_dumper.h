// The non-memory state of a checkpoint: task state (ids, registers' frame, thread pointer,
// what the kernel keeps for libc, mm layout, signal dispositions, limits, timers, cwd...),
// open file descriptors, and pending signals.
//
// Refused, with the reason in the DumpError: more than one thread, a seccomp filter, POSIX
// timers, descriptors other than regular files, directories, /dev/null|zero|urandom, pipes
// (KITE_FD_PIPE, named by inode) and the standard streams' terminal (KITE_FD_STDIO: other
// ttys, sockets, eventfd, epoll, ...), deleted files and cwd, more than
// KITE_IMG_MAX_GROUPS supplementary groups.
//
// Runs inside the checkpoint signal handler with every signal blocked: raw system calls only.
#pragma once

#include <signal.h>

#include <cstdint>

#include "syscall-shim/checkpoint/dump_arena.h"
#include "syscall-shim/checkpoint/dump_text.h"
#include "syscall-shim/checkpoint/string_table.h"
#include "syscall-shim/image/image_format.h"

namespace kite::shim {

class ProcessDumper {
 public:
  // A deleted file that is still open travels as a copy beside the image, up to this size.
  static constexpr long kMaxDeletedFileBytes = 256L << 20;

  ProcessDumper(DumpArena* arena, StringTable* strings, DumpError* err)
      : arena_(arena), strings_(strings), err_(err) {}

  // What cannot be restored at all (threads, seccomp, POSIX timers) or not yet (children).
  bool CheckSupported();
  // Where glibc keeps per-thread state, from the thread pointer: its cached thread id
  // (tid_offset, -1: unknown) and its rseq area (__rseq_offset/__rseq_size; size 0: none).
  struct TlsLayout {
    long tid_offset = -1;
    long rseq_offset = 0;
    unsigned rseq_size = 0;
  };
  // Fills *p from the running task; `ucontext` is the checkpoint handler's third argument.
  bool DumpTask(const void* ucontext, const TlsLayout& tls, kite_img_process* p);
  // Lists the open descriptors (call before opening any of the dump's own files).
  bool DumpFds(FixedVector<kite_img_fd>* fds);

  // The pid a controller in the /proc's namespace knows (NSpid's first field), or getpid().
  static int HostPid();

 private:
  bool DumpMm(kite_img_process* p);
  bool DumpThreadState(const TlsLayout& tls, kite_img_process* p);
  bool DumpOneFd(int fd, FixedVector<kite_img_fd>* fds);
  // Appends the record of descriptor `fd` (its flags read now, no path); nullptr when full.
  static kite_img_fd* AddFd(FixedVector<kite_img_fd>* fds, int fd, uint32_t kind, int64_t offset);

  DumpArena* arena_;
  StringTable* strings_;
  DumpError* err_;
};

// Pending signals, taken off the queue for the image (with their siginfo, in order) and put
// back by Requeue when the process runs on. The checkpoint signal itself is left queued.
class PendingSignals {
 public:
  bool Collect(DumpArena* arena, DumpError* err);
  // Queues every collected signal again to this thread (rt_tgsigqueueinfo keeps siginfo).
  void Requeue();
  const FixedVector<kite_img_siginfo>& list() const { return list_; }

 private:
  FixedVector<kite_img_siginfo> list_;
};

}  // namespace kite::shim
