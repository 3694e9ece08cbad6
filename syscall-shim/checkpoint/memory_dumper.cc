// Memory regions and page runs of a checkpoint (see memory_dumper.h).
#include "syscall-shim/checkpoint/memory_dumper.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>

#include "syscall-shim/checkpoint/proc_files.h"
#include "syscall-shim/checkpoint/raw_syscall.h"
#include "syscall-shim/image/crc32c.h"

namespace kite::shim {
namespace {

constexpr size_t kPage = KITE_IMG_PAGE_SIZE;
constexpr size_t kMapsCap = size_t{16} << 20;
constexpr uint64_t kPmPresent = uint64_t{1} << 63;
constexpr uint64_t kPmSwap = uint64_t{1} << 62;
constexpr uint64_t kPmFile = uint64_t{1} << 61;
constexpr size_t kPagemapBatch = 4096;  // entries per pread of /proc/self/pagemap

bool EndsWith(const char* s, size_t len, const char* suffix) {
  size_t n = strlen(suffix);
  return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

bool StartsWith(const char* s, size_t len, const char* prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(s, prefix, n) == 0;
}

bool PageIsZero(const void* page) {
  const uint64_t* w = static_cast<const uint64_t*>(page);
  uint64_t acc = 0;
  for (size_t i = 0; i < kPage / 8; ++i) acc |= w[i];
  return acc == 0;
}

}  // namespace

bool MemoryDumper::ReadRegions(uintptr_t exclude_start, uintptr_t exclude_end) {
  if (!regions_.Init(arena_, KITE_IMG_MAX_REGIONS)) return err_->Set("checkpoint arena exhausted");
  char* maps = static_cast<char*>(arena_->Alloc(kMapsCap));
  if (maps == nullptr) return err_->Set("checkpoint arena exhausted");
  long n = ReadWholeFile("/proc/self/maps", maps, kMapsCap);
  if (raw::Failed(n)) return err_->SetErrno("reading /proc/self/maps", n);
  const char* p = maps;
  const char* end = maps + n;
  while (p < end) {
    const char* eol = static_cast<const char*>(memchr(p, '\n', static_cast<size_t>(end - p)));
    if (eol == nullptr) eol = end;
    if (!AddLine(p, eol, exclude_start, exclude_end)) return false;
    p = eol + 1;
  }
  return true;
}

bool MemoryDumper::AddLine(const char* line, const char* end, uintptr_t exclude_start,
                           uintptr_t exclude_end) {
  // "start-end perms offset major:minor inode   path"
  const char* p = line;
  uint64_t start, stop, offset, major, minor, inode;
  if (!ParseUnsigned(&p, 16, &start) || *p++ != '-' || !ParseUnsigned(&p, 16, &stop) ||
      *p++ != ' ' || end - p < 5) {
    return err_->Set("parsing /proc/self/maps", "bad address range");
  }
  char perms[4] = {p[0], p[1], p[2], p[3]};
  p += 4;
  SkipBlanks(&p);
  if (!ParseUnsigned(&p, 16, &offset)) return err_->Set("parsing /proc/self/maps", "bad offset");
  SkipBlanks(&p);
  if (!ParseUnsigned(&p, 16, &major) || *p++ != ':' || !ParseUnsigned(&p, 16, &minor)) {
    return err_->Set("parsing /proc/self/maps", "bad device");
  }
  SkipBlanks(&p);
  if (!ParseUnsigned(&p, 10, &inode)) return err_->Set("parsing /proc/self/maps", "bad inode");
  SkipBlanks(&p);
  const char* path = p;
  size_t path_len = static_cast<size_t>(end - p);

  if (start >= exclude_start && stop <= exclude_end) return true;  // the dump's own arena
  if (path_len > 0 && StartsWith(path, path_len, "[vsyscall]")) return true;

  char what[160];
  TextBuf w(what, sizeof what);
  w.Str("mapping ").Hex(start).Str("-").Hex(stop);
  if (path_len > 0) {
    char name[96];
    size_t k = path_len < sizeof name - 1 ? path_len : sizeof name - 1;
    memcpy(name, path, k);
    name[k] = '\0';
    w.Str(" ").Str(name);
  }

  kite_img_region* r = regions_.Add();
  if (r == nullptr) return err_->Set(what, "too many mappings");
  r->start = start;
  r->end = stop;
  r->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
            (perms[2] == 'x' ? PROT_EXEC : 0);
  bool shared = perms[3] == 's';

  if (path_len == 0 || StartsWith(path, path_len, "[anon:") ||
      (path_len == 6 && memcmp(path, "[heap]", 6) == 0)) {
    if (shared) return err_->Set(what, "shared anonymous memory (not supported yet)");
    r->kind = KITE_REGION_ANON;
    return true;
  }
  if (path_len == 7 && memcmp(path, "[stack]", 7) == 0) {
    r->kind = KITE_REGION_STACK;
    return true;
  }
  if (path_len == 6 && memcmp(path, "[vdso]", 6) == 0) {
    r->kind = KITE_REGION_VDSO;
    return true;
  }
  if (path_len == 6 && memcmp(path, "[vvar]", 6) == 0) {
    r->kind = KITE_REGION_VVAR;
    return true;
  }
  if (path_len == 13 && memcmp(path, "[vvar_vclock]", 13) == 0) {
    r->kind = KITE_REGION_VVAR_VCLOCK;
    return true;
  }
  if (path[0] != '/') return err_->Set(what, "special mapping that cannot be restored");
  if (shared && (StartsWith(path, path_len, "/dev/zero") || StartsWith(path, path_len, "/SYSV") ||
                 StartsWith(path, path_len, "/memfd:"))) {
    return err_->Set(what, "shared memory (not supported yet)");
  }
  if (EndsWith(path, path_len, " (deleted)")) return err_->Set(what, "mapping of a deleted file");
  if (shared && (r->prot & PROT_WRITE)) return err_->Set(what, "shared writable file mapping");

  r->kind = KITE_REGION_FILE;
  r->flags = shared ? KITE_REGION_SHARED : 0;
  r->file_offset = offset;
  if (!strings_->Add(path, path_len, &r->path)) return err_->Set(what, "path too long or string table full");
  struct stat st;
  long s = StatPath(strings_->Get(r->path), &st);
  if (raw::Failed(s)) return err_->SetErrno(what, s);
  if (!S_ISREG(st.st_mode)) return err_->Set(what, "mapping of a device or special file");
  if (st.st_ino != inode || major(st.st_dev) != major || minor(st.st_dev) != minor) {
    return err_->Set(what, "the file at this path was replaced since it was mapped");
  }
  r->dev = st.st_dev;
  r->inode = st.st_ino;
  r->file_size = static_cast<uint64_t>(st.st_size);
  r->mtime_sec = st.st_mtim.tv_sec;
  r->mtime_nsec = st.st_mtim.tv_nsec;
  return true;
}

bool MemoryDumper::WritePages(ImageWriter* writer) {
  if (!runs_.Init(arena_, KITE_IMG_MAX_RUNS)) return err_->Set("checkpoint arena exhausted");
  copy_buf_ = static_cast<char*>(arena_->Alloc(KITE_IMG_MAX_RUN_PAGES * kPage, kPage));
  if (copy_buf_ == nullptr) return err_->Set("checkpoint arena exhausted");
  long pm = OpenFile("/proc/self/pagemap", O_RDONLY);
  if (raw::Failed(pm)) return err_->SetErrno("opening /proc/self/pagemap", pm);
  bool ok = true;
  for (size_t i = 0; i < regions_.size() && ok; ++i) {
    ok = DumpRegion(i, static_cast<int>(pm), writer);
  }
  CloseFd(static_cast<int>(pm));
  if (mem_fd_ >= 0) CloseFd(mem_fd_);
  mem_fd_ = -1;
  return ok;
}

bool MemoryDumper::DumpRegion(size_t index, int pagemap_fd, ImageWriter* writer) {
  kite_img_region& r = regions_[index];
  bool anon = r.kind == KITE_REGION_ANON || r.kind == KITE_REGION_STACK;
  bool file_private = r.kind == KITE_REGION_FILE && !(r.flags & KITE_REGION_SHARED);
  if (!anon && !file_private) return true;
  // Unreadable pages are copied through /proc/self/mem and never skipped as zero.
  bool readable = (r.prot & PROT_READ) != 0;

  size_t mark = arena_->mark();
  uint64_t* entries = static_cast<uint64_t*>(arena_->Alloc(kPagemapBatch * 8, 8));
  if (entries == nullptr) return err_->Set("checkpoint arena exhausted");
  uint64_t npages = (r.end - r.start) / kPage;
  uint64_t run_first = 0;
  uint32_t run_len = 0;
  bool ok = true;
  for (uint64_t base = 0; base < npages && ok; base += kPagemapBatch) {
    size_t batch = npages - base < kPagemapBatch ? npages - base : kPagemapBatch;
    long want = static_cast<long>(batch * 8);
    long got = raw::Syscall(SYS_pread64, pagemap_fd, raw::Arg(entries), want,
                            static_cast<long>((r.start / kPage + base) * 8));
    if (got != want) {
      ok = err_->SetErrno("reading /proc/self/pagemap", got < 0 ? got : -EIO);
      break;
    }
    for (size_t j = 0; j < batch; ++j) {
      uint64_t e = entries[j];
      uint64_t page = base + j;
      bool save;
      if (anon) {
        save = (e & (kPmPresent | kPmSwap)) != 0 &&
               !(readable && PageIsZero(reinterpret_cast<const void*>(r.start + page * kPage)));
      } else {
        save = ((e & kPmPresent) && !(e & kPmFile)) || (e & kPmSwap);
      }
      if (save && run_len > 0 && run_first + run_len == page && run_len < KITE_IMG_MAX_RUN_PAGES) {
        ++run_len;
        continue;
      }
      if (run_len > 0) {
        if (!FlushRun(index, run_first, run_len, writer)) {
          ok = false;
          break;
        }
        run_len = 0;
      }
      if (save) {
        run_first = page;
        run_len = 1;
      }
    }
  }
  if (ok && run_len > 0) ok = FlushRun(index, run_first, run_len, writer);
  arena_->Release(mark);
  return ok;
}

bool MemoryDumper::FlushRun(size_t index, uint64_t first_page, uint32_t npages,
                            ImageWriter* writer) {
  kite_img_region& r = regions_[index];
  size_t len = size_t{npages} * kPage;
  const void* src = reinterpret_cast<const void*>(r.start + first_page * kPage);
  // The handler runs on the stack it dumps: its own frames (below the signal frame, dead once
  // restored) change while a run is checksummed and written, so such runs are copied first.
  uintptr_t here = reinterpret_cast<uintptr_t>(&len);
  bool live_stack = here >= r.start && here < r.end;
  if (live_stack && (r.prot & PROT_READ)) {
    memcpy(copy_buf_, src, len);
    src = copy_buf_;
  } else if (!(r.prot & PROT_READ)) {
    if (mem_fd_ < 0) {
      long fd = OpenFile("/proc/self/mem", O_RDONLY);
      if (raw::Failed(fd)) return err_->SetErrno("opening /proc/self/mem", fd);
      mem_fd_ = static_cast<int>(fd);
    }
    long got = raw::Syscall(SYS_pread64, mem_fd_, raw::Arg(copy_buf_), static_cast<long>(len),
                            static_cast<long>(r.start + first_page * kPage));
    if (got != static_cast<long>(len)) {
      return err_->SetErrno("reading unreadable pages via /proc/self/mem", got < 0 ? got : -EIO);
    }
    src = copy_buf_;
  }
  kite_img_page_run* run = runs_.Add();
  if (run == nullptr) return err_->Set("too many page runs");
  run->region = static_cast<uint32_t>(index);
  run->npages = npages;
  run->page = first_page;
  run->crc = kite_crc32c(0, src, len);
  if (!writer->WritePages(src, len, &run->data_offset, err_)) return false;
  r.saved_pages += npages;
  saved_bytes_ += len;
  return true;
}

}  // namespace kite::shim
