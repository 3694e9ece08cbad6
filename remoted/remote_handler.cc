// RemoteHandler: Status in, KiteError out.
#include "remoted/remote_handler.h"

#include "common/log.h"
#include "common/rpc.h"

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
}

void RemoteHandler::resume_job(int64_t job_id) { ThrowIfError(jobs_->Resume(job_id)); }

void RemoteHandler::restore_job(rpc::ExecReply& out, const rpc::RestoreSpec& spec) {
  auto id = jobs_->Restore(spec);
  ThrowIfError(id.status());
  out.job_id = *id;
}

}  // namespace kite
