// How a controller (kite-remoted, tests) asks a shimmed process to checkpoint itself, and
// what it finds afterwards. The public surface of syscall-shim/checkpoint/ (C and C++).
//
//   sigqueue(pid, kCheckpointSignal, {.sival_int = mode})   mode: kCheckpointContinue,
//                                                          kCheckpointExit or kCheckpointStop;
//                                                          kill() = Continue
//   success: $KITE_CKPT_DIR/<pid>.img appears (written as .img.tmp, fsync'd in Exit mode,
//            then renamed; in Stop mode the original survives a failed move, so the image
//            is only closed, which makes it visible on every host of a cluster FS). Continue: the process runs on unchanged. Exit: it then
//            kills itself with SIGKILL, so the original never runs on after a migration image.
//            Stop: it then stops itself with SIGSTOP (a controller waits for the image *and*
//            the stop) and waits: the controller kills it once the image runs elsewhere, or
//            sends SIGCONT when the move failed, and it runs on unchanged (its pending
//            signals given back).
//   failure: $KITE_CKPT_DIR/<pid>.err holds one line with the reason; no .img; the process
//            runs on unchanged whatever the mode (a failed checkpoint never loses it).
// <pid> is the process's pid as the /proc it sees reports it first in NSpid, i.e. the pid a
// controller in the host's PID namespace knows. A stale .img/.err of the same pid is replaced.
#ifndef KITE_SYSCALL_SHIM_CHECKPOINT_CHECKPOINT_PROTOCOL_H_
#define KITE_SYSCALL_SHIM_CHECKPOINT_CHECKPOINT_PROTOCOL_H_

// SIGRTMAX - 2. glibc's SIGRTMAX is a function call; the kernel's is the constant 64.
#define KITE_CKPT_SIGNAL 62
#define KITE_CKPT_CONTINUE 1
#define KITE_CKPT_EXIT 2
#define KITE_CKPT_STOP 3
#define KITE_CKPT_DIR_VAR "KITE_CKPT_DIR"
// Where images go for a kite job whose environment has no KITE_CKPT_DIR.
#define KITE_CKPT_DEFAULT_DIR "/run/kite/ckpt"

#ifdef __cplusplus
namespace kite::shim {
inline constexpr int kCheckpointSignal = KITE_CKPT_SIGNAL;
inline constexpr int kCheckpointContinue = KITE_CKPT_CONTINUE;
inline constexpr int kCheckpointExit = KITE_CKPT_EXIT;
inline constexpr int kCheckpointStop = KITE_CKPT_STOP;
inline constexpr char kCkptDirVar[] = KITE_CKPT_DIR_VAR;
inline constexpr char kDefaultCkptDir[] = KITE_CKPT_DEFAULT_DIR;
}  // namespace kite::shim
#endif

#endif  // KITE_SYSCALL_SHIM_CHECKPOINT_CHECKPOINT_PROTOCOL_H_
