// Where a host's guest jobs write their checkpoint images, and the checks an image must pass
// before restore_job runs it (see docs/design-notes.md, "Migration: how a job moves").
//
// Layout: <root>/<host>/<uid>/ with <root> = [paths] checkpoint_dir, on the host's own disk
// (default /var/lib/kite/checkpoints), the same path on every host. A move copies the files
// host to host into the same path (remoted/checkpoint_transfer.h); `kite checkpoint --to`
// gets them exported to the shared tree. <host> is the host whose jobs' shims write there (a
// restored job keeps the directory it started with, so it can be another host's name).
// <root> and <root>/<host> belong to root, mode 0711; <uid> belongs to the job's user, mode
// 0700: images hold the job's memory and only their owner (and root) may read them.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/config.h"
#include "common/status.h"
#include "kite/rpc/kite_types.h"
#include "syscall-shim/tree/job_manifest.h"

namespace kite {

class JobCheckpoint {
 public:
  // The root of every host's checkpoint directories.
  static std::string Root(const Config& config);

  // Creates (or checks) <root>/<host>/<uid> for a job of `uid`/`gid` and returns it (host:
  // this one unless given). An existing path component that is a symlink, not a directory, or
  // owned by someone else is an error (FAILED_PRECONDITION), never followed.
  static StatusOr<std::string> PrepareDir(const Config& config, uid_t uid, gid_t gid);
  static StatusOr<std::string> PrepareDir(const Config& config, const std::string& host, uid_t uid, gid_t gid);

  // Where a checkpoint file is, split: `path` must be <root>/<host>/<uid>/<name>, absolute and
  // canonical, <name> a plain file name not starting with '.'. INVALID_ARGUMENT otherwise.
  struct Location {
    std::string host;
    uid_t uid = 0;
    std::string dir;   // <root>/<host>/<uid>
    std::string name;
  };
  static StatusOr<Location> Locate(const Config& config, const std::string& path);

  // Creates (or checks) <dir> = <root>/<host>/<uid> under `root` (any root: the shared tree's
  // <shared>/.kite-ckpt for exports), with the ownership rules above.
  static Status EnsureTree(const std::string& root, const std::string& host, uid_t uid, gid_t gid);

  // The temporary directory of `home`'s jobs of `uid` in the shared tree, created (or checked,
  // as above) if need be: <first shared path>/.kite-tmp/<home>/<uid>, the last owned by the
  // user, mode 0700; the others root's, 0711. Every host sees the same one, so a job's
  // temporary files move with it (DESIGN §3: "/tmp of a job maps to a per-home directory in the
  // cluster FS"). NOT_FOUND when this host has no shared path.
  static StatusOr<std::string> PrepareTmpDir(const Config& config, const std::string& home, uid_t uid, gid_t gid);

  // restore_job's checks of `path` for a job of `creds`: absolute, canonical (no symlink,
  // "." or ".."), inside Root(), a regular file named *.img owned by creds.uid with one
  // link, and a valid image (syscall-shim/image/image_validate.h) whose real, effective and
  // saved uid and gid are creds'. uid 0 only with config.allow_root.
  // INVALID_ARGUMENT: a bad path or a malformed image; PERMISSION_DENIED: ownership or ids;
  // NOT_FOUND: no such file.
  static Status ValidateImage(const Config& config, const std::string& path, const rpc::Credentials& creds);

  // restore_job's checks of a whole job's checkpoint: `path` names its manifest
  // (syscall-shim/tree/job_manifest.h, *.job) with the same path and ownership rules as an
  // image, except that it may be anywhere on the shared tree (kite checkpoint --to); the
  // manifest must parse, every image and pipe-data file it names must pass them too (images:
  // ValidateImage), and its ckpt-dir, if any, must be <root>/<host>/<creds.uid>. Returns it.
  static StatusOr<JobManifest> ValidateCheckpoint(const Config& config, const std::string& path,
                                                  const rpc::Credentials& creds);
};

}  // namespace kite
