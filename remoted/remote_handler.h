// RemoteHandler: the Thrift Remote service (common/kite.thrift). Thin: it validates what the
// IDL cannot express, calls JobManager / OwnerMonitor / StatePublisher and throws their
// Status as a typed KiteError. One handler serves every connection; thread-safe.
#pragma once

#include "kite/rpc/Remote.h"
#include "remoted/checkpoint_transfer.h"
#include "remoted/job_manager.h"
#include "remoted/owner_monitor.h"
#include "remoted/state_publisher.h"

namespace kite {

class RemoteHandler : public rpc::RemoteIf {
 public:
  // All four outlive the handler. stream_pages: [remoted] stream_pages (PageStream).
  RemoteHandler(JobManager* jobs, OwnerMonitor* owner, const StatePublisher* publisher,
                const CheckpointTransfer* transfer, bool stream_pages)
      : jobs_(jobs), owner_(owner), publisher_(publisher), transfer_(transfer), stream_pages_(stream_pages) {}

  void status(rpc::HostStatus& out) override;
  void start_job(rpc::ExecReply& out, const rpc::ExecSpec& spec) override;
  void read_output(rpc::JobOutput& out, int64_t job_id, int64_t stdout_ack, int64_t stderr_ack,
                   int32_t wait_ms) override;
  int64_t write_input(int64_t job_id, int64_t offset, const std::string& data, bool eof) override;
  void signal_job(int64_t job_id, int32_t signo) override;
  void resize(int64_t job_id, const rpc::WinSize& winsize) override;
  void release(int64_t job_id) override;
  // Accepted from any caller: every connection is mutual TLS, so the caller is a cluster host.
  void set_owner(rpc::OwnerOverride::type mode) override;
  void checkpoint_job(rpc::CheckpointReply& out, int64_t job_id, bool leave_running, bool stop) override;
  void resume_job(int64_t job_id) override;
  void restore_job(rpc::ExecReply& out, const rpc::RestoreSpec& spec) override;
  void checkpoint_files(std::vector<rpc::CheckpointFile>& out, const std::string& manifest_path) override;
  void read_checkpoint_file(std::string& out, const std::string& path, int64_t offset, int32_t max_bytes) override;
  void drop_checkpoint(const std::string& manifest_path) override;

 private:
  JobManager* const jobs_;
  OwnerMonitor* const owner_;
  const StatePublisher* const publisher_;
  const CheckpointTransfer* const transfer_;
  const bool stream_pages_;
};

}  // namespace kite
