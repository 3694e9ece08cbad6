// Status: names, formatting and the single errno → Status mapping.
#include "common/status.h"

#include <cstring>

namespace kite {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kUnknown: return "UNKNOWN";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDataLoss: return "DATA_LOSS";
  }
  return "UNKNOWN";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(StatusCodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

Status Status::With(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

Status PosixError(std::string_view context, int err) {
  StatusCode code;
  switch (err) {
    case ENOENT: case ESRCH: case ENXIO: code = StatusCode::kNotFound; break;
    case EACCES: case EPERM: code = StatusCode::kPermissionDenied; break;
    case EEXIST: code = StatusCode::kAlreadyExists; break;
    case EINVAL: case ENAMETOOLONG: case E2BIG: case ENOTDIR: case EISDIR:
      code = StatusCode::kInvalidArgument; break;
    case EAGAIN: case EINTR: case ECONNREFUSED: case ECONNRESET: case EPIPE:
    case EHOSTUNREACH: case ENETUNREACH: case ETIMEDOUT:
      code = StatusCode::kUnavailable; break;
    case ENOMEM: case ENOSPC: case EMFILE: case ENFILE: case EDQUOT:
      code = StatusCode::kResourceExhausted; break;
    case ENOSYS: case ENOTSUP: code = StatusCode::kUnimplemented; break;
    case EBUSY: code = StatusCode::kFailedPrecondition; break;
    default: code = StatusCode::kUnknown; break;
  }
  std::string m(context);
  m += ": ";
  m += std::strerror(err);
  return Status(code, std::move(m));
}

}  // namespace kite
