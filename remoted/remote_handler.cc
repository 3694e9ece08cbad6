// RemoteHandler: Status in, KiteError out.
#include "remoted/remote_handler.h"

#include "common/log.h"
#include "common/rpc.h"
#include "syscall-shim/tree/job_manifest.h"

namespace kite {

void RemoteHandler::status(rpc::HostStatus& out) { out = publisher_->BuildStatus(); }

void RemoteHandler::start_job(rpc::ExecReply& out, const rpc::ExecSpec& spec) {
  auto id = jobs_->Start(spec);
  ThrowIfError(id.status());
  out.job_id = *id;
}

void RemoteHandler::read_output(rpc::JobOutput& out, int64_t job_id, int64_t stdout_ack, int64_t stderr_ack,
                                int32_t wait_ms) {
  auto r = jobs_->ReadOutput(job_id, stdout_ack, stderr_ack, wait_ms);
  ThrowIfError(r.status());
  out = std::move(r).value();
}

int64_t RemoteHandler::write_input(int64_t job_id, int64_t offset, const std::string& data, bool eof) {
  auto r = jobs_->WriteInput(job_id, offset, data, eof);
  ThrowIfError(r.status());
  return *r;
}

void RemoteHandler::signal_job(int64_t job_id, int32_t signo) { ThrowIfError(jobs_->Signal(job_id, signo)); }

void RemoteHandler::resize(int64_t job_id, const rpc::WinSize& winsize) {
  ThrowIfError(jobs_->Resize(job_id, winsize));
}

void RemoteHandler::release(int64_t job_id) { ThrowIfError(jobs_->Release(job_id)); }

void RemoteHandler::set_owner(rpc::OwnerOverride::type mode) {
  ThrowIfError(owner_->SetOverride(mode));
  KLOG_INFO("owner override set to {} by a cluster peer", static_cast<int>(mode));
}

void RemoteHandler::checkpoint_job(rpc::CheckpointReply& out, int64_t job_id, bool leave_running, bool stop) {
  auto r = jobs_->Checkpoint(job_id, leave_running ? AfterCheckpoint::kRun
                                     : stop        ? AfterCheckpoint::kStop
                                                   : AfterCheckpoint::kExit);
  ThrowIfError(r.status());
  out = std::move(r).value();
  out.image_host = transfer_->host_name();
  if (auto files = ListCheckpointFiles(out.image_path); files.ok()) {
    out.image_bytes = files->bytes;
    out.processes = files->processes;
  }
  if (leave_running) {
    // kite checkpoint --to: the home's `kite` takes it from the shared tree.
    auto exported = transfer_->Export(out.image_path, out.creds);
    if (exported.ok()) {
      out.image_path = *exported;
      out.image_host.clear();
    } else if (exported.status().code() != StatusCode::kNotFound) {
      (void)transfer_->Drop(out.image_path);
      ThrowIfError(exported.status());
    }
  }
}

void RemoteHandler::resume_job(int64_t job_id) { ThrowIfError(jobs_->Resume(job_id)); }

void RemoteHandler::restore_job(rpc::ExecReply& out, const rpc::RestoreSpec& spec) {
  const bool fetched = transfer_->Fetches(spec);
  std::unique_ptr<PageStream> pages;
  if (fetched && stream_pages_) {
    auto stream = transfer_->FetchStreaming(spec);
    ThrowIfError(stream.status());
    pages = std::move(stream).value();
    pages->Start();
  } else {
    ThrowIfError(transfer_->Fetch(spec));
  }
  auto id = jobs_->Restore(spec, pages != nullptr);
  const Status streamed = pages ? pages->Finish() : OkStatus();
  // The copies are this host's: the restored processes have it all in memory now, and a failed
  // restore leaves the original (on image_host) to the home.
  if (fetched) (void)transfer_->Drop(spec.image_path);
  if (!id.ok() && !streamed.ok()) {
    // kite-restore said the stream broke off; the copy says why.
    ThrowIfError(Status(id.status().code(), id.status().message() + " (" + streamed.message() + ")"));
  }
  ThrowIfError(id.status());
  if (!streamed.ok()) KLOG_WARN("job {} restored, but its page stream reported: {}", *id, streamed.ToString());
  out.job_id = *id;
}

void RemoteHandler::checkpoint_files(std::vector<rpc::CheckpointFile>& out, const std::string& manifest_path) {
  auto r = transfer_->List(manifest_path);
  ThrowIfError(r.status());
  out = std::move(r).value();
}

void RemoteHandler::read_checkpoint_file(std::string& out, const std::string& path, int64_t offset,
                                         int32_t max_bytes) {
  auto r = transfer_->Read(path, offset, max_bytes);
  ThrowIfError(r.status());
  out = std::move(r).value();
}

void RemoteHandler::drop_checkpoint(const std::string& manifest_path) {
  ThrowIfError(transfer_->Drop(manifest_path));
}

}  // namespace kite
