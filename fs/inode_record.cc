// InodeRecord encoding: fixed layout, little-endian, versioned.
#include "fs/inode_record.h"

#include <sys/stat.h>

#include <cstring>

#include "fs/fs_errors.h"

namespace kite::fs {
namespace {

constexpr uint8_t kVersion = 1;
constexpr size_t kFixedBytes = 1 + 4 * 4 + 8 * 9;

template <typename T>
void Put(std::string* out, T v) {
  char b[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
  out->append(b, sizeof b);
}

template <typename T>
T Get(const char*& p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  p += sizeof(T);
  return static_cast<T>(v);
}

}  // namespace

bool InodeRecord::is_dir() const { return S_ISDIR(mode); }
bool InodeRecord::is_reg() const { return S_ISREG(mode); }
bool InodeRecord::is_symlink() const { return S_ISLNK(mode); }

std::string InodeRecord::Encode() const {
  std::string out;
  out.reserve(kFixedBytes + symlink_target.size());
  out.push_back(static_cast<char>(kVersion));
  Put(&out, mode);
  Put(&out, nlink);
  Put(&out, uid);
  Put(&out, gid);
  Put(&out, size);
  Put(&out, atime_ns);
  Put(&out, mtime_ns);
  Put(&out, ctime_ns);
  Put(&out, rdev);
  Put(&out, generation);
  Put(&out, data_version);
  Put(&out, parent);
  Put(&out, next_seq);
  out += symlink_target;
  return out;
}

StatusOr<InodeRecord> InodeRecord::Decode(uint64_t ino, std::string_view value) {
  if (value.size() < kFixedBytes || static_cast<uint8_t>(value[0]) != kVersion) {
    return DataLoss("inode " + std::to_string(ino) + ": record of " + std::to_string(value.size()) +
                    " bytes with version " + (value.empty() ? "none" : std::to_string(static_cast<uint8_t>(value[0]))) +
                    " is not a version-1 inode");
  }
  InodeRecord r;
  r.ino = ino;
  const char* p = value.data() + 1;
  r.mode = Get<uint32_t>(p);
  r.nlink = Get<uint32_t>(p);
  r.uid = Get<uint32_t>(p);
  r.gid = Get<uint32_t>(p);
  r.size = Get<uint64_t>(p);
  r.atime_ns = Get<int64_t>(p);
  r.mtime_ns = Get<int64_t>(p);
  r.ctime_ns = Get<int64_t>(p);
  r.rdev = Get<uint64_t>(p);
  r.generation = Get<uint64_t>(p);
  r.data_version = Get<uint64_t>(p);
  r.parent = Get<uint64_t>(p);
  r.next_seq = Get<uint64_t>(p);
  r.symlink_target.assign(value.substr(kFixedBytes));
  return r;
}

}  // namespace kite::fs
