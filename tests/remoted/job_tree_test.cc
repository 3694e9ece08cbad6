// JobTree's /proc readers against real child processes.
#include "remoted/job_tree.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace kite {
namespace {

// A child that runs `sleep 30` with the given environment; killed and reaped on destruction.
class Child {
 public:
  explicit Child(std::vector<std::string> env) {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> envp;
      for (auto& e : env) envp.push_back(e.data());
      envp.push_back(nullptr);
      char* argv[] = {const_cast<char*>("sleep"), const_cast<char*>("30"), nullptr};
      ::execve("/bin/sleep", argv, envp.data());
      ::_exit(127);
    }
    // Until the exec, the child's environ is still ours.
    for (int i = 0; i < 500; ++i) {
      auto p = JobTree::Read(pid_);
      if (p.ok() && p->comm == "sleep") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  ~Child() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

TEST(JobTreeTest, PreloadsFindsTheLibraryInAnyEntry) {
  // ld.so warns about the entries it cannot load, and runs sleep anyway.
  Child child({"PATH=/bin", "LD_PRELOAD=/nowhere/libother.so /no/such/dir/libkite-shim.so:libthird.so"});
  EXPECT_TRUE(JobTree::Preloads(child.pid(), "/no/such/dir/libkite-shim.so"));
  EXPECT_TRUE(JobTree::Preloads(child.pid(), "libthird.so"));
  EXPECT_FALSE(JobTree::Preloads(child.pid(), "/usr/lib/kite/libkite-shim.so"));
  EXPECT_FALSE(JobTree::Preloads(child.pid(), ""));
}

TEST(JobTreeTest, PreloadListHasWholeEntriesOnly) {
  EXPECT_TRUE(JobTree::PreloadListHas("/a/s.so", "/a/s.so"));
  EXPECT_TRUE(JobTree::PreloadListHas("x.so::/a/s.so ", "/a/s.so"));
  EXPECT_FALSE(JobTree::PreloadListHas("/a/s.so.1:/b/a/s.so", "/a/s.so"));
  EXPECT_FALSE(JobTree::PreloadListHas("", "/a/s.so"));
  EXPECT_FALSE(JobTree::PreloadListHas("a::b", ""));
}

TEST(JobTreeTest, NoPreloadMeansNoLibrary) {
  Child child({"PATH=/bin", "NOT_LD_PRELOAD=/x/libkite-shim.so"});
  EXPECT_FALSE(JobTree::Preloads(child.pid(), "/x/libkite-shim.so"));
  EXPECT_FALSE(JobTree::Catches(child.pid(), SIGUSR2));
  EXPECT_FALSE(JobTree::Preloads(999999999, "/x/libkite-shim.so"));
}

}  // namespace
}  // namespace kite
