// OpenTable over a real Store: handles pin files, another client's handle cannot be released,
// a silent client's handles are released, usage by others decides write sharing.
#include "fs/open_table.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "fs/fs_errors.h"
#include "tests/support/status_matchers.h"

namespace kite::fs {
namespace {

class OpenTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("kitefs-open-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    auto s = Store::Open({.path = dir_.string()});
    ASSERT_OK(s);
    store_ = std::move(s).value();
    bool created;
    auto a = store_->Create(kRootIno, "f", 0644, O_RDWR, {}, &created);
    ASSERT_OK(a);
    ino_ = a->ino;
    ASSERT_OK(store_->Release(ino_));
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  // An open as the handler does it: pin in the store, then record.
  uint64_t OpenAs(OpenTable& t, uint64_t client, int flags) {
    EXPECT_OK(store_->Open(ino_, flags));
    return t.Add(client, ino_, flags);
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  uint64_t ino_ = 0;
};

TEST_F(OpenTableTest, HandlesPinUntilReleasedByTheirClient) {
  OpenTable t(store_.get(), std::chrono::milliseconds(60000));
  uint64_t h = OpenAs(t, 1, O_RDONLY);
  ASSERT_OK(store_->Unlink(kRootIno, "f"));
  EXPECT_OK(store_->GetAttr(ino_));  // open: still there
  Status other = t.Remove(2, h);
  EXPECT_EQ(other.code(), StatusCode::kPermissionDenied);
  EXPECT_OK(store_->GetAttr(ino_));
  ASSERT_OK(t.Remove(1, h));
  EXPECT_EQ(ErrnoOf(store_->GetAttr(ino_).status()), ESTALE);
  EXPECT_OK(t.Remove(1, h));  // twice: not an error
}

TEST_F(OpenTableTest, SilentClientsAreExpiredAndTheirFilesReleased) {
  OpenTable t(store_.get(), std::chrono::milliseconds(1000));
  OpenAs(t, 1, O_RDWR);
  OpenAs(t, 1, O_RDONLY);
  OpenAs(t, 2, O_RDONLY);
  ASSERT_OK(store_->Unlink(kRootIno, "f"));
  EXPECT_TRUE(t.ExpireIdle(OpenTable::Clock::now()).empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  t.Touch(2);  // client 2 is heard from 400 ms later than client 1
  auto expired = t.ExpireIdle(OpenTable::Clock::now() + std::chrono::milliseconds(800));
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0], 1u);
  EXPECT_EQ(store_->TEST_PinCount(ino_), 1);
  EXPECT_OK(store_->GetAttr(ino_));
  expired = t.ExpireIdle(OpenTable::Clock::now() + std::chrono::milliseconds(5000));
  EXPECT_EQ(expired.size(), 1u);
  EXPECT_EQ(ErrnoOf(store_->GetAttr(ino_).status()), ESTALE);
}

TEST_F(OpenTableTest, UsageCountsOtherClientsReadersAndWriters) {
  OpenTable t(store_.get(), std::chrono::milliseconds(60000));
  OpenAs(t, 1, O_RDONLY);
  OpenAs(t, 2, O_WRONLY);
  OpenAs(t, 2, O_RDWR);
  OpenTable::Usage all = t.UsageOf(ino_);
  EXPECT_EQ(all.readers, 2);
  EXPECT_EQ(all.writers, 2);
  EXPECT_EQ(all.clients.size(), 2u);
  OpenTable::Usage not2 = t.UsageOf(ino_, 2);
  EXPECT_EQ(not2.readers, 1);
  EXPECT_EQ(not2.writers, 0);
  EXPECT_EQ(not2.clients.size(), 1u);
}

}  // namespace
}  // namespace kite::fs
