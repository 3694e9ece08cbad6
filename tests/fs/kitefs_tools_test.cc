// kitefs under the tools the issue names (contract 6: "POSIX as builds, editors, git and tar use
// it"): git clone, fsck and commit, and tar x, on one mount, checked through the other mount
// against the same tool's result on local disk. Real git and tar, a real kite-fsd and two real
// kitefs mounts (FsCluster); each test tears everything down even when it fails. Needs root.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tests/fs/fs_cluster.h"
#include "tests/support/subprocess.h"

namespace kite::fs::testing {
namespace {

using kite::testing::ProcessResult;
using kite::testing::Subprocess;

// Runs `script` with sh -e, with L (a directory on local disk), A and B (the two mounts) in its
// environment. Fails the test with the script's output when it does not exit 0.
class KitefsToolsTest : public FsClusterTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartCluster());
    local_ = (cluster_->dir() / "local").string();
  }

  ProcessResult Sh(const std::string& script) {
    auto p = Subprocess::Start({"sh", "-ec", script},
                               {.env = {"L=" + local_, "A=" + cluster_->mount(0), "B=" + cluster_->mount(1),
                                        "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
                                        "GIT_AUTHOR_NAME=kite", "GIT_AUTHOR_EMAIL=kite@test",
                                        "GIT_COMMITTER_NAME=kite", "GIT_COMMITTER_EMAIL=kite@test",
                                        "LC_ALL=C"}});
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    if (!p.ok()) return {};
    auto r = (*p)->Wait(std::chrono::minutes(3));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {};
    EXPECT_TRUE(r->Succeeded()) << script << "\n" << r->Describe() << "\nstdout:\n" << r->stdout_data;
    return std::move(r).value();
  }

  std::string local_;
};

TEST_F(KitefsToolsTest, AGitCloneOnOneHostIsTheSameRepositoryOnTheOther) {
  // A repository with history on local disk: nested directories, an executable, a symlink, a
  // file larger than a chunk, a rename, then packed by gc (pack files and their indexes).
  Sh(R"SH(
    mkdir -p "$L" && git init -q "$L/src" && cd "$L/src"
    mkdir -p a/b && head -c 300000 /dev/urandom > a/b/big && echo hello > a/hello
    ln -s a/hello link && printf '#!/bin/sh\necho run\n' > tool && chmod 755 tool
    git add -A && git commit -qm one
    for i in $(seq 1 25); do echo "$i" >> a/hello; echo "f$i" > "a/b/f$i"; git add -A; git commit -qm "c$i"; done
    git mv a/hello a/renamed && git commit -qm rename && git gc -q
    git clone -q --no-hardlinks "$L/src" "$A/clone"
    git clone -q --no-hardlinks "$L/src" "$L/clone"
  )SH");
  // Through the other host: whole and sound, the same commits, files and modes as on local disk.
  ProcessResult r = Sh(R"SH(
    git -C "$B/clone" fsck --full --strict --no-progress
    test -z "$(git -C "$B/clone" status --porcelain)"
    test "$(git -C "$B/clone" rev-parse HEAD)" = "$(git -C "$L/src" rev-parse HEAD)"
    test "$(git -C "$B/clone" rev-list --count HEAD)" = 27
    git -C "$B/clone" ls-files -s > "$L/b.ls"; git -C "$L/clone" ls-files -s > "$L/l.ls"; cmp "$L/b.ls" "$L/l.ls"
    diff -r --no-dereference -x .git "$B/clone" "$L/clone"
    readlink "$B/clone/link"
  )SH");
  EXPECT_EQ(r.stdout_data, "a/hello\n");  // the symlink, kept as a link (its target was renamed)
  // A commit made on the second host (index.lock renamed over index, a loose object, a ref
  // update), then seen whole from the first.
  Sh(R"SH(
    cd "$B/clone" && echo new > new-on-b && git add new-on-b && git commit -qm on-b
    test "$(git -C "$A/clone" log -1 --format=%s)" = on-b
    test "$(git -C "$A/clone" show HEAD:new-on-b)" = new
    git -C "$A/clone" fsck --full --strict --no-progress
    test -z "$(git -C "$A/clone" status --porcelain)"
  )SH");
}

TEST_F(KitefsToolsTest, ATarExtractedOnOneHostMatchesTheSameExtractionOnLocalDisk) {
  // An archive of what tar meets in a source tree and more: empty, tiny, chunk-sized and
  // chunk-crossing files, a hard link, relative and dangling symlinks, an empty directory,
  // odd modes, another owner, old mtimes, names with spaces and bytes that are not UTF-8, a fifo.
  Sh(R"SH(
    t="$L/t" && mkdir -p "$t/d/e/f" "$t/empty" "$t/private"
    : > "$t/zero"; printf x > "$t/one"
    head -c 4095 /dev/urandom > "$t/d/page"; head -c 65536 /dev/urandom > "$t/d/chunk"
    head -c 65537 /dev/urandom > "$t/d/e/chunk+1"; head -c 1300000 /dev/urandom > "$t/d/e/f/large"
    ln "$t/d/chunk" "$t/d/e/hard"; ln -s ../chunk "$t/d/e/rel"; ln -s /nowhere/at/all "$t/dangling"
    printf 'a b' > "$t/name with spaces"; printf z > "$t/$(printf 'bytes\377\376')"
    chmod 600 "$t/one"; chmod 751 "$t/d/e"; chmod 700 "$t/private"; chmod 4755 "$t/d/page"
    chown 1234:5678 "$t/d/chunk"; mkfifo "$t/fifo"
    touch -h -d '2001-02-03 04:05:06' "$t/d/e/f/large" "$t/dangling" "$t/d/e/f" "$t/empty"
    tar -C "$t" -cf "$L/t.tar" .
    mkdir "$A/x" "$L/x"
    tar -C "$A/x" -xpf "$L/t.tar"
    tar -C "$L/x" -xpf "$L/t.tar"
  )SH");
  // Through the other host: tar itself finds no difference (contents, modes, owners, mtimes,
  // link targets), and neither does a listing of everything, hard-link counts included.
  Sh(R"SH(
    tar -C "$B/x" -df "$L/t.tar"
    list() { cd "$1" && { find . ! -type d -printf '%p %y %m %n %U:%G %s %T@ %l\n'; find . -type d -printf '%p %m %U:%G\n'; } | sort; }
    (list "$B/x") > "$L/b.list"; (list "$L/x") > "$L/l.list"
    diff "$L/b.list" "$L/l.list"
    (cd "$B/x" && find . -type f -exec md5sum {} + | sort) > "$L/b.sum"
    (cd "$L/x" && find . -type f -exec md5sum {} + | sort) > "$L/l.sum"
    cmp "$L/b.sum" "$L/l.sum"
    test "$(wc -l < "$L/l.sum")" -eq 9
  )SH");
}

}  // namespace
}  // namespace kite::fs::testing
