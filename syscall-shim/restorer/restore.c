/* kite-restore's restore phase: runs on the window's stack with only the args struct, replaces
 * the address space with the image's, restores the task state the kernel keeps, and jumps to
 * the restored shim's tail, which unmaps the window and rt_sigreturns on the saved frame.
 * Past the first munmap there is no way back: a failure prints why and exits with
 * KITE_RESTORE_EXIT_FAILED (the image is unchanged; the caller may try again elsewhere). */
#include "syscall-shim/image/crc32c.h"
#include "syscall-shim/restorer/restorer.h"
#include "syscall-shim/restorer/rlib.h"
#include "syscall-shim/restorer/rsys.h"

static int g_diag_fd = -1;

static void fail(const char* what, const char* detail, long err) __attribute__((noreturn));
static void fail(const char* what, const char* detail, long err) {
  char num[24];
  if (g_diag_fd >= 0) {
    r_msg(g_diag_fd, what, detail != NULL ? detail : "", err != 0 ? r_utoa((uint64_t)-err, num) : "");
  }
  kite_restorer_exit(KITE_RESTORE_EXIT_FAILED);
}

/* kite-restore's own file-backed pages become anonymous copies at the same addresses, so that
 * PR_SET_MM_MAP can replace the exe link (it refuses while the old exe is mapped). */
static void anonymize_self(const struct kite_restorer_args* a) {
  for (uint32_t i = 0; i < a->nown; i++) {
    const struct kite_restorer_vma* v = &a->own[i];
    if (!v->file || v->start < a->window_start || v->end > a->window_start + a->window_len) continue;
    uint64_t len = v->end - v->start;
    long tmp = rsys6(__NR_mmap, 0, (long)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rsys_failed(tmp)) fail("anonymizing the restorer: mmap error ", "", tmp);
    memcpy((void*)tmp, (const void*)v->start, len);
    long rc = rsys3(__NR_mprotect, tmp, len, v->prot);
    if (!rsys_failed(rc)) {
      rc = rsys5(__NR_mremap, tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (long)v->start);
    }
    if (rsys_failed(rc)) fail("anonymizing the restorer: error ", "", rc);
  }
}

/* Everything outside the window goes, except the vDSO and vvar pages (moved next). */
static void unmap_old(const struct kite_restorer_args* a) {
  for (uint32_t i = 0; i < a->nown; i++) {
    const struct kite_restorer_vma* v = &a->own[i];
    if (v->kind != 0) continue;
    if (v->start >= a->window_start && v->end <= a->window_start + a->window_len) continue;
    long rc = rsys2(__NR_munmap, v->start, v->end - v->start);
    if (rsys_failed(rc)) fail("unmapping the restorer's old mappings: error ", "", rc);
  }
}

static const struct kite_img_region* image_special(const struct kite_img_view* v, uint32_t kind) {
  for (uint64_t i = 0; i < v->nregions; i++) {
    if (v->regions[i].kind == kind) return &v->regions[i];
  }
  return NULL;
}

/* Moves [vvar], [vvar_vclock], [vdso] to the image's addresses, through a parking place in
 * the window so that no MREMAP_FIXED target overlaps its source. */
static void move_vdso(const struct kite_restorer_args* a) {
  static const uint32_t kinds[3] = {KITE_REGION_VVAR, KITE_REGION_VVAR_VCLOCK, KITE_REGION_VDSO};
  uint64_t park = a->window_start + KITE_RESTORER_PARK_OFF;
  uint64_t parked[3] = {0, 0, 0};
  for (int k = 0; k < 3; k++) {
    for (uint32_t i = 0; i < a->nown; i++) {
      const struct kite_restorer_vma* v = &a->own[i];
      if (v->kind != kinds[k]) continue;
      uint64_t len = v->end - v->start;
      if (image_special(&a->view, kinds[k]) == NULL) {
        rsys2(__NR_munmap, v->start, len);
        continue;
      }
      long rc = rsys5(__NR_mremap, v->start, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (long)park);
      if (rsys_failed(rc)) fail("parking the vDSO: error ", "", rc);
      parked[k] = park;
      park += len;
    }
  }
  for (int k = 0; k < 3; k++) {
    const struct kite_img_region* r = image_special(&a->view, kinds[k]);
    if (r == NULL || parked[k] == 0) continue;
    uint64_t len = r->end - r->start;
    long rc = rsys5(__NR_mremap, parked[k], len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (long)r->start);
    if (rsys_failed(rc)) fail("moving the vDSO into place: error ", "", rc);
  }
}

/* The page stream (--pages): PAGE_DATA's bytes in file order, from a FIFO opened
 * non-blocking. A writer that stalls for KITE_STREAM_STALL_MS, or goes away early, fails the restore
 * (the original is still stopped on its host, for the home to resume). */
#define KITE_STREAM_STALL_MS 30000
static uint64_t g_stream_pos; /* file offset of the next byte the stream delivers */

static void stream_read(const struct kite_restorer_args* a, uint8_t* dst, uint64_t len) {
  while (len > 0) {
    long n = rsys3(__NR_read, a->pages_fd, dst, len);
    if (n == -R_EINTR) continue;
    if (n == -R_EAGAIN || n == 0) {
      /* Empty (EAGAIN), or no writer (0): none yet, or it left. poll tells them apart: it
       * reports POLLHUP only for a writer that came after our open and went, and blocks
       * while none has come. */
      struct pollfd p = {a->pages_fd, POLLIN, 0};
      long rc = rsys3(__NR_poll, &p, 1, KITE_STREAM_STALL_MS);
      if (rc == 0) fail("the page stream stalled (no data from kite-remoted for 30 s)", NULL, 0);
      if (rc == -R_EINTR) continue;
      if (rsys_failed(rc)) fail("waiting for the page stream: error ", "", rc);
      if ((p.revents & POLLIN) == 0 && (p.revents & (POLLHUP | POLLERR)) != 0) {
        fail("the page stream ended early (the copy from the source host broke off)", NULL, 0);
      }
      continue;
    }
    if (rsys_failed(n)) fail("reading the page stream: error ", "", n);
    dst += n;
    len -= (uint64_t)n;
    g_stream_pos += (uint64_t)n;
  }
}

/* Fills [dst, dst+len) with the run's bytes at `offset` in the image. */
static void read_run(const struct kite_restorer_args* a, uint8_t* dst, uint64_t len, uint64_t offset) {
  if (a->pages_fd < 0) {
    uint64_t done = 0;
    while (done < len) {
      long n = rsys4(__NR_pread64, a->image_fd, dst + done, len - done, offset + done);
      if (n == -R_EINTR) continue;
      if (rsys_failed(n) || n == 0) fail("reading page data: error ", "", n == 0 ? -5 : n);
      done += (uint64_t)n;
    }
    return;
  }
  if (offset < g_stream_pos) fail("page runs are not in file order (cannot stream them)", NULL, 0);
  /* Bytes between runs (none from kite's dumper) are read into the run's own pages and
   * overwritten. */
  while (g_stream_pos < offset) {
    uint64_t gap = offset - g_stream_pos;
    stream_read(a, dst, gap < len ? gap : len);
  }
  stream_read(a, dst, len);
}

static void load_runs(const struct kite_restorer_args* a, uint64_t region, uint64_t* next_run) {
  const struct kite_img_view* v = &a->view;
  const struct kite_img_region* r = &v->regions[region];
  for (; *next_run < v->nruns && v->runs[*next_run].region == region; (*next_run)++) {
    const struct kite_img_page_run* run = &v->runs[*next_run];
    uint64_t len = (uint64_t)run->npages * KITE_IMG_PAGE_SIZE;
    uint8_t* dst = (uint8_t*)(r->start + run->page * KITE_IMG_PAGE_SIZE);
    rsys3(__NR_madvise, dst, len, MADV_POPULATE_WRITE); /* faster than faulting page by page */
    read_run(a, dst, len, run->data_offset);
    if (kite_crc32c(0, dst, len) != run->crc) {
      char num[24];
      fail("page data corrupted (checksum mismatch) in a run of region ", r_utoa(region, num), 0);
    }
  }
}

static void map_regions(const struct kite_restorer_args* a) {
  const struct kite_img_view* v = &a->view;
  uint64_t next_run = 0;
  for (uint64_t i = 0; i < v->nregions; i++) {
    const struct kite_img_region* r = &v->regions[i];
    uint64_t len = r->end - r->start;
    int prot = (int)r->prot, flags = MAP_FIXED_NOREPLACE, fd = -1;
    uint64_t off = 0;
    switch (r->kind) {
      case KITE_REGION_VDSO:
      case KITE_REGION_VVAR:
      case KITE_REGION_VVAR_VCLOCK:
        continue;
      case KITE_REGION_STACK:
        flags |= MAP_GROWSDOWN;
        /* fall through */
      case KITE_REGION_ANON:
        flags |= MAP_PRIVATE | MAP_ANONYMOUS;
        break;
      default: /* KITE_REGION_FILE */
        flags |= (r->flags & KITE_REGION_SHARED) ? MAP_SHARED : MAP_PRIVATE;
        fd = a->region_fds[i];
        off = r->file_offset;
        break;
    }
    int load_prot = r->saved_pages > 0 ? PROT_READ | PROT_WRITE : prot;
    long got = rsys6(__NR_mmap, (long)r->start, (long)len, load_prot, flags, fd, (long)off);
    if (rsys_failed(got) || (uint64_t)got != r->start) {
      char hex[24];
      fail("mapping the region at ", r_xtoa(r->start, hex), rsys_failed(got) ? got : -17);
    }
    if (r->saved_pages > 0) {
      load_runs(a, i, &next_run);
      if (load_prot != prot) {
        long rc = rsys3(__NR_mprotect, r->start, len, prot);
        if (rsys_failed(rc)) fail("protecting a region: error ", "", rc);
      }
    }
  }
}

/* The job tree's second barrier (restorer.h): nobody runs until every process has its memory. */
static void await_tree_loaded(const struct kite_restorer_args* a) {
  char bytes[256];
  if (a->loaded_fd < 0) return;
  if (a->loaded_count > 0) {
    for (int left = a->loaded_count; left > 0;) {
      long n = rsys3(__NR_read, a->loaded_fd, bytes, left < (int)sizeof bytes ? (size_t)left : sizeof bytes);
      if (n == -R_EINTR) continue;
      if (n <= 0) fail("another process of the job tree failed to load its memory (see above)", NULL, 0);
      left -= (int)n;
    }
    memset(bytes, 'g', sizeof bytes);
    for (int left = a->loaded_count; left > 0;) {
      long n = rsys3(__NR_write, a->run_fd, bytes, left < (int)sizeof bytes ? (size_t)left : sizeof bytes);
      if (n == -R_EINTR) continue;
      if (rsys_failed(n)) fail("letting the job tree run: error ", "", n);
      left -= (int)n;
    }
  } else {
    bytes[0] = 'l';
    long n;
    do n = rsys3(__NR_write, a->loaded_fd, bytes, 1);
    while (n == -R_EINTR);
    if (n != 1) fail("telling the job tree's root our memory is loaded: error ", "", n < 0 ? n : -5);
    rsys1(__NR_close, a->loaded_fd);
    do n = rsys3(__NR_read, a->run_fd, bytes, 1);
    while (n == -R_EINTR);
    if (n != 1) fail("the job tree's root did not load its memory (another process failed)", NULL, 0);
  }
}

static void set_mm(const struct kite_restorer_args* a) {
  const struct kite_img_process* p = a->view.process;
  struct prctl_mm_map m;
  memset(&m, 0, sizeof m);
  m.start_code = p->mm.start_code;
  m.end_code = p->mm.end_code;
  m.start_data = p->mm.start_data;
  m.end_data = p->mm.end_data;
  m.start_brk = p->mm.start_brk;
  m.brk = p->mm.brk;
  m.start_stack = p->mm.start_stack;
  m.arg_start = p->mm.arg_start;
  m.arg_end = p->mm.arg_end;
  m.env_start = p->mm.env_start;
  m.env_end = p->mm.env_end;
  static uint64_t auxv[KITE_IMG_AUXV_WORDS];
  memcpy(auxv, p->auxv, p->auxv_words * sizeof(uint64_t));
  m.auxv = (__u64*)auxv;
  m.auxv_size = p->auxv_words * (uint32_t)sizeof(uint64_t);
  m.exe_fd = a->exe_fd >= 0 ? (uint32_t)a->exe_fd : (uint32_t)-1;
  long rc = rsys5(__NR_prctl, PR_SET_MM, PR_SET_MM_MAP, &m, sizeof m, 0);
  if (rsys_failed(rc)) fail("PR_SET_MM_MAP (brk, stack, auxv, exe): error ", "", rc);
}

/* Descriptors: everything below fd_base is closed, the image's go to their numbers. */
static void restore_fds(const struct kite_restorer_args* a) {
  const struct kite_img_view* v = &a->view;
  rsys3(__NR_close_range, 0, a->fd_base - 1, 0);
  rsys3(__NR_close_range, a->fd_limit, ~0u, 0);
  for (uint64_t i = 0; i < v->nfds; i++) {
    const struct kite_img_fd* f = &v->fds[i];
    long rc = rsys3(__NR_dup3, a->image_fds[i], f->fd, (f->fd_flags & 1u) ? O_CLOEXEC : 0);
    if (rsys_failed(rc)) fail("placing a descriptor: error ", "", rc);
  }
}

static void restore_task(const struct kite_restorer_args* a) {
  const struct kite_img_process* p = a->view.process;
  long rc = rsys1(__NR_fchdir, a->cwd_fd);
  if (rsys_failed(rc)) fail("chdir: error ", "", rc);
  rsys1(__NR_umask, p->umask);
  for (uint32_t sig = 1; sig <= KITE_IMG_NSIG; sig++) {
    if (sig == R_SIGKILL || sig == R_SIGSTOP) continue;
    rc = rsys4(__NR_rt_sigaction, sig, &p->sigactions[sig - 1], 0, 8);
    if (rsys_failed(rc)) fail("restoring a signal disposition: error ", "", rc);
  }
  /* Limits: a hard limit above this host's current one cannot be raised by the image's user;
   * it is clamped (and the soft limit with it). */
  for (uint32_t i = 0; i < KITE_IMG_NRLIMIT; i++) {
    struct r_rlimit64 want = {p->rlimits[i].cur, p->rlimits[i].max}, now;
    rsys4(__NR_prlimit64, 0, i, 0, &now);
    rc = rsys4(__NR_prlimit64, 0, i, &want, 0);
    if (rc == -R_EPERM) {
      if (want.max > now.max) want.max = now.max;
      if (want.cur > want.max) want.cur = want.max;
      rc = rsys4(__NR_prlimit64, 0, i, &want, 0);
    }
    if (rsys_failed(rc)) fail("restoring a resource limit: error ", "", rc);
  }
  /* A leader leads again, under its new pid (already so when the caller made it one). */
  long self = rsys0(__NR_getpid);
  if (p->leader == KITE_LEADER_SESSION && rsys1(__NR_getsid, 0) != self) {
    rc = rsys0(__NR_setsid);
    if (rsys_failed(rc)) fail("setsid: error ", "", rc);
  } else if (p->leader == KITE_LEADER_GROUP && rsys1(__NR_getpgid, 0) != self) {
    rc = rsys2(__NR_setpgid, 0, 0);
    if (rsys_failed(rc)) fail("setpgid: error ", "", rc);
  }
  rsys1(__NR_personality, p->personality);
  rsys2(__NR_prctl, PR_SET_NAME, p->comm);
  rc = rsys2(__NR_arch_prctl, ARCH_SET_FS, p->fs_base);
  if (rsys_failed(rc)) fail("setting the thread pointer: error ", "", rc);
  rsys2(__NR_arch_prctl, ARCH_SET_GS, p->gs_base);
}

/* What the kernel keeps about the thread for libc, and the shim's fixup. */
static void restore_thread(const struct kite_restorer_args* a) {
  const struct kite_img_process* p = a->view.process;
  long tid = rsys1(__NR_set_tid_address, p->tid_address);
  if (p->tid_address != 0) *(volatile int32_t*)p->tid_address = (int32_t)tid; /* glibc's cache */
  if (p->robust_list != 0) {
    long rc = rsys2(__NR_set_robust_list, p->robust_list, p->robust_list_len);
    if (rsys_failed(rc)) fail("set_robust_list: error ", "", rc);
  }
  if (p->rseq_addr != 0) {
    long rc = rsys4(__NR_rseq, p->rseq_addr, p->rseq_len, 0, p->rseq_sig);
    if (rsys_failed(rc)) fail("rseq registration: error ", "", rc);
  }
  volatile struct kite_restore_fixup* f = (volatile struct kite_restore_fixup*)p->fixup_addr;
  if (f->magic != KITE_FIXUP_MAGIC) fail("the image's shim has no restore fixup area", NULL, 0);
  long pid = rsys0(__NR_getpid);
  f->real_pid = (int32_t)pid;
  f->real_tid = (int32_t)tid;
  f->host_pid = a->host_pid;
  f->old_pid = p->pid;
  f->restore_count = f->restore_count + 1;
  for (uint64_t i = 0; i < a->view.npending; i++) {
    int32_t sig;
    memcpy(&sig, a->view.pending[i].bytes, sizeof sig);
    long rc = rsys4(__NR_rt_tgsigqueueinfo, pid, tid, sig, a->view.pending[i].bytes);
    if (rsys_failed(rc)) fail("requeueing a pending signal: error ", "", rc);
  }
  for (int which = 0; which < R_ITIMER_COUNT; which++) {
    const struct kite_img_itimer* t = &p->itimers[which];
    struct r_itimerval v = {{t->interval_sec, t->interval_usec}, {t->value_sec, t->value_usec}};
    if (v.it_value.tv_sec == 0 && v.it_value.tv_usec == 0) continue;
    long rc = rsys3(__NR_setitimer, which, &v, 0);
    if (rsys_failed(rc)) fail("setitimer: error ", "", rc);
  }
}

void kite_restore(struct kite_restorer_args* a) {
  g_diag_fd = a->diag_fd;
  const struct kite_img_process* p = a->view.process;
  anonymize_self(a);
  unmap_old(a);
  move_vdso(a);
  g_stream_pos = a->view.page_data_offset;
  map_regions(a);
  await_tree_loaded(a);
  static const uint8_t kTail[KITE_RESTORE_TAIL_LEN] = KITE_RESTORE_TAIL_BYTES;
  if (memcmp((const void*)p->restore_tail, kTail, sizeof kTail) != 0) {
    fail("the image's restore tail is not the kite shim's", NULL, 0);
  }
  set_mm(a);
  restore_fds(a);
  restore_task(a);
  restore_thread(a);
  rsys2(__NR_prctl, R_PR_SET_DUMPABLE, p->dumpable);
  if (a->keep_cap) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    long rc = rsys2(__NR_capset, &h, d);
    if (rsys_failed(rc)) fail("dropping the last capability: error ", "", rc);
  }
  /* Our descriptors go (all >= fd_base, above every restored one); the image file stays
   * mapped in the window until the tail unmaps it. */
  rsys3(__NR_close_range, a->fd_base, ~0u, 0);
  uint64_t frame = p->sigframe, tail = p->restore_tail;
  __asm__ volatile(
      "mov %0, %%rsp\n"
      "jmp *%1\n"
      :
      : "r"(frame), "r"(tail), "D"(a->window_start), "S"(a->window_len)
      : "memory");
  __builtin_unreachable();
}
