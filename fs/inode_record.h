// InodeRecord: one inode as the store keeps it (the value in the "inodes" column family), and
// its binary encoding. Private to fs/ (the store's format, docs/kitefs.md §Store format).
//
// Encoding, version 1: a version byte, then fixed-width little-endian fields in the order
// declared below, then the symlink target (the rest of the value). Decode() refuses anything
// it does not understand (DataLoss), never guesses.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kite::fs {

struct InodeRecord {
  uint64_t ino = 0;           // not encoded: it is the key
  uint32_t mode = 0;          // st_mode: type and permission bits
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t rdev = 0;
  uint64_t generation = 0;
  uint64_t data_version = 0;  // bumped by every change of the data
  uint64_t parent = 0;        // directories: the directory holding it (".."); others: 0
  uint64_t next_seq = 0;      // directories: the next directory-listing sequence number
  std::string symlink_target; // symlinks only

  bool is_dir() const;
  bool is_reg() const;
  bool is_symlink() const;

  std::string Encode() const;
  static StatusOr<InodeRecord> Decode(uint64_t ino, std::string_view value);
};

}  // namespace kite::fs
