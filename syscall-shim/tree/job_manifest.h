// The checkpoint of a whole job: which processes it had, in what shape, with which image each,
// and the unread bytes of the pipes between them. kite-remoted writes it beside the images
// when it checkpoints a job (docs/image-format.md, "Job manifest"); kite-restore-tree reads it
// and restores the tree; kite-remoted reads it again to validate a restore_job request.
//
// Text, one record per line, fields separated by one space:
//   kite-job-checkpoint 1
//   stream <0|1|2> pipe <inode>     the launcher's stream N was this pipe (the job's side)
//   stream <0|1|2> tty              ... the job's pty
//   stream <0|1|2> none             ... absent (closed)
//   proc <vpid> <vparent> <vpgid> image <file>     a live process and its image
//   proc <vpid> <vparent> <vpgid> exited <status>  a child that had exited, not yet reaped
//   pipe <inode> <file|->           a pipe of the job's own and its unread bytes (- : none)
//   share <pos> <vpid> <fd> <vpid> <fd>...
//                                   one open description of a regular file that several
//                                   descriptors hold (dup, 2>&1, inherited by a child), and its
//                                   file offset: restored as one description again
//   ckpt-dir <absolute path>        where the job's shims write their next images (optional;
//                                   absent: the manifest's own directory)
// The first proc is the job's root (vparent 0: its parent is at home); every other proc's
// vparent is a live proc listed before it; vpgid is a listed proc. Pids are vpids: the pids the
// job knows (pid_map_file.h). <file> names a file in the manifest's own directory (no '/').
// Every stream is listed exactly once. At most kMaxProcs procs and kMaxPipes pipes. A share
// names at least two descriptors, each of a live proc listed before it, and no descriptor is in
// two shares; at most kMaxShares shares.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace kite {

struct JobManifest {
  static constexpr int kMaxProcs = 64;  // the shim's PidTable::kCapacity
  static constexpr int kMaxPipes = 256;
  static constexpr int kMaxShares = 256;
  static constexpr int kMaxShareHolders = 1024;
  static constexpr char kHeader[] = "kite-job-checkpoint 1";

  enum class StreamKind { kNone, kPipe, kTty };
  struct Stream {
    StreamKind kind = StreamKind::kNone;
    uint64_t inode = 0;  // kPipe
  };
  struct Proc {
    pid_t vpid = 0;
    pid_t vparent = 0;
    pid_t vpgid = 0;
    bool exited = false;
    std::string image;    // live: the image's file name
    int wait_status = 0;  // exited: as wait() reports it
  };
  struct Pipe {
    uint64_t inode = 0;
    std::string data_file;  // empty: no unread bytes
  };
  struct Holder {
    pid_t vpid = 0;
    int fd = 0;
    bool operator==(const Holder&) const = default;
  };
  struct Share {
    int64_t pos = 0;               // the description's file offset
    std::vector<Holder> holders;   // at least two
  };

  Stream streams[3];
  std::vector<Proc> procs;  // procs[0] is the root
  std::vector<Pipe> pipes;
  std::vector<Share> shares;
  // The checkpoint directory the restored shims keep in their memory (KITE_CKPT_DIR when the
  // job started): a restored job's next checkpoint lands there. Empty: the manifest's own
  // directory (true unless the checkpoint was moved elsewhere, as `kite checkpoint --to` does).
  std::string ckpt_dir;

  std::string Serialize() const;
  // Parses and checks everything the format above requires. INVALID_ARGUMENT with the line.
  static StatusOr<JobManifest> Parse(const std::string& text);

  // The index of `vpid` in procs, or -1.
  int IndexOf(pid_t vpid) const;
  // The stream (0-2) whose pipe is `inode`, or -1.
  int StreamOfPipe(uint64_t inode) const;
  const Pipe* FindPipe(uint64_t inode) const;
  // The share that descriptor `fd` of `vpid` is in, or null.
  const Share* FindShare(pid_t vpid, int fd) const;
};

// The files of the checkpoint whose manifest is `manifest_path`: the manifest itself and the
// images and pipe-data files it names (all in its directory), with their total size.
struct CheckpointFiles {
  std::vector<std::string> paths;  // the manifest first
  int64_t bytes = 0;               // of those that exist
  int processes = 0;               // live ones (images)
};
// The copies of deleted open files that go with the image `image_path` ("<image>.fd<N>",
// docs/image-format.md §6), as full paths with their descriptor numbers, sorted by number.
std::vector<std::pair<int, std::string>> DeletedFileCopies(const std::string& image_path);

// INVALID_ARGUMENT when the manifest does not parse (paths then holds the manifest alone).
StatusOr<CheckpointFiles> ListCheckpointFiles(const std::string& manifest_path);
// Removes every file of that checkpoint that exists (the home does once the job runs
// elsewhere, or after a failed move). Best effort: a file already gone is no error.
void RemoveCheckpoint(const std::string& manifest_path);

}  // namespace kite
