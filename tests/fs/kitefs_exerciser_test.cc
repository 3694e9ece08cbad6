// The random-operation exerciser of kitefs (issue 5): thousands of mixed operations, each made
// through one of two kitefs mounts ("hosts") picked at random, and the same operation on a local
// reference directory. Every result — the return value or errno, the bytes read, the attributes
// that do not depend on a clock or a disk layout, a directory's names — must be the same, and at
// the end both hosts' trees must equal the reference. The operations share a handful of names
// in a few directories, so they collide: a name is a file, then a directory, then a symlink;
// renames move directories into their own children; links outlive unlinks.
//
// The seed is printed; KITE_EXERCISER_SEED=N replays a run, KITE_EXERCISER_OPS=N changes its
// length (default 4000).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tests/fs/fs_cluster.h"

namespace kite::fs::testing {
namespace {

// What an operation returned, as a comparable string: "ok ...details" or "errno NAME".
std::string Err(int e) { return std::string("errno ") + (strerrorname_np(e) ? strerrorname_np(e) : std::to_string(e)); }

// The attributes two file systems must agree on: type, permissions, links, and the size of
// files and symlinks (a directory's size is the file system's business).
std::string DescribeStat(const struct stat& st) {
  std::string d = "type " + std::to_string(st.st_mode & S_IFMT) + " perm " + std::to_string(st.st_mode & 07777) +
                  " nlink " + std::to_string(st.st_nlink);
  if (!S_ISDIR(st.st_mode)) d += " size " + std::to_string(st.st_size);
  return d;
}

enum class Kind {
  kWrite, kRead, kPread, kTruncate, kRename, kUnlink, kMkdir, kRmdir, kLink, kSymlink, kReadlink,
  kStat, kLstat, kChmod, kReaddir, kCreateExcl, kCount
};

struct Op {
  Kind kind;
  std::string a, b;  // paths relative to the root
  int64_t offset = 0;
  size_t length = 0;
  int flags = 0;
  mode_t mode = 0;
  uint32_t seed = 0;

  std::string Describe() const {
    static const char* names[] = {"write", "read", "pread", "truncate", "rename", "unlink", "mkdir", "rmdir",
                                  "link", "symlink", "readlink", "stat", "lstat", "chmod", "readdir", "create-excl"};
    std::string d = std::string(names[static_cast<int>(kind)]) + " '" + a + "'";
    if (!b.empty()) d += " '" + b + "'";
    d += " offset " + std::to_string(offset) + " length " + std::to_string(length) + " flags 0" +
         std::to_string(flags) + " mode 0" + std::to_string(mode);
    return d;
  }
};

std::string Apply(const Op& op, const std::string& root) {
  const std::string a = root + "/" + op.a, b = root + "/" + op.b;
  switch (op.kind) {
    case Kind::kWrite: {
      int fd = open(a.c_str(), op.flags, 0644);
      if (fd < 0) return Err(errno);
      std::string data = Pattern(op.length, op.seed);
      ssize_t n = (op.flags & O_APPEND) ? write(fd, data.data(), data.size())
                                        : pwrite(fd, data.data(), data.size(), op.offset);
      int e = errno;
      close(fd);
      return n < 0 ? Err(e) : "ok " + std::to_string(n);
    }
    case Kind::kRead:
    case Kind::kPread: {
      int fd = open(a.c_str(), O_RDONLY);
      if (fd < 0) return Err(errno);
      std::string out;
      char buf[65536];
      int64_t pos = op.kind == Kind::kPread ? op.offset : 0;
      size_t want = op.kind == Kind::kPread ? op.length : SIZE_MAX;
      while (out.size() < want) {
        ssize_t n = pread(fd, buf, std::min(sizeof buf, want - out.size()), pos);
        if (n < 0) {
          int e = errno;
          close(fd);
          return Err(e);
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        pos += n;
      }
      close(fd);
      return "ok " + std::to_string(out.size()) + " bytes " + std::to_string(std::hash<std::string>{}(out));
    }
    case Kind::kTruncate:
      return truncate(a.c_str(), op.offset) == 0 ? "ok" : Err(errno);
    case Kind::kRename:
      return rename(a.c_str(), b.c_str()) == 0 ? "ok" : Err(errno);
    case Kind::kUnlink:
      return unlink(a.c_str()) == 0 ? "ok" : Err(errno);
    case Kind::kMkdir:
      return mkdir(a.c_str(), op.mode) == 0 ? "ok" : Err(errno);
    case Kind::kRmdir:
      return rmdir(a.c_str()) == 0 ? "ok" : Err(errno);
    case Kind::kLink:
      return link(a.c_str(), b.c_str()) == 0 ? "ok" : Err(errno);
    case Kind::kSymlink:  // the target is op.b as written, relative to the link's directory
      return symlink(op.b.c_str(), a.c_str()) == 0 ? "ok" : Err(errno);
    case Kind::kReadlink: {
      char buf[4096];
      ssize_t n = readlink(a.c_str(), buf, sizeof buf);
      return n < 0 ? Err(errno) : "ok " + std::string(buf, static_cast<size_t>(n));
    }
    case Kind::kStat:
    case Kind::kLstat: {
      struct stat st {};
      int rc = op.kind == Kind::kStat ? stat(a.c_str(), &st) : lstat(a.c_str(), &st);
      return rc == 0 ? "ok " + DescribeStat(st) : Err(errno);
    }
    case Kind::kChmod:
      return chmod(a.c_str(), op.mode) == 0 ? "ok" : Err(errno);
    case Kind::kReaddir: {
      DIR* d = opendir(a.c_str());
      if (!d) return Err(errno);
      std::vector<std::string> names;
      while (dirent* e = readdir(d)) names.push_back(e->d_name);
      closedir(d);
      std::sort(names.begin(), names.end());
      std::string out = "ok";
      for (const auto& n : names) out += " " + n;
      return out;
    }
    case Kind::kCreateExcl: {
      int fd = open(a.c_str(), O_WRONLY | O_CREAT | O_EXCL, op.mode);
      if (fd < 0) return Err(errno);
      close(fd);
      return "ok";
    }
    case Kind::kCount:
      break;
  }
  return "bad op";
}

// Every entry below `root` (relative path → type, attributes and contents), for the final
// comparison. Walked with lstat, never through a symlink (some of them loop).
void Walk(const std::string& root, const std::string& rel, std::vector<std::string>* out) {
  DIR* d = opendir((root + "/" + rel).c_str());
  ASSERT_NE(d, nullptr) << root << "/" << rel << ": " << strerror(errno);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  }
  closedir(d);
  for (const std::string& name : names) {
    std::string path = rel.empty() ? name : rel + "/" + name;
    struct stat st {};
    ASSERT_EQ(lstat((root + "/" + path).c_str(), &st), 0) << root << "/" << path;
    std::string line = path + ": " + DescribeStat(st);
    if (S_ISLNK(st.st_mode)) line += " -> " + Apply(Op{Kind::kReadlink, path, ""}, root);
    if (S_ISREG(st.st_mode)) line += " " + Apply(Op{Kind::kRead, path, ""}, root);
    out->push_back(line);
    if (S_ISDIR(st.st_mode)) Walk(root, path, out);
  }
}

std::vector<std::string> Tree(const std::string& root) {
  std::vector<std::string> out;
  Walk(root, "", &out);
  std::sort(out.begin(), out.end());
  return out;
}

class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  Op Next() {
    Op op{static_cast<Kind>(Pick(static_cast<int>(Kind::kCount))), Path(), ""};
    switch (op.kind) {
      case Kind::kWrite: {
        static const int kFlags[] = {O_WRONLY | O_CREAT, O_WRONLY | O_CREAT | O_TRUNC, O_WRONLY | O_CREAT | O_APPEND,
                                     O_RDWR, O_WRONLY | O_TRUNC};
        op.flags = kFlags[Pick(5)];
        op.length = Size();
        op.offset = Pick(4) == 0 ? Pick(200000) : Pick(4096);
        op.seed = static_cast<uint32_t>(rng_());
        break;
      }
      case Kind::kPread:
        op.offset = Pick(100000);
        op.length = Size();
        break;
      case Kind::kTruncate:
        op.offset = Pick(3) == 0 ? 0 : Pick(150000);
        break;
      case Kind::kRename:
      case Kind::kLink:
        op.b = Path();
        break;
      case Kind::kSymlink: {
        static const char* kTargets[] = {"x", "y", "../x", "a/b", "nowhere", "a"};
        op.b = kTargets[Pick(6)];
        break;
      }
      case Kind::kMkdir:
        op.mode = Pick(2) ? 0755 : 0700;
        break;
      case Kind::kChmod:
        op.mode = Pick(2) ? 0644 : 0755;
        break;
      case Kind::kCreateExcl:
        op.mode = 0640;
        break;
      case Kind::kReaddir:
        op.a = Dir();
        break;
      default:
        break;
    }
    return op;
  }
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<uint32_t>(n)); }

 private:
  // A handful of names in a few directories, some of them names of the directories too.
  std::string Dir() {
    static const char* kDirs[] = {"", "a/", "a/b/", "c/"};
    return kDirs[Pick(4)];
  }
  std::string Path() {
    static const char* kNames[] = {"a", "b", "c", "x", "y", "z"};
    return Dir() + kNames[Pick(6)];
  }
  // Mostly small; sometimes across chunk boundaries (64 KiB) or several chunks.
  size_t Size() {
    switch (Pick(4)) {
      case 0: return static_cast<size_t>(Pick(100));
      case 1: return static_cast<size_t>(Pick(10000));
      case 2: return static_cast<size_t>(60000 + Pick(20000));
      default: return static_cast<size_t>(Pick(300000));
    }
  }
  std::mt19937 rng_;
};

uint32_t EnvOr(const char* name, uint32_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? static_cast<uint32_t>(std::strtoul(v, nullptr, 10)) : fallback;
}

class KitefsExerciserTest : public FsClusterTest {};

TEST_F(KitefsExerciserTest, RandomOperationsFromTwoHostsMatchALocalDirectory) {
  StartCluster();
  const uint32_t seed = EnvOr("KITE_EXERCISER_SEED", std::random_device{}());
  const int ops = static_cast<int>(EnvOr("KITE_EXERCISER_OPS", 4000));
  std::cout << "exerciser seed " << seed << " (KITE_EXERCISER_SEED=" << seed << " replays it), " << ops
            << " operations\n";
  const std::string ref = cluster_->dir().string() + "/reference";
  ASSERT_EQ(mkdir(ref.c_str(), 0755), 0);
  umask(022);
  Generator gen(seed);
  int counts[2] = {0, 0};
  int successes = 0;
  int kinds_succeeded[static_cast<int>(Kind::kCount)] = {};
  for (int i = 0; i < ops; ++i) {
    Op op = gen.Next();
    int host = gen.Pick(2);
    ++counts[host];
    std::string want = Apply(op, ref);
    std::string got = Apply(op, cluster_->mount(host));
    if (want.starts_with("ok")) {
      ++successes;
      ++kinds_succeeded[static_cast<int>(op.kind)];
    }
    ASSERT_EQ(got, want) << "operation " << i << " of seed " << seed << " on host " << host << ": "
                         << op.Describe();
  }
  // Both hosts see the reference's tree, contents and all.
  std::vector<std::string> expected = Tree(ref);
  EXPECT_EQ(Tree(cluster_->mount(0)), expected) << "seed " << seed;
  EXPECT_EQ(Tree(cluster_->mount(1)), expected) << "seed " << seed;
  // The run exercised something: both hosts, and operations that succeeded as well as failed.
  EXPECT_GT(counts[0], ops / 4);
  EXPECT_GT(counts[1], ops / 4);
  // (A fifth to a third succeed in runs of 4000; most kinds of operation do at least once.)
  EXPECT_GT(successes, ops / 10);
  EXPECT_LT(successes, ops);
  int kinds = 0;
  for (int n : kinds_succeeded) kinds += n > 0;
  EXPECT_GE(kinds, static_cast<int>(Kind::kCount) - 3) << "kinds of operation that succeeded at least once";
  std::cout << ops << " operations (" << counts[0] << " on host 0, " << counts[1] << " on host 1), " << successes
            << " succeeded; final tree of " << expected.size() << " entries identical on both hosts\n";
}

}  // namespace
}  // namespace kite::fs::testing
