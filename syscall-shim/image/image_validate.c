/* Image validation (see image_validate.h). Freestanding: the restorer links it without libc,
 * so it formats its own messages and uses no library calls. Every size computation is checked
 * for overflow before it is used, because every field may be hostile. */
#include "syscall-shim/image/image_validate.h"

#include "syscall-shim/image/crc32c.h"

/* ---- Messages --------------------------------------------------------------------------- */

struct msgbuf {
  char* p;
  size_t left; /* bytes left before the terminating NUL */
};

static void put_str(struct msgbuf* b, const char* s) {
  for (; *s != '\0' && b->left > 0; s++, b->left--) *b->p++ = *s;
  *b->p = '\0';
}

static void put_u64(struct msgbuf* b, uint64_t v, int hex) {
  char tmp[24];
  int n = 0;
  unsigned base = hex ? 16 : 10;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v != 0);
  if (hex) put_str(b, "0x");
  char out[24];
  for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = '\0';
  put_str(b, out);
}

/* fail(err, "what", index, "problem"): "what[index]: problem"; index < 0 omits "[index]". */
static int fail(struct kite_img_error* err, const char* what, int64_t index, const char* problem) {
  struct msgbuf b = {err->msg, sizeof err->msg - 1};
  err->msg[0] = '\0';
  put_str(&b, what);
  if (index >= 0) {
    put_str(&b, "[");
    put_u64(&b, (uint64_t)index, 0);
    put_str(&b, "]");
  }
  put_str(&b, ": ");
  put_str(&b, problem);
  return -1;
}

/* The same with a number appended: "what[index]: problem <value>". */
static int fail_val(struct kite_img_error* err, const char* what, int64_t index,
                    const char* problem, uint64_t value, int hex) {
  fail(err, what, index, problem);
  size_t used = 0;
  while (err->msg[used] != '\0') used++;
  struct msgbuf b = {err->msg + used, sizeof err->msg - 1 - used};
  put_str(&b, " ");
  put_u64(&b, value, hex);
  return -1;
}

/* ---- Helpers ---------------------------------------------------------------------------- */

static int is_aligned(uint64_t v, uint64_t a) { return (v & (a - 1)) == 0; }

static int valid_str(const struct kite_img_view* v, struct kite_img_str s, int required) {
  if (s.offset == 0 && s.len == 0) return !required;
  if (s.len == 0 || s.len > KITE_IMG_MAX_PATH) return 0;
  uint64_t end = (uint64_t)s.offset + s.len; /* no overflow: both < 2^32 */
  if (end >= v->strings_size) return 0;
  if (v->strings[end] != '\0') return 0;
  for (uint64_t i = s.offset; i < end; i++) {
    if (v->strings[i] == '\0') return 0;
  }
  return 1;
}

static int valid_path(const struct kite_img_view* v, struct kite_img_str s) {
  return valid_str(v, s, 1) && v->strings[s.offset] == '/';
}

const char* kite_img_string(const struct kite_img_view* view, struct kite_img_str s) {
  if (s.len == 0) return "";
  return view->strings + s.offset;
}

/* Index of the region holding [addr, addr + len), or -1. Regions are sorted and disjoint. */
static int64_t region_holding(const struct kite_img_view* v, uint64_t addr, uint64_t len) {
  if (addr + len < addr) return -1;
  uint64_t lo = 0, hi = v->nregions;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (v->regions[mid].end <= addr) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == v->nregions) return -1;
  const struct kite_img_region* r = &v->regions[lo];
  if (addr < r->start || addr + len > r->end) return -1;
  return (int64_t)lo;
}

static int writable_memory(const struct kite_img_view* v, uint64_t addr, uint64_t len) {
  int64_t i = region_holding(v, addr, len);
  if (i < 0) return 0;
  const struct kite_img_region* r = &v->regions[i];
  return (r->prot & 2u) != 0 && (r->flags & KITE_REGION_SHARED) == 0 &&
         (r->kind == KITE_REGION_ANON || r->kind == KITE_REGION_STACK ||
          r->kind == KITE_REGION_FILE);
}

static int user_addr(uint64_t a) { return a < KITE_IMG_USER_LIMIT; }

/* ---- Header and section table ----------------------------------------------------------- */

static const uint32_t kEntrySize[KITE_SEC_TYPE_LIMIT] = {
    0,
    sizeof(struct kite_img_process),
    sizeof(struct kite_img_region),
    sizeof(struct kite_img_page_run),
    sizeof(struct kite_img_fd),
    sizeof(struct kite_img_siginfo),
    1,
    1,
};

static const uint64_t kMaxCount[KITE_SEC_TYPE_LIMIT] = {
    0, 1, KITE_IMG_MAX_REGIONS, KITE_IMG_MAX_RUNS, KITE_IMG_MAX_FDS, KITE_IMG_MAX_PENDING,
    KITE_IMG_MAX_STRINGS, (uint64_t)1 << 46,
};

static int check_header(uint64_t file_size, kite_img_at_fn at, void* ctx,
                        struct kite_img_view* v, struct kite_img_error* err) {
  if (file_size < KITE_IMG_HEADER_RESERVED) {
    return fail_val(err, "image", -1, "truncated: file is shorter than the header area, bytes:",
                    file_size, 0);
  }
  const struct kite_img_header* h =
      (const struct kite_img_header*)at(ctx, 0, sizeof(struct kite_img_header));
  if (h == NULL) return fail(err, "image", -1, "cannot read the header");
  static const char kMagic[8] = KITE_IMG_MAGIC;
  for (int i = 0; i < 8; i++) {
    if (h->magic[i] != kMagic[i]) return fail(err, "image", -1, "bad magic: not a kite image");
  }
  if (h->version != KITE_IMG_VERSION) {
    return fail_val(err, "image", -1, "unsupported version (this kite-restore reads 1):",
                    h->version, 0);
  }
  if (h->header_size != sizeof(struct kite_img_header) ||
      h->section_entry_size != sizeof(struct kite_img_section)) {
    return fail(err, "image", -1, "header or section entry size does not match version 1");
  }
  struct kite_img_header copy = *h;
  copy.header_crc = 0;
  if (kite_crc32c(0, &copy, sizeof copy) != h->header_crc) {
    return fail(err, "image", -1, "header checksum mismatch (corrupted header)");
  }
  if (h->flags != 0 || h->reserved != 0) return fail(err, "image", -1, "unknown header flags");
  if (h->file_size != file_size) {
    return fail_val(err, "image", -1, "truncated or extended: header says bytes", h->file_size,
                    0);
  }
  v->header = h;

  const struct kite_img_section* sec[KITE_SEC_TYPE_LIMIT] = {0};
  for (uint32_t i = 0; i < KITE_IMG_MAX_SECTIONS; i++) {
    const struct kite_img_section* s = &h->sections[i];
    if (s->type == KITE_SEC_NONE) {
      if (s->entry_size || s->offset || s->size || s->count || s->crc || s->reserved) {
        return fail(err, "section", i, "unused slot is not zero");
      }
      continue;
    }
    if (s->type >= KITE_SEC_TYPE_LIMIT) return fail_val(err, "section", i, "unknown type", s->type, 0);
    if (sec[s->type] != NULL) return fail_val(err, "section", i, "duplicate type", s->type, 0);
    if (s->reserved != 0) return fail(err, "section", i, "reserved field not zero");
    if (s->entry_size != kEntrySize[s->type]) return fail(err, "section", i, "wrong entry size");
    if (s->count > kMaxCount[s->type]) return fail_val(err, "section", i, "absurd count", s->count, 0);
    if (s->size != s->count * s->entry_size) return fail(err, "section", i, "size is not count * entry size");
    uint64_t align = s->type == KITE_SEC_PAGE_DATA ? KITE_IMG_PAGE_SIZE : 8;
    if (!is_aligned(s->offset, align) || s->offset < KITE_IMG_HEADER_RESERVED) {
      return fail_val(err, "section", i, "misplaced offset", s->offset, 1);
    }
    if (s->offset > file_size || s->size > file_size - s->offset) {
      return fail(err, "section", i, "extends past the end of the file (truncated image?)");
    }
    if (s->type == KITE_SEC_PAGE_DATA && s->crc != 0) return fail(err, "section", i, "page data has a section crc");
    sec[s->type] = s;
  }
  for (uint32_t t = 1; t < KITE_SEC_TYPE_LIMIT; t++) {
    if (sec[t] == NULL) return fail_val(err, "image", -1, "missing section of type", t, 0);
    if (t == KITE_SEC_PROCESS && sec[t]->count != 1) return fail(err, "image", -1, "process section must hold one entry");
    for (uint32_t u = 1; u < t; u++) {
      const struct kite_img_section* a = sec[t];
      const struct kite_img_section* b = sec[u];
      if (a->size != 0 && b->size != 0 && a->offset < b->offset + b->size &&
          b->offset < a->offset + a->size) {
        return fail_val(err, "image", -1, "sections overlap, types", t * 10 + u, 0);
      }
    }
  }
  /* Fetch and checksum the metadata sections. */
  const void* p[KITE_SEC_TYPE_LIMIT] = {0};
  for (uint32_t t = 1; t < KITE_SEC_TYPE_LIMIT; t++) {
    if (t == KITE_SEC_PAGE_DATA) continue;
    const struct kite_img_section* s = sec[t];
    static const char kEmpty[8] = {0};
    p[t] = s->size == 0 ? (const void*)kEmpty : at(ctx, s->offset, s->size);
    if (p[t] == NULL) return fail_val(err, "image", -1, "cannot read section of type", t, 0);
    if (!is_aligned((uint64_t)(uintptr_t)p[t], 8)) return fail(err, "image", -1, "section buffer misaligned");
    if (kite_crc32c(0, p[t], s->size) != s->crc) {
      return fail_val(err, "image", -1, "checksum mismatch in section of type", t, 0);
    }
  }
  v->process = (const struct kite_img_process*)p[KITE_SEC_PROCESS];
  v->regions = (const struct kite_img_region*)p[KITE_SEC_REGIONS];
  v->nregions = sec[KITE_SEC_REGIONS]->count;
  v->runs = (const struct kite_img_page_run*)p[KITE_SEC_PAGE_RUNS];
  v->nruns = sec[KITE_SEC_PAGE_RUNS]->count;
  v->fds = (const struct kite_img_fd*)p[KITE_SEC_FDS];
  v->nfds = sec[KITE_SEC_FDS]->count;
  v->pending = (const struct kite_img_siginfo*)p[KITE_SEC_PENDING];
  v->npending = sec[KITE_SEC_PENDING]->count;
  v->strings = (const char*)p[KITE_SEC_STRINGS];
  v->strings_size = sec[KITE_SEC_STRINGS]->size;
  v->page_data_offset = sec[KITE_SEC_PAGE_DATA]->offset;
  v->page_data_size = sec[KITE_SEC_PAGE_DATA]->size;
  return 0;
}

/* ---- Sections --------------------------------------------------------------------------- */

static int check_regions(struct kite_img_view* v, struct kite_img_error* err) {
  if (v->nregions == 0) return fail(err, "regions", -1, "none");
  int seen[KITE_REGION_KIND_LIMIT] = {0};
  for (uint64_t i = 0; i < v->nregions; i++) {
    const struct kite_img_region* r = &v->regions[i];
    if (!is_aligned(r->start, KITE_IMG_PAGE_SIZE) || !is_aligned(r->end, KITE_IMG_PAGE_SIZE)) {
      return fail_val(err, "regions", i, "not page-aligned, start", r->start, 1);
    }
    if (r->start >= r->end) return fail_val(err, "regions", i, "empty or inverted, start", r->start, 1);
    if (r->start < KITE_IMG_MIN_ADDR || r->end > KITE_IMG_USER_LIMIT) {
      return fail_val(err, "regions", i, "outside user space, start", r->start, 1);
    }
    if (i > 0 && r->start < v->regions[i - 1].end) {
      return fail_val(err, "regions", i, "overlaps or is out of order with the previous one, start",
                      r->start, 1);
    }
    if (r->prot > 7u) return fail(err, "regions", i, "bad protection bits");
    if ((r->flags & ~KITE_REGION_SHARED) != 0 || r->reserved != 0) return fail(err, "regions", i, "unknown flags");
    if (r->kind == 0 || r->kind >= KITE_REGION_KIND_LIMIT) return fail_val(err, "regions", i, "unknown kind", r->kind, 0);
    if (r->kind == KITE_REGION_FILE) {
      if (!valid_path(v, r->path)) return fail(err, "regions", i, "bad file path");
      if (!is_aligned(r->file_offset, KITE_IMG_PAGE_SIZE) ||
          r->file_offset > (UINT64_MAX >> 1) - (r->end - r->start)) {
        return fail(err, "regions", i, "bad file offset");
      }
      if (r->mtime_nsec < 0 || r->mtime_nsec >= 1000000000) return fail(err, "regions", i, "bad mtime");
      if ((r->flags & KITE_REGION_SHARED) && (r->prot & 2u)) {
        return fail(err, "regions", i, "shared writable mapping");
      }
    } else {
      if (r->path.offset != 0 || r->path.len != 0 || r->file_offset != 0 || r->flags != 0) {
        return fail(err, "regions", i, "file fields set on a non-file region");
      }
      if (r->kind != KITE_REGION_ANON && seen[r->kind]++) {
        return fail_val(err, "regions", i, "second region of unique kind", r->kind, 0);
      }
    }
    int special = r->kind == KITE_REGION_VDSO || r->kind == KITE_REGION_VVAR ||
                  r->kind == KITE_REGION_VVAR_VCLOCK;
    if (special && r->saved_pages != 0) return fail(err, "regions", i, "vdso/vvar with saved pages");
    if (r->saved_pages > (r->end - r->start) / KITE_IMG_PAGE_SIZE) {
      return fail(err, "regions", i, "more saved pages than pages");
    }
  }
  return 0;
}

static int check_runs(struct kite_img_view* v, struct kite_img_error* err) {
  uint64_t counted_region = 0, counted = 0;
  for (uint64_t i = 0; i < v->nruns; i++) {
    const struct kite_img_page_run* run = &v->runs[i];
    if (run->region >= v->nregions) return fail_val(err, "page_runs", i, "bad region index", run->region, 0);
    if (run->npages == 0 || run->npages > KITE_IMG_MAX_RUN_PAGES || run->reserved != 0) {
      return fail_val(err, "page_runs", i, "bad page count", run->npages, 0);
    }
    const struct kite_img_region* r = &v->regions[run->region];
    uint64_t pages = (r->end - r->start) / KITE_IMG_PAGE_SIZE;
    if (run->page >= pages || run->npages > pages - run->page) {
      return fail(err, "page_runs", i, "extends past its region");
    }
    if (r->kind == KITE_REGION_VDSO || r->kind == KITE_REGION_VVAR ||
        r->kind == KITE_REGION_VVAR_VCLOCK) {
      return fail(err, "page_runs", i, "pages for a vdso/vvar region");
    }
    if (i > 0) {
      const struct kite_img_page_run* prev = &v->runs[i - 1];
      if (run->region < prev->region ||
          (run->region == prev->region && run->page < prev->page + prev->npages)) {
        return fail(err, "page_runs", i, "out of order or overlapping the previous run");
      }
    }
    uint64_t bytes = (uint64_t)run->npages * KITE_IMG_PAGE_SIZE;
    if (!is_aligned(run->data_offset, KITE_IMG_PAGE_SIZE) ||
        run->data_offset < v->page_data_offset ||
        run->data_offset - v->page_data_offset > v->page_data_size ||
        bytes > v->page_data_size - (run->data_offset - v->page_data_offset)) {
      return fail_val(err, "page_runs", i, "data outside the page data section, offset",
                      run->data_offset, 1);
    }
    /* saved_pages of each region must equal the pages its runs cover. */
    if (run->region != counted_region) {
      if (counted != v->regions[counted_region].saved_pages) {
        return fail_val(err, "regions", counted_region, "saved_pages disagrees with its page runs:",
                        counted, 0);
      }
      for (uint64_t k = counted_region + 1; k < run->region; k++) {
        if (v->regions[k].saved_pages != 0) return fail(err, "regions", k, "saved_pages without page runs");
      }
      counted_region = run->region;
      counted = 0;
    }
    counted += run->npages;
  }
  if (counted != v->regions[counted_region].saved_pages) {
    return fail_val(err, "regions", counted_region, "saved_pages disagrees with its page runs:",
                    counted, 0);
  }
  for (uint64_t k = counted_region + 1; k < v->nregions; k++) {
    if (v->regions[k].saved_pages != 0) return fail(err, "regions", k, "saved_pages without page runs");
  }
  return 0;
}

static int check_fds(struct kite_img_view* v, struct kite_img_error* err) {
  for (uint64_t i = 0; i < v->nfds; i++) {
    const struct kite_img_fd* f = &v->fds[i];
    if (f->fd < 0 || f->fd >= (1 << 20)) return fail_val(err, "fds", i, "bad descriptor number", (uint32_t)f->fd, 0);
    if (i > 0 && f->fd <= v->fds[i - 1].fd) return fail(err, "fds", i, "not sorted or duplicated");
    if (f->kind == 0 || f->kind >= KITE_FD_KIND_LIMIT) return fail(err, "fds", i, "unknown kind");
    if (f->kind == KITE_FD_STDIO) {
      if (f->path.offset != 0 || f->path.len != 0) return fail(err, "fds", i, "a standard stream with a path");
      if (f->offset < 0 || f->offset > 2) return fail(err, "fds", i, "bad standard stream number");
    } else if (f->kind == KITE_FD_PIPE) {
      if (f->path.offset != 0 || f->path.len != 0) return fail(err, "fds", i, "a pipe with a path");
      if (f->offset <= 0) return fail(err, "fds", i, "bad pipe identity");
      if ((f->open_flags & 3u) != 0 && (f->open_flags & 3u) != 1) return fail(err, "fds", i, "a pipe end open for both directions");
    } else {
      if (!valid_path(v, f->path)) return fail(err, "fds", i, "bad path");
      if (f->offset < -1) return fail(err, "fds", i, "bad offset");
    }
    if ((f->fd_flags & ~1u) != 0) return fail(err, "fds", i, "unknown descriptor flags");
  }
  return 0;
}

static int check_process(struct kite_img_view* v, struct kite_img_error* err) {
  const struct kite_img_process* p = v->process;
  if (p->ngroups > KITE_IMG_MAX_GROUPS) return fail_val(err, "process", -1, "too many groups", p->ngroups, 0);
  int comm_ok = 0;
  for (int i = 0; i < 16; i++) {
    if (p->comm[i] == '\0') comm_ok = 1;
  }
  if (!comm_ok) return fail(err, "process", -1, "comm not terminated");
  if (!valid_path(v, p->cwd)) return fail(err, "process", -1, "bad cwd");
  if (!valid_path(v, p->exe_path)) return fail(err, "process", -1, "bad exe path");
  if (p->umask > 0777) return fail(err, "process", -1, "bad umask");
  if (p->dumpable > 1) return fail(err, "process", -1, "bad dumpable");
  if (p->leader > KITE_LEADER_GROUP || p->reserved != 0) return fail(err, "process", -1, "bad leader");
  if (p->auxv_words > KITE_IMG_AUXV_WORDS || p->auxv_words < 2 || (p->auxv_words & 1) ||
      p->auxv[p->auxv_words - 2] != 0) {
    return fail(err, "process", -1, "bad auxv");
  }
  for (int i = 0; i < 3; i++) {
    const struct kite_img_itimer* t = &p->itimers[i];
    if (t->interval_sec < 0 || t->value_sec < 0 || t->interval_usec < 0 || t->value_usec < 0 ||
        t->interval_usec >= 1000000 || t->value_usec >= 1000000) {
      return fail_val(err, "process", -1, "bad interval timer", (uint64_t)i, 0);
    }
  }
  for (uint32_t i = 0; i < KITE_IMG_NRLIMIT; i++) {
    if (p->rlimits[i].cur > p->rlimits[i].max) return fail_val(err, "process", -1, "rlimit cur > max:", i, 0);
  }
  if (p->sigactions[9 - 1].handler != 0 || p->sigactions[19 - 1].handler != 0) {
    return fail(err, "process", -1, "SIGKILL/SIGSTOP with a handler");
  }
  const struct kite_img_mm* m = &p->mm;
  const uint64_t* f = &m->start_code;
  for (unsigned i = 0; i < sizeof *m / sizeof *f; i++) {
    if (f[i] < KITE_IMG_MIN_ADDR || !user_addr(f[i])) return fail_val(err, "process", -1, "mm field outside user space:", i, 0);
  }
  if (!(m->start_code < m->end_code && m->start_data <= m->end_data && m->start_brk <= m->brk &&
        m->arg_start <= m->arg_end && m->env_start <= m->env_end)) {
    return fail(err, "process", -1, "mm fields out of order");
  }
  if (!user_addr(p->fs_base) || !user_addr(p->gs_base)) return fail(err, "process", -1, "fs/gs base outside user space");
  if (!is_aligned(p->sigframe, 8) || p->sigframe < 8 ||
      !writable_memory(v, p->sigframe - 8, 1024)) {
    return fail_val(err, "process", -1, "signal frame not in writable memory:", p->sigframe, 1);
  }
  if (!is_aligned(p->fixup_addr, 8) ||
      !writable_memory(v, p->fixup_addr, sizeof(struct kite_restore_fixup))) {
    return fail_val(err, "process", -1, "restore fixup not in writable memory:", p->fixup_addr, 1);
  }
  int64_t tail = region_holding(v, p->restore_tail, KITE_RESTORE_TAIL_LEN);
  if (tail < 0 || (v->regions[tail].prot & 4u) == 0) {
    return fail_val(err, "process", -1, "restore tail not in executable memory:", p->restore_tail, 1);
  }
  if (p->tid_address != 0 && (!is_aligned(p->tid_address, 4) || !writable_memory(v, p->tid_address, 4))) {
    return fail(err, "process", -1, "tid address not in writable memory");
  }
  if (p->robust_list != 0 && (p->robust_list_len != 24 || !user_addr(p->robust_list))) {
    return fail(err, "process", -1, "bad robust list");
  }
  if (p->rseq_addr != 0 && (p->rseq_len < 32 || p->rseq_len > 4096 || !is_aligned(p->rseq_addr, 32) ||
                            !writable_memory(v, p->rseq_addr, p->rseq_len))) {
    return fail(err, "process", -1, "bad rseq registration");
  }
  for (uint64_t i = 0; i < v->npending; i++) {
    int32_t signo;
    __builtin_memcpy(&signo, v->pending[i].bytes, 4);
    if (signo < 1 || signo > 64 || signo == 9 || signo == 19) {
      return fail_val(err, "pending", i, "bad signal number", (uint32_t)signo, 0);
    }
  }
  return 0;
}

int kite_img_validate(uint64_t file_size, kite_img_at_fn at, void* ctx,
                      struct kite_img_view* view, struct kite_img_error* err) {
  err->msg[0] = '\0';
  struct kite_img_view v = {0};
  if (check_header(file_size, at, ctx, &v, err) != 0) return -1;
  if (v.strings_size > 0 && v.strings[v.strings_size - 1] != '\0') {
    return fail(err, "strings", -1, "not NUL-terminated");
  }
  if (check_regions(&v, err) != 0 || check_runs(&v, err) != 0 || check_fds(&v, err) != 0 ||
      check_process(&v, err) != 0) {
    return -1;
  }
  *view = v;
  return 0;
}

int kite_img_range_free(const struct kite_img_view* view, uint64_t start, uint64_t end,
                        struct kite_img_error* err) {
  for (uint64_t i = 0; i < view->nregions; i++) {
    const struct kite_img_region* r = &view->regions[i];
    if (r->start < end && start < r->end) {
      return fail_val(err, "regions", i, "overlaps the restorer's own range, start", r->start, 1);
    }
  }
  return 0;
}

struct buffer_ctx {
  const uint8_t* data;
  uint64_t size;
};

static const void* buffer_at(void* ctx, uint64_t off, uint64_t len) {
  const struct buffer_ctx* b = (const struct buffer_ctx*)ctx;
  if (off > b->size || len > b->size - off) return NULL;
  return b->data + off;
}

int kite_img_validate_buffer(const void* image, uint64_t size, struct kite_img_view* view,
                             struct kite_img_error* err) {
  struct buffer_ctx b = {(const uint8_t*)image, size};
  return kite_img_validate(size, buffer_at, &b, view, err);
}
