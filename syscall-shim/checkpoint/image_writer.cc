// Image writing (see image_writer.h). Sections are laid out in the order they are written;
// the validator accepts any order as long as they do not overlap.
#include "syscall-shim/checkpoint/image_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "syscall-shim/checkpoint/raw_syscall.h"
#include "syscall-shim/image/crc32c.h"

namespace kite::shim {

bool ImageWriter::WriteAll(const void* data, size_t len, DumpError* err) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    if (len > fail_after_) return err->SetErrno("writing the image (injected fault)", -ENOSPC);
    fail_after_ = fail_after_ == UINT64_MAX ? fail_after_ : fail_after_ - len;
    long n = raw::Syscall(SYS_pwrite64, fd_, raw::Arg(p), static_cast<long>(len),
                          static_cast<long>(pos_));
    if (n == -EINTR) continue;
    if (raw::Failed(n)) return err->SetErrno("writing the image", n);
    if (n == 0) return err->Set("writing the image", "short write");
    p += n;
    len -= static_cast<size_t>(n);
    pos_ += static_cast<uint64_t>(n);
  }
  return true;
}

bool ImageWriter::BeginPageData(DumpError* err) {
  pos_ = KITE_IMG_HEADER_RESERVED;
  page_data_start_ = pos_;
  return true;
}

bool ImageWriter::WritePages(const void* data, size_t len, uint64_t* offset, DumpError* err) {
  *offset = pos_;
  return WriteAll(data, len, err);
}

bool ImageWriter::EndPageData(DumpError* err) {
  kite_img_section s = {};
  s.type = KITE_SEC_PAGE_DATA;
  s.entry_size = 1;
  s.offset = page_data_start_;
  s.size = pos_ - page_data_start_;
  s.count = s.size;
  return AddSection(s, err);
}

bool ImageWriter::WriteSection(uint32_t type, uint32_t entry_size, const void* data,
                               uint64_t count, DumpError* err) {
  static const char kZeros[8] = {};
  if (pos_ % 8 != 0 && !WriteAll(kZeros, 8 - pos_ % 8, err)) return false;
  kite_img_section s = {};
  s.type = type;
  s.entry_size = entry_size;
  s.offset = pos_;
  s.size = count * entry_size;
  s.count = count;
  s.crc = kite_crc32c(0, data, s.size);
  if (!WriteAll(data, s.size, err)) return false;
  return AddSection(s, err);
}

bool ImageWriter::AddSection(const kite_img_section& s, DumpError* err) {
  if (nsections_ == KITE_IMG_MAX_SECTIONS) return err->Set("writing the image", "too many sections");
  header_.sections[nsections_++] = s;
  return true;
}

bool ImageWriter::Finish(DumpError* err) {
  memcpy(header_.magic, KITE_IMG_MAGIC, sizeof header_.magic);
  header_.version = KITE_IMG_VERSION;
  header_.header_size = sizeof header_;
  header_.file_size = pos_;
  header_.section_entry_size = sizeof(kite_img_section);
  header_.header_crc = 0;
  header_.header_crc = kite_crc32c(0, &header_, sizeof header_);
  uint64_t end = pos_;
  pos_ = 0;
  bool ok = WriteAll(&header_, sizeof header_, err);
  pos_ = end;
  return ok;
}

}  // namespace kite::shim
