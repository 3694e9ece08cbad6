// JobManager: the guest jobs of this host. Claims a slot and starts a job in one step,
// relays its stdio through offset-addressed buffers (backpressure instead of loss), reports
// its exit status, and kills and forgets it on release. Thread-safe: every public method may
// be called from any thread (the Thrift handler's connection threads).
//
// Threads: one I/O thread serves all jobs with epoll. It owns every job fd (closes them,
// with the mutex held, so other threads may ioctl them under the mutex) and it alone calls
// wait*(): job roots and orphaned descendants are reaped in one place, so no exit status is
// ever taken by the wrong waiter. One thread for all jobs rather than one per job: a host
// runs dozens of short jobs (a build), and a single reaper needs a single loop anyway.
// A housekeeping thread releases jobs whose home stopped collecting them (kGcAfter after
// the exit, with a warning), and kills running jobs no home has contacted for kOrphanAfter.
//
// Process-wide effects: the process becomes a child subreaper (PR_SET_CHILD_SUBREAPER), so
// a job's orphans are reparented here and reaped. Nothing else in the process may fork
// children and wait for them. In JobCgroups' unified mode the whole process moves into the
// host's guest-level v1 cgroups for the manager's lifetime (remoted/job_cgroups.h).
//
// Errors: INVALID_ARGUMENT malformed request; PERMISSION_DENIED credentials refused;
// RESOURCE_EXHAUSTED no free slot, or the home holds its fair share while other homes compete
// for the slots (remoted/fair_share.h); FAILED_PRECONDITION the host takes no guests (owner
// active, draining) or the job's cwd is missing here; NOT_FOUND no such job (never started,
// or released); UNAVAILABLE shutting down.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "kite/rpc/kite_types.h"
#include "remoted/fair_share.h"
#include "remoted/job_cgroups.h"
#include "remoted/job_launcher.h"
#include "remoted/owner_monitor.h"
#include "remoted/unique_fd.h"

namespace kite {

// What a checkpointed job does once its image is written (checkpoint_job's flags).
enum class AfterCheckpoint {
  kExit,  // it is gone (SIGKILL): the image is the job now
  kRun,   // it runs on (an image kept for later: kite checkpoint)
  kStop,  // it waits stopped until Release (moved) or Resume (the move failed)
};

class JobManager {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int32_t kMaxWaitMs = 5000;            // read_output long-poll cap
  static constexpr size_t kMaxReadBytes = 1 << 20;      // per stream per read_output
  static constexpr std::chrono::milliseconds kDrainAfterExit{200};
  static constexpr std::chrono::seconds kGcAfter{60};
  // A running job no home has contacted for this long is an orphan: killed and released.
  static constexpr std::chrono::seconds kOrphanAfter{120};

  // Starts the threads and prepares the host's cgroups (removing groups a crashed
  // predecessor left). `owner` must outlive the manager.
  static StatusOr<std::unique_ptr<JobManager>> Create(const Config& config, const OwnerMonitor* owner);
  // Shutdown(): no job outlives the manager.
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // start_job: validates, checks the host state, claims a slot, spawns. Returns the job id.
  StatusOr<int64_t> Start(const rpc::ExecSpec& spec);
  // read_output: drops output before the acks, waits up to wait_ms (capped at kMaxWaitMs)
  // for more or for the exit, returns at most kMaxReadBytes per stream. `exited` is set only
  // in a reply that holds the last byte of both streams.
  StatusOr<rpc::JobOutput> ReadOutput(int64_t job, int64_t out_ack, int64_t err_ack, int32_t wait_ms);
  // write_input (IDL semantics): returns the stdin offset accepted up to.
  StatusOr<int64_t> WriteInput(int64_t job, int64_t offset, const std::string& data, bool eof);
  // Sends `signo` (0..64) to the job's process group while its root lives.
  Status Signal(int64_t job, int32_t signo);
  // New window size for the job's pty (SIGWINCH follows); nothing without a pty.
  Status Resize(int64_t job, const rpc::WinSize& winsize);
  // checkpoint_job (IDL): pauses the job's stdin, asks its root for an image (the shim's
  // protocol, syscall-shim/checkpoint/checkpoint_protocol.h) and waits up to
  // kCheckpointTimeout. kExit: the root then kills itself; kStop: it stops itself and stays
  // until Release or Resume; either way this waits for its output to drain so the offsets
  // returned are where it stopped. kRun: it runs on. FAILED_PRECONDITION: the job refused
  // (the reason is the shim's), has exited, or is already stopped by a checkpoint; it keeps
  // running.
  StatusOr<rpc::CheckpointReply> Checkpoint(int64_t job, AfterCheckpoint after);
  // resume_job (IDL): a job stopped by Checkpoint(kStop) runs on (SIGCONT, stdin flows).
  Status Resume(int64_t job);
  // restore_job (IDL): checks the image (JobCheckpoint::ValidateImage), then starts
  // kite-restore on it as a job like Start, its offsets continuing the checkpointed job's, and
  // returns once kite-restore has handed over to the restored program. A job whose home is
  // this host takes no slot and ignores the owner's state. FAILED_PRECONDITION with
  // kite-restore's reason when it refused or failed (the new job is released).
  StatusOr<int64_t> Restore(const rpc::RestoreSpec& spec, bool stream_pages = false);
  static constexpr std::chrono::seconds kCheckpointTimeout{30};
  // How long a process that preloads the shim may go without its handler (between its exec
  // and the shim's constructor) before it counts as one without the shim.
  static constexpr std::chrono::seconds kShimStartGrace{2};
  // Kills whatever is left of the job (its process group and everything in its cgroups),
  // waits for the root to be reaped, frees the slot and removes the job's cgroups.
  Status Release(int64_t job);
  // Refuses new jobs, kills and releases every job, stops the threads. Idempotent.
  void Shutdown();

  int slots() const { return config_.slots; }
  int free_slots() const;
  std::vector<rpc::GuestJob> Guests() const;
  OwnerMonitor::GuestSample SampleGuests() const;
  const JobCgroups& cgroups() const { return cgroups_; }

  void TEST_SetGcAfter(std::chrono::milliseconds after);

 private:
  struct Job;
  // Where a restored job's streams continue (restore_job), or null for a fresh job.
  struct ResumePoint {
    int64_t stdout_offset = 0, stderr_offset = 0, stdin_offset = 0;
    std::string termios;  // raw struct termios for the new pty, or empty
    std::string command;  // for display
    std::string ckpt_dir; // where the restored shim writes its next image
    pid_t highest_vpid = 0;  // the highest pid the restored processes are known by
  };
  StatusOr<int64_t> StartJob(const rpc::ExecSpec& spec, const ResumePoint* resume);
  Status AwaitRestored(int64_t id);
  // Where kite-restore-tree records the pids of the restored job whose root is `root`.
  std::string PidMapPath(pid_t root) const;
  bool OutputDrainedLocked(const Job& job) const;  // REQUIRES(mu_)
  JobManager(const Config& config, const OwnerMonitor* owner, UniqueFd epoll, UniqueFd wake);
  LaunchOptions CurrentLaunchOptions();
  std::shared_ptr<Job> FindLocked(int64_t id) const;  // REQUIRES(mu_)
  void WakeIo();

  // I/O thread.
  void IoLoop();
  void ReadSource(Job& job, int source);
  void WriteStdin(Job& job);
  void Reap();
  // Finishes draining, closes what is done, registers interest. Returns false when the job
  // is released and its fds are closed (forget it).
  bool Maintain(Job& job, Clock::time_point now, Clock::time_point* next_deadline);
  void SyncEpollLocked(Job& job);  // REQUIRES(mu_)
  void CloseFdLocked(Job& job, int fd);  // REQUIRES(mu_)
  void CloseAllLocked(Job& job);   // REQUIRES(mu_)
  // Gives the job's guest slot back (once): at its exit, or at its release.
  void FreeSlotLocked(Job& job);   // REQUIRES(mu_)

  void HousekeepingLoop();

  const Config config_;
  const OwnerMonitor* const owner_;
  JobCgroups cgroups_;
  const UniqueFd epoll_;
  const UniqueFd wake_;  // eventfd: new job, new input, buffer drained, release, stop

  // Lock order: mu_ is a leaf with respect to OwnerMonitor and JobCgroups (their calls are
  // made without holding mu_). Every Job field marked GUARDED_BY(mu_) uses this mutex.
  mutable std::mutex mu_;
  // Held by Reap() and by a Start() from before its spawn until the root is in roots_: a root
  // spawned into its cgroup is registered only after its exec, and may already have exited.
  // Lock order: reap_mu_ before mu_.
  std::mutex reap_mu_;
  std::map<int64_t, std::shared_ptr<Job>> jobs_;                // GUARDED_BY(mu_)
  std::unordered_map<pid_t, std::shared_ptr<Job>> roots_;       // GUARDED_BY(mu_): unreaped roots
  std::vector<std::shared_ptr<Job>> to_register_;               // GUARDED_BY(mu_): for the I/O thread
  int used_slots_ = 0;                                          // GUARDED_BY(mu_)
  FairShare fair_;                                              // GUARDED_BY(mu_)
  int starting_ = 0;                                            // GUARDED_BY(mu_): Start() calls in flight
  int64_t next_id_ = 0;                                         // GUARDED_BY(mu_)
  bool shutting_down_ = false;                                  // GUARDED_BY(mu_)
  bool stop_threads_ = false;                                   // GUARDED_BY(mu_)
  std::chrono::milliseconds gc_after_ = kGcAfter;               // GUARDED_BY(mu_)
  std::condition_variable state_cv_;  // starting_ reached 0, stop_threads_
  bool shim_warned_ = false;                                    // GUARDED_BY(mu_)

  // Owned by the I/O thread.
  std::map<int64_t, std::shared_ptr<Job>> io_jobs_;
  std::unordered_map<int, int64_t> watches_;  // registered fd -> job id
  std::vector<char> io_buf_;

  std::thread io_thread_;
  std::thread housekeeping_thread_;
};

}  // namespace kite
