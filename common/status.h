// Status and StatusOr<T>: how every fallible call in kite reports failure (after absl::Status).
// No exceptions in the core. A code tells the caller what to do next; the message tells a person.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kite {

enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,     // the input is malformed: do not retry it
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,   // out of slots, memory, ...: try elsewhere or later
  kFailedPrecondition = 9,  // the state is wrong: fix it first
  kAborted = 10,            // retry the whole operation
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,        // transient: retry the call
  kDataLoss = 15,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NOT_FOUND: no such job 12", or "OK".
  std::string ToString() const;
  // Returns this status with `context` prefixed to the message ("connect node2: ...").
  Status With(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }

// The one place errno becomes a Status: "<context>: <strerror>", with a code chosen from the
// errno (ENOENT → kNotFound, EACCES/EPERM → kPermissionDenied, EAGAIN → kUnavailable, ...).
Status PosixError(std::string_view context, int err);

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design
  StatusOr(T value) : value_(std::move(value)) {}          // NOLINT
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace kite

#define KITE_CONCAT_INNER(a, b) a##b
#define KITE_CONCAT(a, b) KITE_CONCAT_INNER(a, b)

// Returns from the calling function if `expr` (a Status) is not OK.
#define KITE_RETURN_IF_ERROR(expr)            \
  do {                                        \
    ::kite::Status kite_status_ = (expr);     \
    if (!kite_status_.ok()) return kite_status_; \
  } while (0)

// `KITE_ASSIGN_OR_RETURN(auto x, Foo());` declares x from a StatusOr or returns its error.
#define KITE_ASSIGN_OR_RETURN(lhs, expr) \
  KITE_ASSIGN_OR_RETURN_IMPL(KITE_CONCAT(kite_statusor_, __LINE__), lhs, expr)
#define KITE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
