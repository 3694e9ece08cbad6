// Status: codes from errno, context prefixes, and the propagation macros.
#include "common/status.h"

#include <gtest/gtest.h>

namespace kite {
namespace {

TEST(StatusTest, PosixErrorMapsErrnoToActionableCodes) {
  EXPECT_EQ(PosixError("open x", ENOENT).code(), StatusCode::kNotFound);
  EXPECT_EQ(PosixError("open x", EACCES).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(PosixError("connect", ECONNREFUSED).code(), StatusCode::kUnavailable);
  EXPECT_EQ(PosixError("write", ENOSPC).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(PosixError("open x", ENOENT).message(), "open x: No such file or directory");
}

TEST(StatusTest, WithPrefixesContextAndKeepsCode) {
  Status s = NotFound("no such job 7").With("node2");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: node2: no such job 7");
  EXPECT_TRUE(OkStatus().With("ignored").ok());
}

StatusOr<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd");
  return x / 2;
}

Status Quarter(int x, int* out) {
  KITE_ASSIGN_OR_RETURN(int h, Half(x));
  KITE_ASSIGN_OR_RETURN(*out, Half(h));
  return OkStatus();
}

TEST(StatusTest, AssignOrReturnPropagatesTheFirstError) {
  int q = 0;
  EXPECT_TRUE(Quarter(8, &q).ok());
  EXPECT_EQ(q, 2);
  EXPECT_EQ(Quarter(6, &q).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kite
