/* The kite checkpoint image, version 1: the on-disk layout shared by the dumper (in the shim,
 * C++) and kite-restore (freestanding C). Plain C, fixed-width fields, little-endian x86_64
 * only. docs/image-format.md is the specification; this header is its machine-readable form
 * and the two must change together (bump KITE_IMG_VERSION on any incompatible change). */
#ifndef KITE_SYSCALL_SHIM_IMAGE_IMAGE_FORMAT_H_
#define KITE_SYSCALL_SHIM_IMAGE_IMAGE_FORMAT_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- File header ------------------------------------------------------------------------ */

#define KITE_IMG_MAGIC "KITEIMG"          /* 7 characters + NUL = 8 bytes */
#define KITE_IMG_VERSION 1u
#define KITE_IMG_PAGE_SIZE 4096u
#define KITE_IMG_MAX_SECTIONS 8u          /* slots in the header's section table */
#define KITE_IMG_HEADER_RESERVED 4096u    /* bytes before the first section */

/* Section types. Each appears at most once; KITE_SEC_NONE marks an unused table slot. */
enum kite_img_section_type {
  KITE_SEC_NONE = 0,
  KITE_SEC_PROCESS = 1,    /* one struct kite_img_process */
  KITE_SEC_REGIONS = 2,    /* struct kite_img_region[count], sorted by start */
  KITE_SEC_PAGE_RUNS = 3,  /* struct kite_img_page_run[count], sorted by (region, page) */
  KITE_SEC_FDS = 4,        /* struct kite_img_fd[count], sorted by fd */
  KITE_SEC_PENDING = 5,    /* struct kite_img_siginfo[count], in delivery order */
  KITE_SEC_STRINGS = 6,    /* bytes: NUL-terminated strings named by struct kite_img_str */
  KITE_SEC_PAGE_DATA = 7,  /* bytes: page contents, page-aligned; checksummed per run */
  KITE_SEC_TYPE_LIMIT = 8
};

struct kite_img_section {
  uint32_t type;        /* enum kite_img_section_type */
  uint32_t entry_size;  /* sizeof the entry type (1 for byte sections) */
  uint64_t offset;      /* from the start of the file; a multiple of 8 (of the page size for
                           KITE_SEC_PAGE_DATA); >= KITE_IMG_HEADER_RESERVED */
  uint64_t size;        /* bytes; == count * entry_size */
  uint64_t count;       /* entries */
  uint32_t crc;         /* CRC-32C of the section's bytes; 0 for KITE_SEC_PAGE_DATA */
  uint32_t reserved;    /* 0 */
};

struct kite_img_header {
  char magic[8];              /* KITE_IMG_MAGIC */
  uint32_t version;           /* KITE_IMG_VERSION */
  uint32_t header_size;       /* sizeof(struct kite_img_header) */
  uint64_t file_size;         /* size of the whole image file */
  uint32_t section_entry_size;/* sizeof(struct kite_img_section) */
  uint32_t flags;             /* 0; reserved for precopy/incremental images */
  uint32_t header_crc;        /* CRC-32C of this header with header_crc set to 0 */
  uint32_t reserved;          /* 0 */
  struct kite_img_section sections[KITE_IMG_MAX_SECTIONS];
};

/* ---- Strings ---------------------------------------------------------------------------- */

/* A string in KITE_SEC_STRINGS: `len` bytes at `offset`, followed by a NUL, no NUL inside.
 * len 0 with offset 0 is "absent". */
struct kite_img_str {
  uint32_t offset;
  uint32_t len;
};
#define KITE_IMG_MAX_PATH 4095u

/* ---- Process state ---------------------------------------------------------------------- */

#define KITE_IMG_NSIG 64u                /* signals 1..64 */
#define KITE_IMG_NRLIMIT 16u             /* RLIM_NLIMITS on Linux */
#define KITE_IMG_AUXV_WORDS 64u
#define KITE_IMG_MAX_GROUPS 64u

/* The kernel's struct sigaction as rt_sigaction(2) reads and writes it on x86_64. */
struct kite_img_sigaction {
  uint64_t handler;   /* SIG_DFL 0, SIG_IGN 1, or an address */
  uint64_t flags;     /* SA_* */
  uint64_t restorer;  /* sa_restorer */
  uint64_t mask;      /* blocked during the handler; bit (n-1) is signal n */
};

struct kite_img_rlimit {
  uint64_t cur;
  uint64_t max;  /* RLIM_INFINITY is ~0 */
};

/* Remaining time of an interval timer (ITIMER_REAL/VIRTUAL/PROF), as getitimer(2). */
struct kite_img_itimer {
  int64_t interval_sec;
  int64_t interval_usec;
  int64_t value_sec;
  int64_t value_usec;
};

/* What PR_SET_MM_MAP restores (struct prctl_mm_map without auxv/exe_fd). */
struct kite_img_mm {
  uint64_t start_code, end_code;
  uint64_t start_data, end_data;
  uint64_t start_brk, brk;
  uint64_t start_stack;
  uint64_t arg_start, arg_end;
  uint64_t env_start, env_end;
};

struct kite_img_process {
  /* Identity when dumped. pid/tid as the process saw them (its own PID namespace); host_pid
   * is the pid in the namespace of the /proc it read (the one a controller outside knows). */
  int32_t pid;
  int32_t tid;
  int32_t host_pid;
  uint32_t ngroups;
  uint32_t uid[3];   /* real, effective, saved */
  uint32_t gid[3];
  uint32_t groups[KITE_IMG_MAX_GROUPS];

  /* CPU. sigframe is the value rsp must hold for rt_sigreturn: the handler's ucontext
   * address (the rt_sigframe starts 8 bytes below, at its return address). */
  uint64_t sigframe;
  uint64_t fs_base;
  uint64_t gs_base;
  uint64_t xcr0;            /* XSAVE features enabled on the dumping CPU (XGETBV 0) */

  /* What the kernel keeps about the thread for libc. tid_address 0: none registered. */
  uint64_t tid_address;     /* set_tid_address(2): glibc's cached tid in the TCB */
  uint64_t robust_list;     /* set_robust_list(2) head; 0: none */
  uint64_t robust_list_len;
  uint64_t rseq_addr;       /* rseq(2) area; 0: not registered */
  uint32_t rseq_len;
  uint32_t rseq_sig;

  /* Memory descriptor. */
  struct kite_img_mm mm;
  uint32_t auxv_words;      /* used words of auxv (pairs, ending with AT_NULL) */
  uint32_t personality;
  uint64_t auxv[KITE_IMG_AUXV_WORDS];
  struct kite_img_str exe_path;  /* /proc/self/exe */
  struct kite_img_str cwd;

  /* Miscellaneous task state. */
  uint32_t umask;
  uint32_t dumpable;        /* PR_GET_DUMPABLE: 0 or 1 */
  uint32_t leader;          /* KITE_LEADER_*: what the process led; re-established at restore */
  uint32_t reserved;        /* 0 */
  char comm[16];            /* PR_GET_NAME, NUL-terminated */
  uint64_t sigmask;         /* the mask in the frame (restored by rt_sigreturn); informational */
  struct kite_img_sigaction sigactions[KITE_IMG_NSIG];  /* [n-1] is signal n */
  struct kite_img_rlimit rlimits[KITE_IMG_NRLIMIT];
  struct kite_img_itimer itimers[3];  /* ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF */

  /* The shim's side of the restore (see struct kite_restore_fixup). */
  uint64_t fixup_addr;      /* address of kite_restore_fixup in the shim's data */
  uint64_t restore_tail;    /* address of the shim's restore tail (KITE_RESTORE_TAIL_BYTES) */

  int64_t dump_time_sec;    /* CLOCK_REALTIME when dumped; informational */
  int64_t dump_time_nsec;
};

#define KITE_LEADER_NONE 0u
#define KITE_LEADER_SESSION 1u  /* its own session (and process group) */
#define KITE_LEADER_GROUP 2u    /* its own process group only */

/* ---- Memory ----------------------------------------------------------------------------- */

enum kite_img_region_kind {
  KITE_REGION_ANON = 1,         /* anonymous private memory (incl. [heap], [anon:...]) */
  KITE_REGION_STACK = 2,        /* the main stack: anonymous, MAP_GROWSDOWN */
  KITE_REGION_FILE = 3,         /* a file mapping: re-mapped by path, saved pages written over */
  KITE_REGION_VDSO = 4,         /* [vdso]: moved from the restorer's, never saved */
  KITE_REGION_VVAR = 5,         /* [vvar] */
  KITE_REGION_VVAR_VCLOCK = 6,  /* [vvar_vclock] */
  KITE_REGION_KIND_LIMIT = 7
};

#define KITE_REGION_SHARED 0x1u  /* MAP_SHARED (read-only file mappings only) */

/* One VMA. Pages with contents are described by page runs, never here, so that precopy can
 * send them in several passes and lazy restore can fetch them on demand. */
struct kite_img_region {
  uint64_t start;          /* page-aligned */
  uint64_t end;            /* page-aligned, > start */
  uint32_t prot;           /* PROT_READ 1 | PROT_WRITE 2 | PROT_EXEC 4 */
  uint32_t flags;          /* KITE_REGION_* */
  uint32_t kind;           /* enum kite_img_region_kind */
  uint32_t reserved;       /* 0 */
  uint64_t file_offset;    /* FILE: offset of `start` in the file, page-aligned */
  struct kite_img_str path;/* FILE: absolute path */
  /* FILE: identity when dumped. size and mtime must match at restore (the file must not have
   * changed); dev and inode are informational (they differ between hosts). */
  uint64_t dev;
  uint64_t inode;
  uint64_t file_size;
  int64_t mtime_sec;
  int64_t mtime_nsec;
  uint64_t saved_pages;    /* pages of this region covered by page runs */
};

/* Up to KITE_IMG_MAX_RUN_PAGES consecutive saved pages of one region. Pages of a region not
 * covered by a run are zero (ANON/STACK) or the file's contents (FILE). */
#define KITE_IMG_MAX_RUN_PAGES 256u
struct kite_img_page_run {
  uint32_t region;       /* index into KITE_SEC_REGIONS */
  uint32_t npages;       /* 1..KITE_IMG_MAX_RUN_PAGES */
  uint64_t page;         /* first page, counted from the region's start */
  uint64_t data_offset;  /* file offset of the bytes, page-aligned, inside KITE_SEC_PAGE_DATA */
  uint32_t crc;          /* CRC-32C of the npages * 4096 bytes */
  uint32_t reserved;     /* 0 */
};

/* ---- Files and signals ------------------------------------------------------------------ */

enum kite_img_fd_kind {
  KITE_FD_FILE = 1,  /* regular file: reopened by path, offset restored */
  KITE_FD_DIR = 2,   /* directory */
  KITE_FD_DEV = 3,   /* one of /dev/null, /dev/zero, /dev/urandom */
  KITE_FD_STDIO = 4, /* a standard stream (terminal of the job's launcher): re-attached to the
                        restorer's own descriptor `offset` (0, 1 or 2), never reopened */
  KITE_FD_PIPE = 5,  /* one end of a pipe or FIFO: `offset` is the pipe's inode number (its
                        identity across the job's processes); the restorer is given the new
                        pipe's end (kite-restore --inherit), never reopens it */
  KITE_FD_DELETED = 6, /* a regular file whose last name was removed while it was open (also
                          O_TMPFILE): its contents at the checkpoint are in the file
                          "<image path>.fd<fd>" beside the image, which the restorer opens in
                          its place; `path` is the old name, for messages only */
  KITE_FD_KIND_LIMIT = 7
};

struct kite_img_fd {
  int32_t fd;
  uint32_t kind;        /* enum kite_img_fd_kind */
  uint32_t open_flags;  /* F_GETFL: access mode and status flags (O_APPEND, O_NONBLOCK, ...) */
  uint32_t fd_flags;    /* F_GETFD: FD_CLOEXEC */
  int64_t offset;       /* lseek(fd, 0, SEEK_CUR); -1 when not seekable. KITE_FD_STDIO: the
                           standard stream (0 stdin, 1 stdout, 2 stderr) it was. KITE_FD_PIPE:
                           the pipe's inode number (> 0) */
  struct kite_img_str path;  /* absent for KITE_FD_STDIO and KITE_FD_PIPE */
};

/* A pending signal, as the kernel's 128-byte siginfo; requeued with rt_tgsigqueueinfo. */
struct kite_img_siginfo {
  uint8_t bytes[128];  /* si_signo is the first int */
};

/* ---- Bounds a valid image respects (the validator enforces them) ------------------------- */

#define KITE_IMG_MAX_REGIONS 65536u
#define KITE_IMG_MAX_RUNS (1u << 22)
#define KITE_IMG_MAX_FDS 65536u
#define KITE_IMG_MAX_PENDING 4096u
#define KITE_IMG_MAX_STRINGS (16u << 20)
/* Highest user address + 1 on x86_64 with 4-level paging (TASK_SIZE). */
#define KITE_IMG_USER_LIMIT 0x7ffffffff000ull
#define KITE_IMG_MIN_ADDR 0x1000ull

/* ---- The shim's restore contract -------------------------------------------------------- */

/* Filled by kite-restore in the restored process's memory, at process.fixup_addr, just before
 * the final rt_sigreturn. The shim reads it lazily: restore_count moving on means "you were
 * restored; the kernel-visible ids are these now". Never written by the shim. */
#define KITE_FIXUP_MAGIC 0x5055584946455449ull /* "ITEFIXUP" little-endian: arbitrary tag */
struct kite_restore_fixup {
  uint64_t magic;          /* KITE_FIXUP_MAGIC, set by the shim at build time */
  uint32_t restore_count;  /* incremented by every restore of this memory */
  int32_t real_pid;        /* the restored process's pid (its own PID namespace) */
  int32_t real_tid;
  int32_t host_pid;        /* its pid in the restorer's /proc namespace; 0 if unknown */
  int32_t old_pid;         /* process.pid of the image it was restored from */
  int32_t reserved;
};

/* The shim's restore tail, x86_64 machine code, entered with rdi = start and rsi = length of
 * the restorer's range, rsp = the signal frame:
 *   mov $11,%eax; syscall   (munmap)      b8 0b 00 00 00 0f 05
 *   mov $15,%eax; syscall   (rt_sigreturn) b8 0f 00 00 00 0f 05
 *   ud2                                    0f 0b
 * kite-restore checks these bytes at process.restore_tail before jumping there. */
#define KITE_RESTORE_TAIL_LEN 16u
#define KITE_RESTORE_TAIL_BYTES                                                   \
  {0xb8, 0x0b, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, \
   0x05, 0x0f, 0x0b}

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* KITE_SYSCALL_SHIM_IMAGE_IMAGE_FORMAT_H_ */
