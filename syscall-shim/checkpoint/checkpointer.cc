// Checkpoint on request from inside the process (see checkpointer.h).
#include "syscall-shim/checkpoint/checkpointer.h"

#include <asm/prctl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/prctl.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "syscall-shim/checkpoint/checkpoint_protocol.h"
#include "syscall-shim/checkpoint/image_writer.h"
#include "syscall-shim/checkpoint/memory_dumper.h"
#include "syscall-shim/checkpoint/proc_files.h"
#include "syscall-shim/checkpoint/raw_syscall.h"
#include "syscall-shim/checkpoint/restore_fixup.h"
#include "syscall-shim/checkpoint/string_table.h"

namespace kite::shim {
namespace {

constinit Checkpointer g_checkpointer;

void CheckpointHandler(int, siginfo_t* info, void* ucontext) {
  g_checkpointer.Handle(info, ucontext);
}

// "<dir>/<pid><suffix>"
void ImagePath(const char* dir, int pid, const char* suffix, char* out, size_t cap) {
  TextBuf(out, cap).Str(dir).Str("/").Num(pid).Str(suffix);
}

void WriteErrorFile(const char* dir, int pid, const char* reason) {
  char tmp[Checkpointer::kMaxDirLen + 40], path[Checkpointer::kMaxDirLen + 40];
  ImagePath(dir, pid, ".err.tmp", tmp, sizeof tmp);
  ImagePath(dir, pid, ".err", path, sizeof path);
  long fd = OpenFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
  if (raw::Failed(fd)) return;
  char line[600];
  TextBuf b(line, sizeof line);
  b.Str(reason).Str("\n");
  raw::Syscall(SYS_write, fd, raw::Arg(line), static_cast<long>(b.size()));
  CloseFd(static_cast<int>(fd));
  raw::Syscall(SYS_rename, raw::Arg(tmp), raw::Arg(path));
}

}  // namespace

Checkpointer& TheCheckpointer() { return g_checkpointer; }

long Checkpointer::FindTidOffset() {
  uint64_t tp = 0;
  raw::Syscall(SYS_arch_prctl, ARCH_GET_FS, raw::Arg(&tp));
  int32_t tid = static_cast<int32_t>(raw::Syscall(SYS_gettid));
  if (tp == 0) return -1;
  // The address glibc registered with set_tid_address is its cached tid.
  int32_t* reg = nullptr;
  if (raw::Syscall(SYS_prctl, PR_GET_TID_ADDRESS, raw::Arg(&reg)) == 0 && reg != nullptr) {
    uint64_t a = reinterpret_cast<uint64_t>(reg);
    if (a >= tp && a < tp + 4096 && *reg == tid) return static_cast<long>(a - tp);
  }
  // Else scan the TCB for the one word holding our tid.
  long found = -1;
  for (long off = 0; off < 4096; off += 4) {
    if (*reinterpret_cast<const int32_t*>(tp + static_cast<uint64_t>(off)) == tid) {
      if (found >= 0) return -1;  // ambiguous
      found = off;
    }
  }
  return found;
}

bool Checkpointer::Install(const char* dir) {
  if (installed_ || dir == nullptr || dir[0] != '/') return false;
  size_t n = strnlen(dir, kMaxDirLen + 1);
  if (n > kMaxDirLen) return false;
  memcpy(dir_, dir, n);
  dir_[n] = '\0';
  while (n > 1 && dir_[n - 1] == '/') dir_[--n] = '\0';
  tls_.tid_offset = FindTidOffset();
  const char* fault = getenv(kFaultVar);
  fault_enospc_ = fault != nullptr && strcmp(fault, "enospc") == 0;
  // glibc >= 2.35 publishes its rseq area; looked up rather than linked, because these
  // symbols live in ld.so and the shim must need nothing but libc.so.6.
  const void* rseq_offset = dlsym(RTLD_DEFAULT, "__rseq_offset");
  const void* rseq_size = dlsym(RTLD_DEFAULT, "__rseq_size");
  if (rseq_offset != nullptr && rseq_size != nullptr) {
    tls_.rseq_offset = *static_cast<const ptrdiff_t*>(rseq_offset);
    tls_.rseq_size = *static_cast<const unsigned*>(rseq_size);
  }

  struct sigaction sa = {};
  sa.sa_sigaction = CheckpointHandler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  if (sigaction(kCheckpointSignal, &sa, nullptr) != 0) return false;
  installed_ = true;
  return true;
}

bool Checkpointer::DumpImage(const char* tmp_path, const char* img_path, bool durable, const void* ucontext,
                             DumpArena* arena, PendingSignals* pending, DumpError* err) {
  StringTable strings;
  if (!strings.Init(arena)) return err->Set("checkpoint arena exhausted");
  ProcessDumper proc(arena, &strings, err);
  kite_img_process* p = static_cast<kite_img_process*>(arena->Alloc(sizeof(kite_img_process)));
  if (p == nullptr) return err->Set("checkpoint arena exhausted");
  memset(p, 0, sizeof *p);
  FixedVector<kite_img_fd> fds;
  if (!proc.CheckSupported() || !proc.DumpFds(&fds) || !proc.DumpTask(ucontext, tls_, p)) {
    return false;
  }
  p->fixup_addr = RestoreFixup::area_address();
  p->restore_tail = RestoreFixup::tail_address();
  if (!pending->Collect(arena, err)) return false;
  MemoryDumper memory(arena, &strings, err);
  if (!memory.ReadRegions(arena->start(), arena->end())) return false;

  long fd = OpenFile(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
  if (raw::Failed(fd)) return err->SetErrno(tmp_path, fd);
  ImageWriter w(static_cast<int>(fd));
  if (fault_enospc_) w.TEST_FailAfter(64 << 10);
  bool ok = w.BeginPageData(err) && memory.WritePages(&w) && w.EndPageData(err) &&
            w.WriteSection(KITE_SEC_PROCESS, sizeof *p, p, 1, err) &&
            w.WriteSection(KITE_SEC_REGIONS, sizeof(kite_img_region), memory.regions().data(),
                           memory.regions().size(), err) &&
            w.WriteSection(KITE_SEC_PAGE_RUNS, sizeof(kite_img_page_run), memory.runs().data(),
                           memory.runs().size(), err) &&
            w.WriteSection(KITE_SEC_FDS, sizeof(kite_img_fd), fds.data(), fds.size(), err) &&
            w.WriteSection(KITE_SEC_PENDING, sizeof(kite_img_siginfo), pending->list().data(),
                           pending->list().size(), err) &&
            w.WriteSection(KITE_SEC_STRINGS, 1, strings.data(), strings.size(), err) &&
            w.Finish(err);
  if (ok && durable) {
    long r = raw::Syscall(SYS_fsync, fd);
    if (raw::Failed(r)) ok = err->SetErrno("fsync of the image", r);
  }
  long r = raw::Syscall(SYS_close, fd);
  if (ok && raw::Failed(r) && r != -EINTR) ok = err->SetErrno("closing the image", r);
  if (ok) ok = CopyDeletedFiles(fds, img_path, durable, err);
  return ok;
}

// "<img_path>.fd<fd>": where a deleted file's contents go (image_format.h, KITE_FD_DELETED).
static void DeletedCopyPath(const char* img_path, int fd, char* out, size_t cap) {
  TextBuf(out, cap).Str(img_path).Str(".fd").Num(fd);
}

bool Checkpointer::CopyDeletedFiles(const FixedVector<kite_img_fd>& fds, const char* img_path, bool durable,
                                    DumpError* err) {
  for (size_t i = 0; i < fds.size(); ++i) {
    const kite_img_fd& f = fds.data()[i];
    if (f.kind != KITE_FD_DELETED) continue;
    char src[32], dst[kMaxDirLen + 64];
    TextBuf(src, sizeof src).Str("/proc/self/fd/").Num(f.fd);  // readable whatever the fd's mode
    DeletedCopyPath(img_path, f.fd, dst, sizeof dst);
    long in = OpenFile(src, O_RDONLY);
    if (raw::Failed(in)) return err->SetErrno("reopening a deleted file to copy it", in);
    long out = OpenFile(dst, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (raw::Failed(out)) {
      CloseFd(static_cast<int>(in));
      return err->SetErrno(dst, out);
    }
    bool ok = true;
    for (;;) {
      long n = raw::Syscall(SYS_sendfile, out, in, 0, 1L << 20);
      if (n == -EINTR) continue;
      if (raw::Failed(n)) ok = err->SetErrno("copying a deleted file", n);
      if (n <= 0) break;
    }
    if (ok && durable) {
      long r = raw::Syscall(SYS_fsync, out);
      if (raw::Failed(r)) ok = err->SetErrno("fsync of a deleted file's copy", r);
    }
    CloseFd(static_cast<int>(in));
    CloseFd(static_cast<int>(out));
    if (!ok) {
      RemoveDeletedCopies(fds, img_path);
      return false;
    }
  }
  return true;
}

void Checkpointer::RemoveDeletedCopies(const FixedVector<kite_img_fd>& fds, const char* img_path) {
  for (size_t i = 0; i < fds.size(); ++i) {
    if (fds.data()[i].kind != KITE_FD_DELETED) continue;
    char dst[kMaxDirLen + 64];
    DeletedCopyPath(img_path, fds.data()[i].fd, dst, sizeof dst);
    raw::Syscall(SYS_unlink, raw::Arg(dst));
  }
}

void Checkpointer::Handle(const siginfo_t* info, void* ucontext) {
  int mode = info->si_code == SI_QUEUE ? info->si_value.sival_int : kCheckpointContinue;
  int pid = ProcessDumper::HostPid();
  char tmp[kMaxDirLen + 40], img[kMaxDirLen + 40], errp[kMaxDirLen + 40];
  ImagePath(dir_, pid, ".img.tmp", tmp, sizeof tmp);
  ImagePath(dir_, pid, ".img", img, sizeof img);
  ImagePath(dir_, pid, ".err", errp, sizeof errp);

  DumpError err;
  PendingSignals pending;
  bool ok = false;
  {
    DumpArena arena;
    long e = 0;
    if (mode != kCheckpointContinue && mode != kCheckpointExit && mode != kCheckpointStop) {
      err.Set("unknown checkpoint request (sigqueue value must be 1, 2 or 3)");
    } else if (!arena.Init(&e)) {
      err.SetErrno("mapping the checkpoint arena", e);
    } else {
      // Exit: the original is gone once the image is in place, so the image must survive a
      // crash. Stop: the original waits for the copy to run and is resumed if anything fails;
      // the image need only be visible to the target (close-to-open), not on disk: no fsync,
      // which cost most of a build job's checkpoint (eight 18 MiB trees: 390 ms each).
      ok = DumpImage(tmp, img, mode == kCheckpointExit, ucontext, &arena, &pending, &err);
      if (ok) {
        long r = raw::Syscall(SYS_rename, raw::Arg(tmp), raw::Arg(img));
        if (raw::Failed(r)) ok = err.SetErrno("renaming the image into place", r);
      }
    }
    if (ok) {
      raw::Syscall(SYS_unlink, raw::Arg(errp));
      if (mode != kCheckpointContinue) {
        // The original must never run on after a migration image (Exit), or only when the
        // controller says the move failed (Stop: SIGCONT).
        if (mode == kCheckpointExit) {
          long d = OpenFile(dir_, O_RDONLY | O_DIRECTORY);  // the rename is durable too
          if (!raw::Failed(d)) {
            raw::Syscall(SYS_fsync, d);
            CloseFd(static_cast<int>(d));
          }
          for (;;) raw::Syscall(SYS_kill, raw::Syscall(SYS_getpid), SIGKILL);
        }
        // SIGSTOP cannot be blocked: it stops us here, inside the handler, until SIGCONT.
        raw::Syscall(SYS_kill, raw::Syscall(SYS_getpid), SIGSTOP);
      }
    } else {
      raw::Syscall(SYS_unlink, raw::Arg(tmp));
      raw::Syscall(SYS_unlink, raw::Arg(img));
      WriteErrorFile(dir_, pid, err.msg());
    }
    pending.Requeue();  // reads the arena: before it is unmapped
  }
}

}  // namespace kite::shim
