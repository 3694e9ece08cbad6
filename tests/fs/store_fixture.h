// The fixture of the Store's unit tests (store_test.cc, store_replay_test.cc): a Store on a
// real RocksDB in a temporary directory of each test's own, which Reopen closes and opens again
// as a restart of kite-fsd would.
#pragma once

#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "fs/fs_errors.h"
#include "fs/store.h"
#include "tests/support/status_matchers.h"

namespace kite::fs {

// errno of a failed result, or 0.
template <typename T>
int Err(const StatusOr<T>& s) { return ErrnoOf(s.status()); }
inline int Err(const Status& s) { return ErrnoOf(s); }

class StoreFixture : public ::testing::Test {
 protected:
  // orphan_reclaim_ms of every Reopen() that names none.
  explicit StoreFixture(int64_t orphan_reclaim_ms = 0) : reclaim_ms_(orphan_reclaim_ms) {}

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kitefs-store-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() { Reopen(reclaim_ms_); }
  void Reopen(int64_t orphan_reclaim_ms) {
    store_.reset();
    auto s = Store::Open({.path = dir_.string(), .orphan_reclaim_ms = orphan_reclaim_ms});
    ASSERT_OK(s);
    store_ = std::move(s).value();
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;

 private:
  const int64_t reclaim_ms_;
};

}  // namespace kite::fs
