// The checkpoint of one single-threaded process from inside, on request (see
// checkpoint_protocol.h for the controller's side and docs/image-format.md for the image).
//
// The handler for kCheckpointSignal runs on the interrupted code's own stack, with every
// signal blocked (sa_mask is full). Its signal frame therefore lies in memory that the image
// holds (the stack is dumped) and that nothing changes while the dump runs: the handler's own
// frames sit below it and are dead once the restored process rt_sigreturns on the frame. An
// alternate signal stack of our own is deliberately not used: it would replace the program's
// sigaltstack, and rt_sigreturn restores the sigaltstack recorded in the frame.
// The handler writes memory only in its own arena and stack, makes raw system calls only
// (errno, part of the image, stays as the program left it) and never allocates.
//
// Limits: a program that blocks, ignores or handles kCheckpointSignal itself cannot be
// checkpointed; a handler running on a nearly full stack may overflow it.
#pragma once

#include <signal.h>

#include <cstddef>

#include "syscall-shim/checkpoint/dump_arena.h"
#include "syscall-shim/checkpoint/dump_text.h"
#include "syscall-shim/checkpoint/process_dumper.h"

namespace kite::shim {

class Checkpointer {
 public:
  static constexpr size_t kMaxDirLen = 200;

  constexpr Checkpointer() = default;
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Installs the handler. `dir` is where images go: an absolute path of at most kMaxDirLen
  // characters (copied). Also finds where glibc caches the thread id (it moves with the
  // thread pointer, so it is found once). False, and nothing installed, when `dir` is not
  // acceptable or sigaction fails. Call once, from the shim's constructor.
  bool Install(const char* dir);

  // Named fault points for tests (CRIU_FAULT-style), from $KITE_CKPT_FAULT at Install:
  // "enospc": the image write fails with ENOSPC after 64 KiB.
  static constexpr char kFaultVar[] = "KITE_CKPT_FAULT";

  // The handler's body: dumps, then continues or kills the process, per the request.
  void Handle(const siginfo_t* info, void* ucontext);

  bool installed() const { return installed_; }
  long tid_offset() const { return tls_.tid_offset; }

 private:
  // Writes the image to `tmp_path` (to be renamed `img_path`), and the contents of every
  // deleted open file beside `img_path`; pending signals are moved into `pending`.
  bool DumpImage(const char* tmp_path, const char* img_path, bool durable, const void* ucontext,
                 DumpArena* arena, PendingSignals* pending, DumpError* err);
  // "<img_path>.fd<N>" for every KITE_FD_DELETED descriptor N: its contents now, from the
  // start (the image keeps the offset). On failure the copies made are removed.
  static bool CopyDeletedFiles(const FixedVector<kite_img_fd>& fds, const char* img_path, bool durable,
                               DumpError* err);
  static void RemoveDeletedCopies(const FixedVector<kite_img_fd>& fds, const char* img_path);
  static long FindTidOffset();

  char dir_[kMaxDirLen + 1] = {};
  ProcessDumper::TlsLayout tls_;
  bool fault_enospc_ = false;
  bool installed_ = false;
};

// The process's instance.
Checkpointer& TheCheckpointer();

}  // namespace kite::shim
