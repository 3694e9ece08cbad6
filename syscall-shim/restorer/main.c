/* kite-restore's prepare phase: everything that can fail cleanly, before the address space is
 * touched. It validates the image (image_validate.c), checks this host can run it (its own
 * address window free in the image, the vDSO layout, CPU features), takes the image's
 * identity (never running a root image without --allow-root, never a root caller's
 * privileges for a user's image), opens every file as that user, and fills the args struct
 * for the restore phase (restore.c).
 *
 * Usage: kite-restore [--allow-root] [--expect-uid UID] [--verify-only] [--inherit FD=N]...
 *                     [--ready-fd N --go-fd N | --release-fd N --release-count K] IMAGE
 *   --inherit FD=N   the image's descriptor FD is our inherited descriptor N (a pipe end, which
 *                    is never reopened: kite-restore-tree made it); required for every pipe
 *   --ready-fd N     once everything that can fail cleanly is done, write one byte to N...
 *   --go-fd N        ...then wait for one byte on N before the point of no return (EOF: give
 *                    up): a process of a job tree runs only when every other one can
 *   --release-fd N, --release-count K   the tree's root: once ready itself, write K bytes to N
 *   --loaded-fd N --run-fd M   the second barrier of a job tree (restorer.h): a child writes a
 *                    byte to N once its memory is loaded and runs on a byte from M; the root,
 *                    with --loaded-count K, reads K bytes from N and then writes K to M
 *   --pages FIFO     the image's page data arrives through FIFO, in file order (kite-remoted
 *                    streams it from the source host); the image file itself has a hole there
 * Exit codes: restorer.h (KITE_RESTORE_EXIT_*); on success the process becomes the image's. */
#include "syscall-shim/image/image_validate.h"
#include "syscall-shim/restorer/restorer.h"
#include "syscall-shim/restorer/rlib.h"
#include "syscall-shim/restorer/rsys.h"

/* ELF entry: argc at (%rsp); align the stack and call the C entry. */
__asm__(
    ".text\n"
    ".globl _start\n"
    ".type _start, @function\n"
    "_start:\n"
    "  xor %ebp, %ebp\n"
    "  mov %rsp, %rdi\n"
    "  and $-16, %rsp\n"
    "  call kite_restorer_main\n"
    "  ud2\n");

extern char __executable_start[];

static int g_diag = 2;
#define MAX_INHERIT 1024
static struct { int32_t image_fd, fd; } g_inherit[MAX_INHERIT];
static int g_ninherit;

/* Our inherited descriptor standing for the image's descriptor `image_fd`, or -1. */
static int inherited_for(int32_t image_fd) {
  for (int i = 0; i < g_ninherit; i++) {
    if (g_inherit[i].image_fd == image_fd) return g_inherit[i].fd;
  }
  return -1;
}
static char g_prefix[512];  /* "IMAGE: " */
static char g_maps[65536];  /* kite-restore's own /proc/self/maps */

void kite_restorer_exit(int code) {
  for (;;) rsys1(__NR_exit_group, code);
}

static void die(int code, const char* a, const char* b) __attribute__((noreturn));
static void die(int code, const char* a, const char* b) {
  r_msg(g_diag, g_prefix, a, b);
  kite_restorer_exit(code);
}

static void die_errno(int code, const char* what, long err) __attribute__((noreturn));
static void die_errno(int code, const char* what, long err) {
  char num[24], text[600];
  size_t n = 0;
  const char* parts[3] = {what, ": error ", r_utoa((uint64_t)-err, num)};
  for (int i = 0; i < 3; i++) {
    for (const char* p = parts[i]; *p != '\0' && n < sizeof text - 1; p++) text[n++] = *p;
  }
  text[n] = '\0';
  die(code, text, NULL);
}

/* ---- The image mapping ------------------------------------------------------------------ */

struct image_map {
  const uint8_t* base;
  uint64_t size;
};

static const void* image_at(void* ctx, uint64_t off, uint64_t len) {
  const struct image_map* m = (const struct image_map*)ctx;
  if (m->base == NULL || off > m->size || len > m->size - off) return NULL;
  return m->base + off;
}

/* ---- Own mappings ----------------------------------------------------------------------- */

static int parse_hex(const char** p, uint64_t* out) {
  uint64_t v = 0;
  int n = 0;
  for (;; (*p)++, n++) {
    char c = **p;
    if (c >= '0' && c <= '9') v = v * 16 + (uint64_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + (uint64_t)(c - 'a' + 10);
    else break;
  }
  *out = v;
  return n > 0 && n <= 16;
}

static void read_own_maps(struct kite_restorer_args* a) {
  long fd = rsys4(__NR_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC, 0);
  if (rsys_failed(fd)) die_errno(KITE_RESTORE_EXIT_HOST, "opening /proc/self/maps", fd);
  size_t got = 0;
  for (;;) {
    long n = rsys3(__NR_read, fd, g_maps + got, sizeof g_maps - 1 - got);
    if (n == -R_EINTR) continue;
    if (rsys_failed(n)) die_errno(KITE_RESTORE_EXIT_HOST, "reading /proc/self/maps", n);
    if (n == 0) break;
    got += (size_t)n;
    if (got == sizeof g_maps - 1) die(KITE_RESTORE_EXIT_HOST, "own /proc/self/maps too long", NULL);
  }
  rsys1(__NR_close, fd);
  g_maps[got] = '\0';
  const char* p = g_maps;
  while (*p != '\0') {
    uint64_t start, end;
    if (!parse_hex(&p, &start) || *p++ != '-' || !parse_hex(&p, &end) || *p++ != ' ') {
      die(KITE_RESTORE_EXIT_HOST, "cannot parse own /proc/self/maps", NULL);
    }
    if (a->nown == KITE_RESTORER_MAX_VMAS) die(KITE_RESTORE_EXIT_HOST, "too many own mappings", NULL);
    struct kite_restorer_vma* v = &a->own[a->nown++];
    v->start = start;
    v->end = end;
    v->prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) | (p[2] == 'x' ? PROT_EXEC : 0);
    const char* eol = p;
    while (*eol != '\0' && *eol != '\n') eol++;
    /* The path is the last field; find its start (after the inode column). */
    const char* name = eol;
    while (name > p && name[-1] != ' ') name--;
    size_t len = (size_t)(eol - name);
    if (len == 6 && memcmp(name, "[vdso]", 6) == 0) v->kind = KITE_REGION_VDSO;
    else if (len == 6 && memcmp(name, "[vvar]", 6) == 0) v->kind = KITE_REGION_VVAR;
    else if (len == 13 && memcmp(name, "[vvar_vclock]", 13) == 0) v->kind = KITE_REGION_VVAR_VCLOCK;
    /* The binary's own pages, not the image's read-only mapping (another file): the restore
     * phase copies these into anonymous memory, and a copy of the image was a second copy of
     * every page it holds (2.6 s of a 1 GiB restore on a half-core host). */
    v->file = len > 0 && name[0] == '/' && start != a->window_start + KITE_RESTORER_IMAGE_OFF;
    if (len == 10 && memcmp(name, "[vsyscall]", 10) == 0) a->nown--; /* fixed, untouchable */
    p = *eol == '\n' ? eol + 1 : eol;
  }
}

static const struct kite_restorer_vma* own_special(const struct kite_restorer_args* a, uint32_t kind) {
  for (uint32_t i = 0; i < a->nown; i++) {
    if (a->own[i].kind == kind) return &a->own[i];
  }
  return NULL;
}

static const struct kite_img_region* image_special(const struct kite_img_view* v, uint32_t kind) {
  for (uint64_t i = 0; i < v->nregions; i++) {
    if (v->regions[i].kind == kind) return &v->regions[i];
  }
  return NULL;
}

/* The vDSO and its data pages move to the image's addresses: same kernel layout required. */
static void check_vdso(const struct kite_restorer_args* a) {
  const struct kite_img_region* ivdso = image_special(&a->view, KITE_REGION_VDSO);
  const struct kite_restorer_vma* ovdso = own_special(a, KITE_REGION_VDSO);
  static const uint32_t kinds[3] = {KITE_REGION_VDSO, KITE_REGION_VVAR, KITE_REGION_VVAR_VCLOCK};
  for (int k = 0; k < 3; k++) {
    const struct kite_img_region* ir = image_special(&a->view, kinds[k]);
    const struct kite_restorer_vma* ov = own_special(a, kinds[k]);
    if (ir == NULL && ov == NULL) continue;
    if (ir == NULL || ov == NULL || ir->end - ir->start != ov->end - ov->start) {
      die(KITE_RESTORE_EXIT_HOST, "the vDSO layout differs from the checkpointed kernel's",
          " (another kernel version?)");
    }
    if (ivdso != NULL && ovdso != NULL &&
        ir->start - ivdso->start != ov->start - ovdso->start) {
      die(KITE_RESTORE_EXIT_HOST, "the vDSO and vvar pages are laid out differently here", NULL);
    }
  }
}

static uint64_t local_xcr0(void) {
  uint32_t ax = 1, bx, cx, dx;
  __asm__ volatile("cpuid" : "+a"(ax), "=b"(bx), "=c"(cx), "=d"(dx));
  if (!((cx >> 27) & 1)) return 3;
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

static int host_pid(void) {
  char buf[4096];
  long fd = rsys4(__NR_openat, AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC, 0);
  long n = rsys_failed(fd) ? -1 : rsys3(__NR_read, fd, buf, sizeof buf - 1);
  if (!rsys_failed(fd)) rsys1(__NR_close, fd);
  if (n > 0) {
    buf[n] = '\0';
    for (const char* p = buf; *p != '\0'; p++) {
      if ((p == buf || p[-1] == '\n') && memcmp(p, "NSpid:", 6) == 0) {
        p += 6;
        while (*p == ' ' || *p == '\t') p++;
        uint64_t v = 0;
        while (*p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
        return (int)v;
      }
    }
  }
  return (int)rsys0(__NR_getpid);
}

/* ---- Identity --------------------------------------------------------------------------- */

static int has_cap(int cap) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (rsys_failed(rsys2(__NR_capget, &h, d))) return 0;
  return (d[cap / 32].effective >> (cap % 32)) & 1;
}

static void take_identity(struct kite_restorer_args* a, int allow_root, int64_t expect_uid) {
  const struct kite_img_process* p = a->view.process;
  int image_root = p->uid[0] == 0 || p->uid[1] == 0 || p->uid[2] == 0 || p->gid[0] == 0 ||
                   p->gid[1] == 0 || p->gid[2] == 0;
  for (uint32_t i = 0; i < p->ngroups; i++) image_root |= p->groups[i] == 0;
  if (image_root && !allow_root) {
    die(KITE_RESTORE_EXIT_DENIED, "the image runs as root (uid or gid 0)",
        "; restoring it needs --allow-root");
  }
  if (expect_uid >= 0 && (int64_t)p->uid[0] != expect_uid) {
    die(KITE_RESTORE_EXIT_DENIED, "the image belongs to another user than --expect-uid", NULL);
  }
  uint32_t r, e, s;
  rsys3(__NR_getresuid, &r, &e, &s);
  long rc;
  if (e == 0) {
    rc = rsys2(__NR_setgroups, p->ngroups, p->groups);
    if (rsys_failed(rc)) die_errno(KITE_RESTORE_EXIT_DENIED, "setgroups", rc);
    rc = rsys3(__NR_setresgid, p->gid[0], p->gid[1], p->gid[2]);
    if (rsys_failed(rc)) die_errno(KITE_RESTORE_EXIT_DENIED, "setresgid", rc);
    if (!image_root) rsys2(__NR_prctl, PR_SET_KEEPCAPS, 1);
    rc = rsys3(__NR_setresuid, p->uid[0], p->uid[1], p->uid[2]);
    if (rsys_failed(rc)) die_errno(KITE_RESTORE_EXIT_DENIED, "setresuid", rc);
    if (!image_root) {
      /* Keep only CAP_CHECKPOINT_RESTORE (for PR_SET_MM_MAP's exe_fd); dropped before the jump. */
      struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
      struct __user_cap_data_struct d[2];
      memset(d, 0, sizeof d);
      d[1].effective = d[1].permitted = 1u << (R_CAP_CHECKPOINT_RESTORE - 32);
      a->keep_cap = !rsys_failed(rsys2(__NR_capset, &h, d));
      if (!a->keep_cap) {
        memset(d, 0, sizeof d);
        rsys2(__NR_capset, &h, d);
      }
      rsys2(__NR_prctl, PR_SET_KEEPCAPS, 0);
    }
  } else {
    /* Not root: only our own identity can be restored. */
    uint32_t groups[KITE_IMG_MAX_GROUPS];
    long n = rsys2(__NR_getgroups, KITE_IMG_MAX_GROUPS, groups);
    int same = !rsys_failed(n) && (uint32_t)n == p->ngroups;
    for (uint32_t i = 0; same && i < p->ngroups; i++) {
      int found = 0;
      for (uint32_t j = 0; j < p->ngroups; j++) found |= groups[j] == p->groups[i];
      same = found;
    }
    if (!same) die(KITE_RESTORE_EXIT_DENIED, "the image's supplementary groups differ from ours", NULL);
    rc = rsys3(__NR_setresgid, p->gid[0], p->gid[1], p->gid[2]);
    if (rsys_failed(rc)) die(KITE_RESTORE_EXIT_DENIED, "the image's group ids are not ours", NULL);
    rc = rsys3(__NR_setresuid, p->uid[0], p->uid[1], p->uid[2]);
    if (rsys_failed(rc)) die(KITE_RESTORE_EXIT_DENIED, "the image's user ids are not ours", NULL);
    a->keep_cap = 0;
  }
}

/* ---- Files ------------------------------------------------------------------------------ */

static int open_high(struct kite_restorer_args* a, const char* path, int flags, long* err) {
  long fd = rsys4(__NR_openat, AT_FDCWD, path, flags | O_CLOEXEC, 0);
  if (rsys_failed(fd)) {
    *err = fd;
    return -1;
  }
  if (fd < a->fd_base) {
    long hi = rsys3(__NR_fcntl, fd, F_DUPFD_CLOEXEC, a->fd_base);
    rsys1(__NR_close, fd);
    if (rsys_failed(hi)) {
      *err = hi;
      return -1;
    }
    fd = hi;
  }
  if (fd + 1 > a->fd_limit) a->fd_limit = (int)fd + 1;
  return (int)fd;
}

static void die_file(const char* what, const char* path, long err) __attribute__((noreturn));

/* An inherited descriptor (-1: none) moved to a number >= fd_base, close-on-exec. */
static int move_high(struct kite_restorer_args* a, int fd, const char* what) {
  if (fd < 0) return -1;
  long hi = rsys3(__NR_fcntl, fd, F_DUPFD_CLOEXEC, a->fd_base);
  if (rsys_failed(hi)) die_errno(KITE_RESTORE_EXIT_HOST, what, hi);
  rsys1(__NR_close, fd);
  if (hi + 1 > a->fd_limit) a->fd_limit = (int)hi + 1;
  return (int)hi;
}

static void die_file(const char* what, const char* path, long err) {
  char num[24], text[700];
  size_t n = 0;
  const char* parts[5] = {what, path, err != 0 ? ": error " : "", err != 0 ? r_utoa((uint64_t)-err, num) : "", ""};
  for (int i = 0; i < 5; i++) {
    for (const char* p = parts[i]; *p != '\0' && n < sizeof text - 1; p++) text[n++] = *p;
  }
  text[n] = '\0';
  die(KITE_RESTORE_EXIT_HOST, text, NULL);
}

static void open_files(struct kite_restorer_args* a) {
  const struct kite_img_view* v = &a->view;
  long err = 0;
  for (uint64_t i = 0; i < v->nregions; i++) {
    const struct kite_img_region* r = &v->regions[i];
    a->region_fds[i] = -1;
    if (r->kind != KITE_REGION_FILE) continue;
    if (i > 0 && v->regions[i - 1].kind == KITE_REGION_FILE &&
        v->regions[i - 1].path.offset == r->path.offset && a->region_fds[i - 1] >= 0) {
      a->region_fds[i] = a->region_fds[i - 1];
      continue;
    }
    const char* path = kite_img_string(v, r->path);
    int fd = open_high(a, path, O_RDONLY, &err);
    if (fd < 0) die_file("cannot open mapped file ", path, err);
    struct stat st;
    long rc = rsys2(__NR_fstat, fd, &st);
    if (rsys_failed(rc)) die_file("cannot stat mapped file ", path, rc);
    if ((st.st_mode & R_S_IFMT) != R_S_IFREG || (uint64_t)st.st_size != r->file_size ||
        (int64_t)st.st_mtime != r->mtime_sec || (int64_t)st.st_mtime_nsec != r->mtime_nsec) {
      die_file("mapped file changed since the checkpoint: ", path, 0);
    }
    a->region_fds[i] = fd;
  }
  for (uint64_t i = 0; i < v->nfds; i++) {
    const struct kite_img_fd* f = &v->fds[i];
    int given = inherited_for(f->fd);
    if (f->kind == KITE_FD_PIPE || given >= 0) {
      /* Made for us by kite-restore-tree: the new pipe's end (or a shared description). */
      char num[24];
      if (given < 0) die(KITE_RESTORE_EXIT_HOST, "no --inherit for the image's pipe descriptor ", r_utoa((uint64_t)f->fd, num));
      struct stat gst;
      long rc = rsys2(__NR_fstat, given, &gst);
      if (rsys_failed(rc)) die_errno(KITE_RESTORE_EXIT_HOST, "an --inherit descriptor is not open", rc);
      uint32_t type = gst.st_mode & R_S_IFMT;
      int ok = f->kind == KITE_FD_PIPE ? type == R_S_IFIFO
               : f->kind == KITE_FD_FILE ? type == R_S_IFREG
               : f->kind == KITE_FD_DIR  ? type == R_S_IFDIR
                                         : 1;
      if (!ok) die(KITE_RESTORE_EXIT_HOST, "an --inherit descriptor is of another type than the image's ", r_utoa((uint64_t)f->fd, num));
      long fd = rsys3(__NR_fcntl, given, F_DUPFD_CLOEXEC, a->fd_base);
      if (rsys_failed(fd)) die_errno(KITE_RESTORE_EXIT_HOST, "duplicating an --inherit descriptor", fd);
      rc = rsys3(__NR_fcntl, fd, F_SETFL, f->open_flags & (uint32_t)(O_APPEND | O_NONBLOCK));
      if (rsys_failed(rc)) die_errno(KITE_RESTORE_EXIT_HOST, "setting an inherited descriptor's flags", rc);
      if (fd + 1 > a->fd_limit) a->fd_limit = (int)fd + 1;
      a->image_fds[i] = (int)fd;
      continue;
    }
    if (f->kind == KITE_FD_STDIO) {
      /* Re-attached: our own standard stream `offset` is the new launcher's pipe or pty. */
      long fd = rsys3(__NR_fcntl, (int)f->offset, F_DUPFD_CLOEXEC, a->fd_base);
      if (rsys_failed(fd)) {
        die_errno(KITE_RESTORE_EXIT_HOST, "the image re-attaches a standard stream kite-restore was not given", fd);
      }
      long rc = rsys3(__NR_fcntl, fd, F_SETFL, f->open_flags & (uint32_t)(O_APPEND | O_NONBLOCK));
      if (rsys_failed(rc)) die_errno(KITE_RESTORE_EXIT_HOST, "setting a standard stream's flags", rc);
      if (fd + 1 > a->fd_limit) a->fd_limit = (int)fd + 1;
      a->image_fds[i] = (int)fd;
      continue;
    }
    const char* path = kite_img_string(v, f->path);
    char copy[4096 + 32];
    if (f->kind == KITE_FD_DELETED) {
      /* The file's contents at the checkpoint, beside the image: "<image>.fd<N>". */
      size_t plen = r_strlen(a->image_path);
      char num[24];
      const char* n = r_utoa((uint64_t)f->fd, num);
      size_t nlen = r_strlen(n);
      if (plen + 3 + nlen + 1 > sizeof copy) die_file("image path too long for a deleted file's copy: ", a->image_path, 0);
      memcpy(copy, a->image_path, plen);
      memcpy(copy + plen, ".fd", 3);
      memcpy(copy + plen + 3, n, nlen + 1);
      path = copy;
    }
    int flags = (int)(f->open_flags & ~(uint32_t)(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY));
    /* An O_TMPFILE file reports O_TMPFILE (__O_TMPFILE | O_DIRECTORY) in F_GETFL; its copy is a
     * plain file. */
    if (f->kind == KITE_FD_DELETED) flags &= ~(int)(O_DIRECTORY | 020000000 /* __O_TMPFILE */);
    if (f->kind == KITE_FD_DIR) flags |= O_DIRECTORY;
    if (f->kind == KITE_FD_DEV && !r_streq(path, "/dev/null") && !r_streq(path, "/dev/zero") &&
        !r_streq(path, "/dev/urandom")) {
      die_file("the image opens a device kite does not restore: ", path, 0);
    }
    int fd = open_high(a, path, flags, &err);
    if (fd < 0) die_file("cannot reopen ", path, err);
    struct stat st;
    long rc = rsys2(__NR_fstat, fd, &st);
    uint32_t type = rsys_failed(rc) ? 0 : (st.st_mode & R_S_IFMT);
    if (((f->kind == KITE_FD_FILE || f->kind == KITE_FD_DELETED) && type != R_S_IFREG) ||
        (f->kind == KITE_FD_DIR && type != R_S_IFDIR)) {
      die_file("reopened file has another type now: ", path, 0);
    }
    if (f->offset >= 0 && f->kind != KITE_FD_DEV) {
      rc = rsys3(__NR_lseek, fd, f->offset, 0 /* SEEK_SET */);
      if (rsys_failed(rc)) die_file("cannot restore the offset of ", path, rc);
    }
    a->image_fds[i] = fd;
  }
  a->exe_fd = -1;
  if (a->keep_cap || has_cap(R_CAP_CHECKPOINT_RESTORE) || has_cap(21 /* CAP_SYS_ADMIN */)) {
    const char* exe = kite_img_string(v, v->process->exe_path);
    a->exe_fd = open_high(a, exe, O_RDONLY, &err);
    if (a->exe_fd < 0) die_file("cannot open the executable ", exe, err);
  }
  const char* cwd = kite_img_string(v, v->process->cwd);
  a->cwd_fd = open_high(a, cwd, O_PATH | O_DIRECTORY, &err);
  if (a->cwd_fd < 0) die_file("cannot open the working directory ", cwd, err);
}

/* ---- Entry ------------------------------------------------------------------------------ */

static void usage(void) __attribute__((noreturn));
static void usage(void) {
  r_msg(2, "usage: kite-restore [--allow-root] [--expect-uid UID] [--verify-only] [--inherit FD=N]... ",
        "[--ready-fd N --go-fd N | --release-fd N --release-count K] [--loaded-fd N --run-fd N "
        "[--loaded-count K]] [--pages FIFO] IMAGE", NULL);
  kite_restorer_exit(KITE_RESTORE_EXIT_USAGE);
}

static void* map_fixed(uint64_t addr, uint64_t len, int flags, int fd) {
  long r = rsys6(__NR_mmap, (long)addr, (long)len, PROT_READ | (fd < 0 ? PROT_WRITE : 0),
                 MAP_PRIVATE | MAP_FIXED_NOREPLACE | flags, fd, 0);
  if (rsys_failed(r) || (uint64_t)r != addr) die_errno(KITE_RESTORE_EXIT_HOST, "mapping the restorer's window", r);
  return (void*)r;
}

void kite_restorer_main(long* sp) __attribute__((noreturn, used));
void kite_restorer_main(long* sp) {
  int argc = (int)sp[0];
  char** argv = (char**)(sp + 1);
  uint64_t all = ~(uint64_t)0;
  rsys4(__NR_rt_sigprocmask, R_SIG_SETMASK, &all, 0, 8);  /* nothing interrupts a restore */

  int allow_root = 0, verify_only = 0;
  int ready_fd = -1, go_fd = -1, release_fd = -1, release_count = 0;
  int loaded_fd = -1, run_fd = -1, loaded_count = 0;
  int64_t expect_uid = -1;
  const char* image = NULL;
  const char* pages = NULL;
  for (int i = 1; i < argc; i++) {
    if (r_streq(argv[i], "--allow-root")) {
      allow_root = 1;
    } else if (r_streq(argv[i], "--verify-only")) {
      verify_only = 1;
    } else if (r_streq(argv[i], "--inherit") && i + 1 < argc) {
      const char* v = argv[++i];
      char left[16];
      size_t k = 0;
      while (v[k] != '\0' && v[k] != '=' && k < sizeof left - 1) { left[k] = v[k]; k++; }
      left[k] = '\0';
      uint64_t ifd, fd;
      if (v[k] != '=' || r_parse_u64(left, &ifd) != 0 || r_parse_u64(v + k + 1, &fd) != 0 ||
          ifd >= (1u << 20) || fd >= (1u << 20) || g_ninherit == MAX_INHERIT || inherited_for((int32_t)ifd) >= 0) {
        usage();
      }
      g_inherit[g_ninherit].image_fd = (int32_t)ifd;
      g_inherit[g_ninherit].fd = (int32_t)fd;
      g_ninherit++;
    } else if ((r_streq(argv[i], "--ready-fd") || r_streq(argv[i], "--go-fd") || r_streq(argv[i], "--release-fd") ||
                r_streq(argv[i], "--release-count") || r_streq(argv[i], "--loaded-fd") ||
                r_streq(argv[i], "--run-fd") || r_streq(argv[i], "--loaded-count")) && i + 1 < argc) {
      uint64_t v;
      if (r_parse_u64(argv[i + 1], &v) != 0 || v >= (1u << 20)) usage();
      if (r_streq(argv[i], "--ready-fd")) ready_fd = (int)v;
      else if (r_streq(argv[i], "--go-fd")) go_fd = (int)v;
      else if (r_streq(argv[i], "--release-fd")) release_fd = (int)v;
      else if (r_streq(argv[i], "--loaded-fd")) loaded_fd = (int)v;
      else if (r_streq(argv[i], "--run-fd")) run_fd = (int)v;
      else if (r_streq(argv[i], "--loaded-count")) loaded_count = (int)v;
      else release_count = (int)v;
      i++;
    } else if (r_streq(argv[i], "--pages") && i + 1 < argc && pages == NULL) {
      pages = argv[++i];
    } else if (r_streq(argv[i], "--expect-uid") && i + 1 < argc) {
      uint64_t v;
      if (r_parse_u64(argv[++i], &v) != 0 || v > 0xfffffffeu) usage();
      expect_uid = (int64_t)v;
    } else if (argv[i][0] == '-' || image != NULL) {
      usage();
    } else {
      image = argv[i];
    }
  }
  if (image == NULL || (ready_fd >= 0) != (go_fd >= 0) || (release_fd >= 0 && go_fd >= 0)) usage();
  if ((loaded_fd >= 0) != (run_fd >= 0) || (loaded_count > 0 && (loaded_fd < 0 || release_fd < 0)) ||
      (loaded_fd >= 0 && loaded_count == 0 && go_fd < 0)) {
    usage();
  }
  size_t plen = r_strlen(image);
  if (plen > sizeof g_prefix - 3) plen = sizeof g_prefix - 3;
  memcpy(g_prefix, image, plen);
  memcpy(g_prefix + plen, ": ", 3);

  static struct kite_restorer_args args_storage; /* copied into the scratch area below */
  struct kite_restorer_args* a = &args_storage;
  a->image_path = image;
  a->window_start = (uint64_t)__executable_start;
  a->window_len = KITE_RESTORER_WINDOW;
  if (a->window_start != KITE_RESTORER_BASE) die(KITE_RESTORE_EXIT_HOST, "kite-restore is not at its link address", NULL);

  long fd = rsys4(__NR_openat, AT_FDCWD, image, O_RDONLY | O_CLOEXEC, 0);
  if (rsys_failed(fd)) die_errno(KITE_RESTORE_EXIT_INVALID, "cannot open the image", fd);
  struct stat st;
  long rc = rsys2(__NR_fstat, fd, &st);
  if (rsys_failed(rc)) die_errno(KITE_RESTORE_EXIT_INVALID, "cannot stat the image", rc);
  if ((st.st_mode & R_S_IFMT) != R_S_IFREG) die(KITE_RESTORE_EXIT_INVALID, "not a regular file", NULL);
  uint64_t size = (uint64_t)st.st_size;
  if (size > KITE_RESTORER_WINDOW - KITE_RESTORER_IMAGE_OFF) die(KITE_RESTORE_EXIT_INVALID, "image too large", NULL);
  struct image_map map = {NULL, size};
  if (size > 0) {
    map.base = map_fixed(a->window_start + KITE_RESTORER_IMAGE_OFF, (size + 4095) & ~4095ull, 0, (int)fd);
  }
  struct kite_img_error err;
  if (kite_img_validate(size, image_at, &map, &a->view, &err) != 0) {
    die(KITE_RESTORE_EXIT_INVALID, "invalid image: ", err.msg);
  }
  if (kite_img_range_free(&a->view, a->window_start, a->window_start + a->window_len, &err) != 0) {
    die(KITE_RESTORE_EXIT_HOST, "cannot restore here: ", err.msg);
  }
  if (verify_only) {
    r_msg(1, g_prefix, "valid image", NULL);
    kite_restorer_exit(0);
  }

  read_own_maps(a);
  check_vdso(a);
  uint64_t need = a->view.process->xcr0, have = local_xcr0();
  if ((need & ~have) != 0) die(KITE_RESTORE_EXIT_HOST, "this CPU lacks register state the image uses", " (XSAVE features)");
  a->host_pid = host_pid();

  take_identity(a, allow_root, expect_uid);

  /* Descriptors: everything the restorer holds lives above the image's highest number. */
  int max_fd = a->view.nfds > 0 ? a->view.fds[a->view.nfds - 1].fd : 2;
  a->fd_base = (max_fd < 2 ? 2 : max_fd) + 1;
  a->fd_limit = a->fd_base;
  struct r_rlimit64 nofile;
  rsys4(__NR_prlimit64, 0, 7 /* RLIMIT_NOFILE */, 0, &nofile);
  uint64_t want = (uint64_t)a->fd_base + a->view.nfds + a->view.nregions + 8;
  if (nofile.cur < want) {
    if (nofile.max < want) die(KITE_RESTORE_EXIT_HOST, "RLIMIT_NOFILE too low for the image's descriptors", NULL);
    nofile.cur = nofile.max;
    rsys4(__NR_prlimit64, 0, 7, &nofile, 0);
  }
  long diag = rsys3(__NR_fcntl, 2, F_DUPFD_CLOEXEC, a->fd_base);
  a->diag_fd = rsys_failed(diag) ? -1 : (int)diag;
  if (a->diag_fd >= 0) g_diag = a->diag_fd;
  if (a->diag_fd + 1 > a->fd_limit) a->fd_limit = a->diag_fd + 1;
  long hi = rsys3(__NR_fcntl, fd, F_DUPFD_CLOEXEC, a->fd_base);
  if (rsys_failed(hi)) die_errno(KITE_RESTORE_EXIT_HOST, "moving the image descriptor", hi);
  rsys1(__NR_close, fd);
  a->image_fd = (int)hi;
  if (a->image_fd + 1 > a->fd_limit) a->fd_limit = a->image_fd + 1;
  a->loaded_fd = move_high(a, loaded_fd, "--loaded-fd");
  a->run_fd = move_high(a, run_fd, "--run-fd");
  a->loaded_count = loaded_count;
  a->pages_fd = -1;
  if (pages != NULL) {
    /* Opened now, before we say we are ready, so that kite-remoted's writer finds a reader;
     * non-blocking, because no writer may be there yet (the restore phase polls). */
    long perr = 0;
    a->pages_fd = open_high(a, pages, O_RDONLY | O_NONBLOCK, &perr);
    if (a->pages_fd < 0) die_file("cannot open the page stream ", pages, perr);
    rc = rsys2(__NR_fstat, a->pages_fd, &st);
    if (rsys_failed(rc) || (st.st_mode & R_S_IFMT) != R_S_IFIFO) die_file("the page stream is not a FIFO: ", pages, 0);
  }

  /* Scratch: the args and per-region/per-fd arrays, in the window. */
  uint8_t* scratch = map_fixed(a->window_start + KITE_RESTORER_SCRATCH_OFF, KITE_RESTORER_SCRATCH_SIZE,
                               MAP_ANONYMOUS | MAP_NORESERVE, -1);
  struct kite_restorer_args* out = (struct kite_restorer_args*)scratch;
  uint8_t* next = scratch + ((sizeof *out + 63) & ~(size_t)63);
  a->region_fds = (int*)next;
  next += a->view.nregions * sizeof(int);
  a->image_fds = (int*)next;
  open_files(a);
  *out = *a;

  /* Everything that can fail cleanly is done. A process of a job tree says so and waits for
   * the root's word; the root, ready itself, gives it: no process of the tree runs unless
   * all can (a failed restore leaves the checkpointed original to be resumed, never a half
   * tree running beside it). */
  if (ready_fd >= 0) {
    char byte = 'r';
    long rc = rsys3(__NR_write, ready_fd, &byte, 1);
    if (rc != 1) die_errno(KITE_RESTORE_EXIT_HOST, "telling the tree's root we are ready", rc < 0 ? rc : -R_EINTR);
    rsys1(__NR_close, ready_fd);
    for (;;) {
      rc = rsys3(__NR_read, go_fd, &byte, 1);
      if (rc == -R_EINTR) continue;
      if (rc != 1) die(KITE_RESTORE_EXIT_HOST, "the job tree's root did not restore", " (another process of the tree failed)");
      break;
    }
    rsys1(__NR_close, go_fd);
  }
  if (release_fd >= 0) {
    char bytes[256];
    memset(bytes, 'g', sizeof bytes);
    for (int left = release_count; left > 0;) {
      long rc = rsys3(__NR_write, release_fd, bytes, left < (int)sizeof bytes ? (size_t)left : sizeof bytes);
      if (rc == -R_EINTR) continue;
      if (rsys_failed(rc)) die_errno(KITE_RESTORE_EXIT_HOST, "releasing the job tree", rc);
      left -= (int)rc;
    }
    rsys1(__NR_close, release_fd);
  }

  uint8_t* stack = map_fixed(a->window_start + KITE_RESTORER_STACK_OFF, KITE_RESTORER_STACK_SIZE,
                             MAP_ANONYMOUS, -1);
  uint64_t top = (uint64_t)(stack + KITE_RESTORER_STACK_SIZE - 64);
  __asm__ volatile(
      "mov %0, %%rsp\n"
      "call kite_restore\n"
      "ud2\n"
      :
      : "r"(top), "D"(out)
      : "memory");
  __builtin_unreachable();
}
