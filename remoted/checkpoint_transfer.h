// CheckpointTransfer: a checkpoint's files between hosts. A guest job's images are written to
// the checkpoint directory on its host's own disk (remoted/job_checkpoint.h); a move copies
// them from there straight into the same path on the target host, over the Remote service
// (mutual TLS), and removes them on both sides once the job runs again. Before, every image
// was written to and read back from the cluster file system: two trips through the file
// server for bytes only one host ever reads, which made clearing a host of build jobs take
// seconds (docs/design-notes.md, "Where images go").
//
// The serving side (List, Read, Drop) answers any cluster host: TLS has already shown the
// caller is one, and root on a cluster host could read the cluster file system before. It
// serves only files in this host's checkpoint directory, by canonical path, never through a
// symlink. The fetching side (Fetch) writes only into the directory of the checkpoint's own
// user, files owned by that user, never over an existing file.
// Thread-safe: no state beyond the configuration.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/rpc.h"
#include "common/status.h"
#include "kite/rpc/kite_types.h"

namespace kite {

class CheckpointTransfer {
 public:
  // Largest piece Read returns: well under the Thrift frame limit (common/rpc.h).
  static constexpr int kMaxChunkBytes = 4 << 20;

  CheckpointTransfer(const Config& config, std::shared_ptr<TlsContext> tls)
      : config_(config), tls_(std::move(tls)) {}

  const std::string& host_name() const { return config_.host_name; }

  // --- serving: this host holds the checkpoint ---
  // The manifest (first) and every file it names, with sizes.
  StatusOr<std::vector<rpc::CheckpointFile>> List(const std::string& manifest_path) const;
  // Up to max_bytes of `path` from `offset` ("" at or past its end).
  StatusOr<std::string> Read(const std::string& path, int64_t offset, int32_t max_bytes) const;
  // Removes the checkpoint's files here; NOT_FOUND is no error (already gone).
  Status Drop(const std::string& manifest_path) const;

  // --- fetching: this host restores it ---
  // Copies the checkpoint spec names from spec.image_host into the same path here. Nothing to
  // do when image_host is empty (the shared tree) or this host. On failure nothing fetched is
  // left behind; the error says which host and file.
  Status Fetch(const rpc::RestoreSpec& spec) const;
  // Whether Fetch copies anything for spec (so the copies are the restorer's to remove).
  bool Fetches(const rpc::RestoreSpec& spec) const {
    return !spec.image_host.empty() && spec.image_host != config_.host_name;
  }

  // For `kite checkpoint --to`: copies the checkpoint to <shared>/.kite-ckpt/<host>/<uid>/ on
  // the shared tree (the home's `kite` moves it on from there), synced, and removes the local
  // files. Returns the exported manifest's path. NOT_FOUND when this host has no shared tree.
  StatusOr<std::string> Export(const std::string& manifest_path, const rpc::Credentials& creds) const;

  // At start: removes every file left in the checkpoint directory (a previous remoted's jobs
  // are gone, and so are the moves they were in). Returns how many.
  int Sweep() const;

 private:
  const Config& config_;
  std::shared_ptr<TlsContext> tls_;
};

}  // namespace kite
