// FsError/ErrnoOf: the errno name travels at the end of the message, so it survives Status::With
// (which prefixes context) and a trip through Thrift (FsError carries the errno, and the client
// rebuilds the Status with FsError()).
#include "fs/fs_errors.h"

#include <string.h>

#include <array>
#include <string>

namespace kite::fs {
namespace {

constexpr int kMaxErrno = 134;

// errno names → values, built once from glibc's own names.
const std::array<const char*, kMaxErrno>& ErrnoNames() {
  static const std::array<const char*, kMaxErrno> names = [] {
    std::array<const char*, kMaxErrno> a{};
    for (int e = 1; e < kMaxErrno; ++e) a[e] = strerrorname_np(e);
    return a;
  }();
  return names;
}

int ErrnoOfCode(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 0;
    case StatusCode::kNotFound: return ENOENT;
    case StatusCode::kAlreadyExists: return EEXIST;
    case StatusCode::kPermissionDenied: return EACCES;
    case StatusCode::kInvalidArgument: return EINVAL;
    case StatusCode::kResourceExhausted: return ENOSPC;
    case StatusCode::kFailedPrecondition: return EBUSY;
    case StatusCode::kOutOfRange: return EFBIG;
    case StatusCode::kUnimplemented: return EOPNOTSUPP;
    case StatusCode::kDeadlineExceeded: return ETIMEDOUT;
    case StatusCode::kCancelled: return EINTR;
    default: return EIO;  // kUnavailable (the server is gone), kInternal, kDataLoss, ...
  }
}

}  // namespace

Status FsError(int err, std::string_view context) {
  Status s = PosixError(context, err);
  const char* name = (err > 0 && err < kMaxErrno) ? ErrnoNames()[err] : nullptr;
  std::string m = s.message();
  m += " (";
  m += name ? name : ("errno " + std::to_string(err));
  m += ")";
  return Status(s.code(), std::move(m));
}

int ErrnoOf(const Status& s) {
  if (s.ok()) return 0;
  const std::string& m = s.message();
  if (!m.empty() && m.back() == ')') {
    size_t open = m.rfind('(');
    if (open != std::string::npos) {
      std::string_view name(m.data() + open + 1, m.size() - open - 2);
      const auto& names = ErrnoNames();
      for (int e = 1; e < kMaxErrno; ++e) {
        if (names[e] && name == names[e]) return e;
      }
      if (name.starts_with("errno ")) {
        int e = std::atoi(std::string(name.substr(6)).c_str());
        if (e > 0) return e;
      }
    }
  }
  return ErrnoOfCode(s.code());
}

}  // namespace kite::fs
