// ASSERT_OK / EXPECT_OK for kite::Status and StatusOr<T>: on failure they print the expression
// and the status ("NOT_FOUND: no such job 12"), not just "false".
#pragma once

#include <gtest/gtest.h>

#include "common/status.h"

namespace kite::testing {

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const StatusOr<T>& s) { return s.status(); }

inline ::testing::AssertionResult IsOk(const char* expr, const Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " is " << s.ToString();
}

}  // namespace kite::testing

#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::kite::testing::IsOk, ::kite::testing::StatusOf(expr))
#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::kite::testing::IsOk, ::kite::testing::StatusOf(expr))
