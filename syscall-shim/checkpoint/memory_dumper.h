// The memory part of a checkpoint: the process's mappings from /proc/self/maps as image
// regions, and the pages that must be saved as page runs.
//
// Saved pages: present or swapped pages of anonymous regions that are not all zero (pages
// never touched, or holding only zeros, are left out: zero pages are skipped); pages of
// private file mappings that were written (copied on write: present and not file-backed per
// /proc/self/pagemap, or swapped), RELRO included. Unchanged file pages are described by
// path + offset + the file's size and mtime, checked at restore.
// Refused (err says which mapping and why): shared writable mappings, shared anonymous memory,
// mappings of deleted files or of devices, special mappings other than [heap], [stack],
// [vdso], [vvar], [vvar_vclock], [anon:*] ([vsyscall] is left out: the kernel fixes it).
//
// Runs inside the checkpoint signal handler: raw system calls, arena memory only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "syscall-shim/checkpoint/dump_arena.h"
#include "syscall-shim/checkpoint/dump_text.h"
#include "syscall-shim/checkpoint/image_writer.h"
#include "syscall-shim/checkpoint/string_table.h"
#include "syscall-shim/image/image_format.h"

namespace kite::shim {

class MemoryDumper {
 public:
  MemoryDumper(DumpArena* arena, StringTable* strings, DumpError* err)
      : arena_(arena), strings_(strings), err_(err) {}

  // Reads /proc/self/maps, leaving out [exclude_start, exclude_end) (the dump's own arena).
  bool ReadRegions(uintptr_t exclude_start, uintptr_t exclude_end);
  // Writes the saved pages of every region as page data and records the runs.
  bool WritePages(ImageWriter* writer);

  const FixedVector<kite_img_region>& regions() const { return regions_; }
  const FixedVector<kite_img_page_run>& runs() const { return runs_; }
  uint64_t saved_bytes() const { return saved_bytes_; }

 private:
  // Parses one maps line into a region (or skips it); false with err_ set on refusal.
  bool AddLine(const char* line, const char* end, uintptr_t exclude_start,
               uintptr_t exclude_end);
  bool DumpRegion(size_t index, int pagemap_fd, ImageWriter* writer);
  bool FlushRun(size_t index, uint64_t first_page, uint32_t npages, ImageWriter* writer);

  DumpArena* arena_;
  StringTable* strings_;
  DumpError* err_;
  FixedVector<kite_img_region> regions_;
  FixedVector<kite_img_page_run> runs_;
  char* copy_buf_ = nullptr;  // pages of unreadable regions, read via /proc/self/mem
  int mem_fd_ = -1;
  uint64_t saved_bytes_ = 0;
};

}  // namespace kite::shim
