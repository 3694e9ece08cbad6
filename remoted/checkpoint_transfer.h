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
// CheckpointTransfer is thread-safe (no state beyond the configuration); a PageStream belongs
// to the one restore it was made for.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/rpc.h"
#include "common/status.h"
#include "kite/rpc/Remote.h"
#include "kite/rpc/kite_types.h"

namespace kite {

// The page data of a move's images, going straight from the source host into the restoring
// processes instead of through this host's disk: FetchStreaming wrote each image with a hole
// where its PAGE_DATA section is and made the FIFO "<image>.pages" beside it; Start copies the
// page data into the FIFOs, one image after the other, on a thread of its own, while each
// kite-restore reads its own (kite-restore --pages, restorer.h). The copy overlaps the
// restore: the pages go into the restored process's memory as they arrive.
class PageStream {
 public:
  struct Piece {
    std::string remote;  // the image on the source host
    std::string fifo;    // here
    int64_t offset = 0;  // PAGE_DATA's place in the image
    int64_t size = 0;
  };
  PageStream(std::unique_ptr<Conn<rpc::RemoteClient>> conn, std::string from, std::vector<Piece> pieces);
  ~PageStream();  // Finish()
  PageStream(const PageStream&) = delete;
  PageStream& operator=(const PageStream&) = delete;

  void Start();
  // Stops a copy whose reader is gone or never came (the restore is over), waits for the
  // thread and removes the FIFOs. The copy's error, if it had one; OK when it delivered
  // every page.
  Status Finish();

 private:
  Status Run();
  Status Pump(const Piece& piece);

  std::unique_ptr<Conn<rpc::RemoteClient>> conn_;
  const std::string from_;
  const std::vector<Piece> pieces_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  Status result_;  // written by the thread, read after join
  bool finished_ = false;
};

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
  // The same, but each image's page data stays on the source host until the returned stream
  // copies it into the restoring process (kite-restore-tree --stream-pages). Null when there
  // is nothing to fetch. The caller Starts the stream before the restore and Finishes it after.
  StatusOr<std::unique_ptr<PageStream>> FetchStreaming(const rpc::RestoreSpec& spec) const;
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
  Status FetchFiles(const rpc::RestoreSpec& spec, bool stream_pages, std::unique_ptr<PageStream>* stream) const;

  const Config& config_;
  std::shared_ptr<TlsContext> tls_;
};

}  // namespace kite
