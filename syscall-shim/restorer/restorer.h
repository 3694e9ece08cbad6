/* kite-restore: everything the point-of-no-return phase needs, in one plain-C struct (as CRIU's
 * criu/pie/restorer.h). The prepare phase (main.c) validates the image, checks this host,
 * drops to the image's user and opens every file, filling struct kite_restorer_args in the
 * restorer's own window; the restore phase (restore.c) then runs on the window's stack,
 * replaces the whole address space and never returns: it ends in the restored shim's tail.
 *
 * Address window: the restorer is linked at KITE_RESTORER_BASE and uses only
 * [KITE_RESTORER_BASE, +KITE_RESTORER_WINDOW) besides the vDSO; an image with a region there
 * is refused. The tail unmaps the whole window. */
#ifndef KITE_SYSCALL_SHIM_RESTORER_RESTORER_H_
#define KITE_SYSCALL_SHIM_RESTORER_RESTORER_H_

#include <stdint.h>

#include "syscall-shim/image/image_format.h"
#include "syscall-shim/image/image_validate.h"

#define KITE_RESTORER_BASE 0x7e0000000000ull     /* = -Ttext-segment in CMakeLists.txt */
#define KITE_RESTORER_WINDOW (64ull << 30)
/* Inside the window: */
#define KITE_RESTORER_BINARY_MAX (16ull << 20)    /* text, data, bss of kite-restore */
#define KITE_RESTORER_STACK_OFF (16ull << 20)     /* the restore phase's stack */
#define KITE_RESTORER_STACK_SIZE (1ull << 20)
#define KITE_RESTORER_SCRATCH_OFF (32ull << 20)   /* args and arrays */
#define KITE_RESTORER_SCRATCH_SIZE (64ull << 20)
#define KITE_RESTORER_PARK_OFF (128ull << 20)     /* vDSO/vvar parked while moving */
#define KITE_RESTORER_IMAGE_OFF (1ull << 30)      /* the image file, mapped read-only */

/* Exit codes of kite-restore (the restored process's own exit code once it runs). */
#define KITE_RESTORE_EXIT_USAGE 64
#define KITE_RESTORE_EXIT_INVALID 65   /* the image is malformed, corrupted or hostile */
#define KITE_RESTORE_EXIT_HOST 66      /* cannot restore on this host (vDSO, CPU, files, range) */
#define KITE_RESTORE_EXIT_DENIED 67    /* identity policy: root image, uid mismatch */
#define KITE_RESTORE_EXIT_FAILED 68    /* failed after the point of no return */

/* A mapping of kite-restore's own process before the restore. */
struct kite_restorer_vma {
  uint64_t start;
  uint64_t end;
  uint32_t prot;
  uint32_t kind;  /* 0 other, else KITE_REGION_VDSO / _VVAR / _VVAR_VCLOCK */
  uint32_t file;  /* a mapping of kite-restore's own binary (not of the image) */
  uint32_t reserved;
};
#define KITE_RESTORER_MAX_VMAS 64u

struct kite_restorer_args {
  /* The image, validated; view pointers point into its read-only mapping in the window. */
  int image_fd;
  struct kite_img_view view;
  const char* image_path;

  /* Descriptors opened in the prepare phase as the image's user, all at numbers >= fd_base
   * so that none collides with a number the image restores. */
  int fd_base;
  int fd_limit;          /* one past the highest descriptor the restorer holds */
  int diag_fd;           /* a copy of kite-restore's stderr, for messages until the jump */
  int* region_fds;       /* [nregions]: FILE regions' files, -1 for others */
  int* image_fds;        /* [nfds]: opened like the image's descriptors, offsets set */
  int exe_fd;            /* for PR_SET_MM_MAP, -1 when it cannot be set (no capability) */
  int cwd_fd;            /* O_PATH of the working directory */

  /* Page data read as it arrives (--pages FIFO): the image file has a hole where PAGE_DATA
   * is, and its bytes come through this FIFO in file order, written by kite-remoted as it
   * fetches them from the source host. -1: pread from image_fd. */
  int pages_fd;

  /* The job tree's second barrier (--loaded-fd/--run-fd): no process of a tree runs until
   * every one has its memory (a page stream that breaks must not leave half a tree running).
   * A child writes one byte to loaded_fd and waits for one on run_fd; the root
   * (loaded_count > 0) reads loaded_count bytes from loaded_fd, then writes as many to
   * run_fd. -1: not in a tree. */
  int loaded_fd;
  int run_fd;
  int loaded_count;

  /* kite-restore's own process. */
  struct kite_restorer_vma own[KITE_RESTORER_MAX_VMAS];
  uint32_t nown;
  uint64_t window_start;
  uint64_t window_len;

  /* Identity. */
  int keep_cap;          /* 1: CAP_CHECKPOINT_RESTORE is held for exe_fd, drop it after */
  int host_pid;          /* our pid in the /proc namespace (NSpid), for the fixup */
};

/* The restore phase (restore.c): never returns. */
void kite_restore(struct kite_restorer_args* args) __attribute__((noreturn));

/* Shared by both phases (main.c). */
void kite_restorer_exit(int code) __attribute__((noreturn));

#endif /* KITE_SYSCALL_SHIM_RESTORER_RESTORER_H_ */
