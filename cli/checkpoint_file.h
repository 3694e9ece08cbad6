// kite checkpoint --to FILE: moves a checkpoint that kite-remoted wrote in the job's checkpoint
// directory (a job manifest and the images and pipe files it names) to FILE and files beside it
// named after FILE, so that it outlives the host and can be restarted (kite restart FILE).
// Runs as the calling user, who owns every one of those files.
#pragma once

#include <string>

#include "common/status.h"

namespace kite {

// Moves the checkpoint whose manifest is `manifest` to `dest` (absolute, named *.job): the
// images become <dest without .job>.<vpid>.img, the pipe data <...>.pipe-<inode>, and `dest`
// is written last (atomically), so a reader sees the whole checkpoint or none. Files are
// renamed when `dest` is on the same file system, else copied and the originals removed.
// INVALID_ARGUMENT: a bad `dest` or manifest; the errno's code for a failed file operation
// (then the original checkpoint is left whole where it was, or complete at `dest`).
Status MoveCheckpoint(const std::string& manifest, const std::string& dest);

// `path` made absolute against the working directory (unchanged when it already is).
StatusOr<std::string> AbsolutePath(const std::string& path);

}  // namespace kite
