// Writes a kite image (image_format.h) to an open file: page data first, from
// KITE_IMG_HEADER_RESERVED on, then the metadata sections, then the header at offset 0.
// Async-signal-safe (raw system calls, no allocation). Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "syscall-shim/checkpoint/dump_text.h"
#include "syscall-shim/image/image_format.h"

namespace kite::shim {

class ImageWriter {
 public:
  // `fd`: an empty file open for writing, owned by the caller.
  explicit ImageWriter(int fd) : fd_(fd) {}

  // Starts the page data section (page-aligned, after the header area).
  bool BeginPageData(DumpError* err);
  // Appends `len` bytes (a multiple of the page size) of page data; *offset gets their file
  // offset. Must come between BeginPageData and EndPageData.
  bool WritePages(const void* data, size_t len, uint64_t* offset, DumpError* err);
  bool EndPageData(DumpError* err);
  // Appends a section of `count` entries of `entry_size` bytes, 8-aligned, with its CRC.
  bool WriteSection(uint32_t type, uint32_t entry_size, const void* data, uint64_t count,
                    DumpError* err);
  // Writes the header (with the section table and checksums) at offset 0.
  bool Finish(DumpError* err);

  uint64_t size() const { return pos_; }

  // Fault injection (KITE_CKPT_FAULT=enospc): writes fail with ENOSPC once `bytes` more have
  // been written.
  void TEST_FailAfter(uint64_t bytes) { fail_after_ = bytes; }

 private:
  bool WriteAll(const void* data, size_t len, DumpError* err);
  bool AddSection(const kite_img_section& s, DumpError* err);

  int fd_;
  uint64_t pos_ = 0;
  uint64_t page_data_start_ = 0;
  kite_img_header header_ = {};
  uint32_t nsections_ = 0;
  uint64_t fail_after_ = UINT64_MAX;
};

}  // namespace kite::shim
