// JobManager: the jobs table and slots, the epoll I/O thread (stdio relay, exit detection,
// reaping) and the release/kill path.
#include "remoted/job_manager.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

#include "common/log.h"
#include "remoted/input_queue.h"
#include "remoted/job_checkpoint.h"
#include "remoted/job_tree.h"
#include "remoted/unique_fd.h"
#include "syscall-shim/pids/pid_map_file.h"
#include "syscall-shim/tree/job_manifest.h"
#include "remoted/output_buffer.h"
#include "syscall-shim/checkpoint/checkpoint_protocol.h"

namespace kite {
namespace {

constexpr int kStdout = 0, kStderr = 1;
// Read sources of a job: its stdout pipe, its stderr pipe, its pty master.
constexpr int kSrcStdout = 0, kSrcStderr = 1, kSrcPty = 2, kSources = 3;
constexpr size_t kIoChunk = 64 << 10;
// After the drain deadline, what a stream may still take in one go past the high-water mark.
constexpr size_t kFinalDrainCap = 2 << 20;
constexpr auto kSweepInterval = std::chrono::milliseconds(250);
constexpr auto kKillTimeout = std::chrono::seconds(3);
constexpr auto kReapTimeout = std::chrono::seconds(5);

int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

rpc::Rusage ToRusage(const struct rusage& ru) {
  rpc::Rusage r;
  r.utime_us = static_cast<int64_t>(ru.ru_utime.tv_sec) * 1000000 + ru.ru_utime.tv_usec;
  r.stime_us = static_cast<int64_t>(ru.ru_stime.tv_sec) * 1000000 + ru.ru_stime.tv_usec;
  r.maxrss_kb = ru.ru_maxrss;
  r.minflt = ru.ru_minflt;
  r.majflt = ru.ru_majflt;
  r.nvcsw = ru.ru_nvcsw;
  r.nivcsw = ru.ru_nivcsw;
  return r;
}

// A job knows some of its processes by pids that are not theirs on this host: the root by its
// deputy's pid at home, restored processes by their pids before the move, and the parent at
// home by its own. A process the job forks here must not get one of those as its real pid: the
// shim would take it for the other (PidTable), and a checkpoint would list two processes under
// one vpid. Linux hands out pids cyclically upwards from the last one given (ns_last_pid), so a
// pid above that is free until the counter gets there: moving the counter past the job's
// highest such pid keeps them all out of reach until the counter wraps around pid_max. (A pid
// below the counter is handed out again only after a wrap-around; that case is not covered.)
void SkipPidsThrough(pid_t highest) {
  static std::mutex mu;  // every write is ours: two jobs must not move the counter back
  std::lock_guard<std::mutex> lock(mu);
  auto read_number = [](const char* path) -> long {
    UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
    char buf[32] = {};
    if (!fd.valid() || ::read(fd.get(), buf, sizeof buf - 1) <= 0) return -1;
    return std::strtol(buf, nullptr, 10);
  };
  const long last = read_number("/proc/sys/kernel/ns_last_pid");
  const long max = read_number("/proc/sys/kernel/pid_max");
  if (last < 0 || max < 0 || highest <= last || highest >= max) return;  // out of reach already
  UniqueFd fd(::open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC));
  const std::string value = std::to_string(highest);
  if (!fd.valid() || ::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    KLOG_WARN("cannot move the pid counter past {} (a job process may get a pid the job knows as another's): {}",
              highest, std::strerror(errno));
}

}  // namespace

struct JobManager::Job {
  enum class Phase { kRunning, kDraining, kExited };

  // Fixed once the job is in jobs_.
  int64_t id = 0;
  pid_t pid = 0;  // the root; also its process group and session (setsid)
  std::string home_host;
  int32_t vpid = 0;
  int32_t uid = 0;
  int64_t started_unix_ms = 0;
  std::string command;
  std::string pty_slave;  // "/dev/pts/N", or empty
  // What checkpoint_job returns for restore_job elsewhere.
  rpc::Credentials creds;
  int32_t home_ppid = 0;
  int tty_mask = 0;
  std::optional<rpc::WinSize> winsize;
  std::string ckpt_dir;   // its KITE_CKPT_DIR; empty: not checkpointable
  JobManifest::Stream streams[3];  // what its stdin, stdout, stderr are on the job's side
  // Restored here because this is its home (a job coming home): it takes no guest slot and is
  // no guest (not evicted, not in Guests()).
  bool at_home = false;
  // Its guest slot went back when it exited (FreeSlotLocked): a build's next recipe may take it
  // before the home has released this one.
  bool slot_freed = false;

  // Fds. Set by Start before the job reaches the I/O thread; from then on changed (closed)
  // only by the I/O thread with mu_ held. -1: closed or absent.
  int pidfd = -1;
  int master = -1;
  int in_fd = -1;  // the stdin pipe or the master
  struct Source {
    int fd = -1;
    int stream = kStdout;
    bool eof = true;
  } src[kSources];  // GUARDED_BY(mu_) (eof)
  std::map<int, uint32_t> registered;  // I/O thread only: fd -> epoll events

  OutputBuffer out[2];  // GUARDED_BY(mu_): stdout, stderr
  InputQueue in;        // GUARDED_BY(mu_)
  bool line_empty = true;  // GUARDED_BY(mu_): the pty's input line (for ^D)
  int64_t stdin_written = 0;   // GUARDED_BY(mu_): stdin offset written into the pipe/pty so far
  int64_t stdin_unread = -1;   // GUARDED_BY(mu_): bytes left in the stdin pipe when it was closed
  bool input_paused = false;   // GUARDED_BY(mu_): checkpointing: nothing more is written to stdin
  bool checkpointing = false;  // GUARDED_BY(mu_): a Checkpoint() call is in flight
  bool move_stopped = false;   // GUARDED_BY(mu_): stopped by checkpoint_job(stop) until release/resume
  // GUARDED_BY(mu_): that checkpoint's manifest. Removed at release or resume, whichever comes:
  // by then the job runs elsewhere or here again (the home drops it too; this is for a home
  // that died mid-move).
  std::string move_checkpoint;
  // GUARDED_BY(mu_): checkpoints done. A read_output waiting when one ends returns at once: a
  // stopped job writes nothing more, and the home's mover waits for its relay to have read up to
  // the checkpoint's offsets before it lets the stopped copy go.
  uint64_t checkpoints = 0;
  Phase phase = Phase::kRunning;  // GUARDED_BY(mu_)
  bool root_reaped = false;       // GUARDED_BY(mu_)
  int wait_status = 0;            // GUARDED_BY(mu_)
  rpc::Rusage rusage;             // GUARDED_BY(mu_)
  Clock::time_point drain_deadline, exited_at, last_contact;  // GUARDED_BY(mu_)
  bool releasing = false;  // GUARDED_BY(mu_)
  bool released = false;   // GUARDED_BY(mu_)
  std::condition_variable cv;  // output, exit, reaped, released

  bool StreamEof(int stream) const {
    for (const Source& s : src) {
      if (s.stream == stream && !s.eof) return false;
    }
    return true;
  }
};

StatusOr<std::unique_ptr<JobManager>> JobManager::Create(const Config& config, const OwnerMonitor* owner) {
  if (config.slots <= 0) return InvalidArgument("slots must be positive");
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return PosixError("epoll_create1", errno);
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) return PosixError("eventfd", errno);
  struct epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake.get();
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &ev) < 0) return PosixError("epoll_ctl", errno);
  // Orphans of guest jobs become our children, so they are reaped (and counted) here
  // instead of lingering under init.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) return PosixError("PR_SET_CHILD_SUBREAPER", errno);
  // Restored jobs' pid maps (syscall-shim/pids/pid_map_file.h): written by kite-restore-tree
  // as the job's user, so sticky and writable by all, like /tmp.
  const std::string sock = config.socket_path();
  const std::string pids_dir = sock.substr(0, sock.rfind('/') + 1) + shim::PidMapFile::kDirName;
  if ((::mkdir(pids_dir.c_str(), 01733) < 0 && errno != EEXIST) || ::chmod(pids_dir.c_str(), 01733) < 0)
    KLOG_WARN("{}: {} (restored job trees cannot record their pids)", pids_dir, std::strerror(errno));
  std::unique_ptr<JobManager> m(new JobManager(config, owner, std::move(epoll), std::move(wake)));
  if (int stale = m->cgroups_.RemoveStale())
    KLOG_WARN("killed and removed {} job cgroup(s) left by a previous kite-remoted", stale);
  m->io_thread_ = std::thread([p = m.get()] { p->IoLoop(); });
  m->housekeeping_thread_ = std::thread([p = m.get()] { p->HousekeepingLoop(); });
  return m;
}

JobManager::JobManager(const Config& config, const OwnerMonitor* owner, UniqueFd epoll, UniqueFd wake)
    : config_(config),
      owner_(owner),
      cgroups_(JobCgroups::Options{"/sys/fs/cgroup", config.cgroup_parent, config.host_name, config.guest_cpu_shares,
                                   config.guest_memory_limit_mb}),
      epoll_(std::move(epoll)),
      wake_(std::move(wake)),
      fair_(config.slots),
      io_buf_(kIoChunk) {
  // Ids are never reused across restarts, so a home cannot read a stranger's job by an old id.
  next_id_ = WallNowMs() * 1000;
}

JobManager::~JobManager() { Shutdown(); }

void JobManager::WakeIo() {
  uint64_t one = 1;
  ssize_t n = ::write(wake_.get(), &one, sizeof one);
  (void)n;  // EAGAIN: the counter is already non-zero, the thread wakes anyway
}

std::shared_ptr<JobManager::Job> JobManager::FindLocked(int64_t id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

LaunchOptions JobManager::CurrentLaunchOptions() {
  LaunchOptions o;
  o.allow_root = config_.allow_root;
  o.sock_path = config_.socket_path();
  o.oom_score_adj = cgroups_.oom_score_adj();
  if (!config_.shim_path.empty() && ::access(config_.shim_path.c_str(), R_OK) == 0) {
    o.shim_path = config_.shim_path;
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    if (!shim_warned_) {
      shim_warned_ = true;
      KLOG_WARN("shim {} is missing: guest jobs run without LD_PRELOAD (not virtualised)",
                config_.shim_path.empty() ? std::string("(not configured)") : config_.shim_path);
    }
  }
  return o;
}

// --- the API ---------------------------------------------------------------------------

StatusOr<int64_t> JobManager::Start(const rpc::ExecSpec& spec) { return StartJob(spec, nullptr); }

StatusOr<int64_t> JobManager::StartJob(const rpc::ExecSpec& spec, const ResumePoint* resume) {
  LaunchOptions options = CurrentLaunchOptions();
  std::string ckpt_dir;
  if (!options.shim_path.empty() && spec.creds.uid >= 0 && spec.creds.gid >= 0 &&
      (spec.creds.uid != 0 || config_.allow_root)) {
    auto dir = JobCheckpoint::PrepareDir(config_, spec.creds.uid, spec.creds.gid);
    if (dir.ok()) {
      ckpt_dir = *dir;
      auto tmp = JobCheckpoint::PrepareTmpDir(config_, spec.home_host, spec.creds.uid, spec.creds.gid);
      if (tmp.ok()) {
        options.tmp_dir = *tmp;
      } else if (tmp.status().code() != StatusCode::kNotFound) {
        KLOG_WARN("no shared temporary directory for {}'s uid {}: {}", spec.home_host, spec.creds.uid,
                  tmp.status().ToString());
      }
    } else {
      KLOG_WARN("no checkpoint directory for uid {}: {}", spec.creds.uid, dir.status().ToString());
    }
  }
  options.ckpt_dir = ckpt_dir;
  // A restore runs kite-restore-tree, kite's own program: the restored processes bring their
  // shim in their memory. Preloaded, the shim would show kite-restore-tree the job's vpids
  // (its getpid() would be the job's, and the pid map would be written under that name).
  if (resume != nullptr) options.shim_path.clear();
  KITE_ASSIGN_OR_RETURN(auto launcher, JobLauncher::Prepare(spec, options));
  // A job whose home is this host is no guest here (it came home after an eviction, or was
  // requeued there): the owner's state and the guest slots do not apply to it.
  const bool at_home = spec.home_host == config_.host_name;
  if (!at_home) {
    switch (owner_->state()) {
      case rpc::HostState::IDLE: break;
      case rpc::HostState::OWNER_ACTIVE:
        return FailedPrecondition("host " + config_.host_name + " takes no guests: its owner is active");
      default:
        return FailedPrecondition("host " + config_.host_name + " takes no guests: it is draining");
    }
  }
  auto job = std::make_shared<Job>();
  job->at_home = at_home;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutting_down_) return Unavailable("kite-remoted on " + config_.host_name + " is shutting down");
    if (!at_home) {
      std::string unfair;
      if (!fair_.Admit(spec.home_host, Clock::now(), &unfair))
        return ResourceExhausted(config_.host_name + ": " + unfair);
      if (used_slots_ >= config_.slots)
        return ResourceExhausted("all " + std::to_string(config_.slots) + " guest slots of " + config_.host_name +
                                 " are taken");
      ++used_slots_;
      fair_.Acquired(spec.home_host);
    }
    ++starting_;
    job->id = next_id_++;
  }
  job->home_host = spec.home_host;
  job->vpid = spec.vpid;
  job->uid = spec.creds.uid;
  job->started_unix_ms = WallNowMs();
  job->command = resume != nullptr && !resume->command.empty() ? resume->command : launcher->command();
  job->creds = spec.creds;
  job->home_ppid = spec.home_ppid;
  job->tty_mask = launcher->tty_mask();
  if (spec.__isset.winsize) job->winsize = spec.winsize;
  job->ckpt_dir = resume != nullptr && !resume->ckpt_dir.empty() ? resume->ckpt_dir : ckpt_dir;
  if (resume != nullptr) {
    job->out[kStdout].StartAt(resume->stdout_offset);
    job->out[kStderr].StartAt(resume->stderr_offset);
    job->in.StartAt(resume->stdin_offset);
    job->stdin_written = resume->stdin_offset;
  } else if (spec.stdin_empty) {
    (void)job->in.Offer(0, {}, /*eof=*/true);  // closed as soon as the job is registered
  }

  SkipPidsThrough(std::max<pid_t>({spec.vpid, spec.home_ppid, resume != nullptr ? resume->highest_vpid : 0}));
  // Unified mode: the root is born in the job's group (no attach: see job_cgroups.h).
  UniqueFd job_cgroup = cgroups_.CreateJob(job->id);
  // Launched into a cgroup, the root is registered only after its exec (job_launcher.h): until
  // then the reaper must not take its exit status.
  std::unique_lock<std::mutex> reap_lock(reap_mu_, std::defer_lock);
  if (job_cgroup.valid()) reap_lock.lock();
  auto launched = launcher->Launch(
      [&](pid_t pid) {
        cgroups_.AddProcess(job->id, pid);  // attach mode only
        {
          std::lock_guard<std::mutex> lock(mu_);
          job->pid = pid;
          roots_[pid] = job;
        }
        if (reap_lock.owns_lock()) reap_lock.unlock();
      },
      job_cgroup.get());
  if (reap_lock.owns_lock()) reap_lock.unlock();
  job_cgroup.reset();
  if (!launched.ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = roots_.find(job->pid);
      if (it != roots_.end() && it->second == job) roots_.erase(it);
      if (!at_home) {
        --used_slots_;
        fair_.Released(spec.home_host);
      }
      if (--starting_ == 0) state_cv_.notify_all();
    }
    cgroups_.KillAll(job->id, kKillTimeout);
    cgroups_.RemoveJob(job->id);
    KLOG_WARN("cannot start job for {} vpid {} ({}): {}", spec.home_host, spec.vpid, job->command,
              launched.status().ToString());
    return launched.status();
  }
  LaunchedJob& l = launched.value();
  if (!l.pidfd.valid()) KLOG_WARN("pidfd_open({}) failed: the exit of job {} is noticed by polling", l.pid, job->id);
  job->pty_slave = l.pty_slave;
  job->pidfd = l.pidfd.release();
  job->master = l.master.release();
  const int tty = launcher->tty_mask();
  job->in_fd = (tty & JobLauncher::kTtyStdin) ? job->master : l.stdin_pipe.release();
  job->src[kSrcStdout] = {l.stdout_pipe.release(), kStdout, false};
  job->src[kSrcStderr] = {l.stderr_pipe.release(), kStderr, false};
  // A terminal has one output: it goes to stdout when stdout was a terminal at home, else
  // to stderr (a terminal only on stderr or stdin: diagnostics, prompts and echo).
  job->src[kSrcPty] = {job->master, (tty & JobLauncher::kTtyStdout) ? kStdout : kStderr, false};
  for (Job::Source& s : job->src) s.eof = s.fd < 0;
  // The job's side of each stream: its pipe's inode (both ends share it), or its terminal.
  auto stream_of = [&](int bit, int fd) {
    JobManifest::Stream st;
    struct stat sb;
    if (tty & bit) {
      st.kind = JobManifest::StreamKind::kTty;
    } else if (fd >= 0 && ::fstat(fd, &sb) == 0 && S_ISFIFO(sb.st_mode)) {
      st.kind = JobManifest::StreamKind::kPipe;
      st.inode = sb.st_ino;
    }
    return st;
  };
  job->streams[0] = stream_of(JobLauncher::kTtyStdin, job->in_fd);
  job->streams[1] = stream_of(JobLauncher::kTtyStdout, job->src[kSrcStdout].fd);
  job->streams[2] = stream_of(JobLauncher::kTtyStderr, job->src[kSrcStderr].fd);
  if (resume != nullptr && !resume->termios.empty() && job->master >= 0) {
    // The checkpointed job's terminal settings. kite-restore is still loading the image.
    struct termios t;
    std::memcpy(&t, resume->termios.data(), sizeof t);
    if (::tcsetattr(job->master, TCSANOW, &t) < 0)
      KLOG_WARN("job {}: restoring its terminal settings: {}", job->id, std::strerror(errno));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job->last_contact = Clock::now();
    jobs_[job->id] = job;
    to_register_.push_back(job);
    if (--starting_ == 0) state_cv_.notify_all();
  }
  WakeIo();
  KLOG_INFO("job {} started: pid {}, uid {}, home {} vpid {}{}: {}", job->id, l.pid, job->uid, job->home_host, job->vpid,
            job->pty_slave.empty() ? "" : ", pty " + job->pty_slave, job->command);
  return job->id;
}

StatusOr<rpc::JobOutput> JobManager::ReadOutput(int64_t id, int64_t out_ack, int64_t err_ack, int32_t wait_ms) {
  if (wait_ms < 0) return InvalidArgument("wait_ms must not be negative");
  wait_ms = std::min(wait_ms, kMaxWaitMs);
  std::unique_lock<std::mutex> lock(mu_);
  std::shared_ptr<Job> job = FindLocked(id);
  if (!job) return NotFound("no job " + std::to_string(id) + " on " + config_.host_name);
  const int64_t acks[2] = {out_ack, err_ack};
  const char* names[2] = {"stdout", "stderr"};
  bool unpaused = false;
  for (int s = 0; s < 2; ++s) {
    if (acks[s] < 0 || acks[s] > job->out[s].end())
      return InvalidArgument(std::string(names[s]) + " ack " + std::to_string(acks[s]) + " is outside the " +
                             std::to_string(job->out[s].end()) + " bytes produced");
    bool was_full = job->out[s].full();
    job->out[s].Acknowledge(acks[s]);
    unpaused |= was_full && !job->out[s].full();
  }
  job->last_contact = Clock::now();
  if (unpaused) WakeIo();
  const uint64_t checkpoints = job->checkpoints;
  job->cv.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] {
    return job->released || shutting_down_ || job->phase == Job::Phase::kExited || job->out[0].end() > out_ack ||
           job->out[1].end() > err_ack || job->checkpoints != checkpoints;
  });
  if (job->released) return NotFound("job " + std::to_string(id) + " was released");
  rpc::JobOutput r;
  r.stdout_offset = job->out[0].Read(out_ack, kMaxReadBytes, &r.stdout_data);
  r.stderr_offset = job->out[1].Read(err_ack, kMaxReadBytes, &r.stderr_data);
  const bool all_out = r.stdout_offset + static_cast<int64_t>(r.stdout_data.size()) == job->out[0].end();
  const bool all_err = r.stderr_offset + static_cast<int64_t>(r.stderr_data.size()) == job->out[1].end();
  if (job->phase == Job::Phase::kExited && all_out && all_err) {
    r.exited = true;
    r.wait_status = job->wait_status;
    r.rusage = job->rusage;
  }
  job->last_contact = Clock::now();
  return r;
}

StatusOr<int64_t> JobManager::WriteInput(int64_t id, int64_t offset, const std::string& data, bool eof) {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<Job> job = FindLocked(id);
  if (!job) return NotFound("no job " + std::to_string(id) + " on " + config_.host_name);
  job->last_contact = Clock::now();
  const int64_t before = job->in.accepted();
  auto accepted = job->in.Offer(offset, data, eof);
  if (!accepted.ok()) return accepted.status().With("job " + std::to_string(id));
  if (*accepted > before || job->in.eof_due()) WakeIo();
  return accepted;
}

namespace {

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}


// Writes `data` to a new file `path` owned by the job's user, mode 0600, durably.
// `sync`: on disk before it returns (a checkpoint that is all that is left of its job).
Status WriteOwnedFile(const std::string& path, const std::string& data, const rpc::Credentials& creds, bool sync) {
  ::unlink(path.c_str());
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return PosixError("creating " + path, errno);
  if (int err = WriteAll(fd.get(), data)) return PosixError("writing " + path, err);
  if (::fchown(fd.get(), static_cast<uid_t>(creds.uid), static_cast<gid_t>(creds.gid)) < 0 ||
      (sync && ::fsync(fd.get()) < 0))
    return PosixError(path, errno);
  return OkStatus();
}

// The command name of process `pid` ("" when it is gone).
std::string CommOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

// The shim's one-line reason in a .err file.
std::string ReadReason(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  if (line.size() > 1000) line.resize(1000);
  return line.empty() ? "no reason given" : line;
}

}  // namespace

StatusOr<rpc::CheckpointReply> JobManager::Checkpoint(int64_t id, AfterCheckpoint after) {
  const bool leave_running = after == AfterCheckpoint::kRun;
  const std::string name = "job " + std::to_string(id);
  // Where a checkpoint's time goes, for the log line at the end (an eviction's clear time is
  // the sum of these over its jobs).
  const auto t_start = Clock::now();
  Clock::duration waited_for_shim{};  // processes between their exec and the shim's handler
  std::shared_ptr<Job> job;
  std::string tty_termios;
  std::optional<rpc::WinSize> tty_winsize;
  pid_t root = 0;
  JobManifest manifest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job = FindLocked(id);
    if (!job) return NotFound("no " + name + " on " + config_.host_name);
    if (job->root_reaped || job->phase != Job::Phase::kRunning || job->releasing)
      return FailedPrecondition(name + " has exited: nothing to checkpoint");
    if (job->ckpt_dir.empty())
      return FailedPrecondition(name + " cannot be checkpointed: it runs without the kite shim or a checkpoint "
                                "directory");
    if (job->checkpointing) return FailedPrecondition(name + " is already being checkpointed");
    if (job->move_stopped) return FailedPrecondition(name + " is stopped by a checkpoint: release or resume it first");
    // The root is not reaped (that happens under mu_), so its pid is still its own.
    root = job->pid;
    for (int i = 0; i < 3; ++i) manifest.streams[i] = job->streams[i];
    job->checkpointing = true;
    job->input_paused = true;  // stdin stays in the queue from here: the offset is exact
    if (job->master >= 0) {  // now: in exit mode the pty is closed once the job is gone
      struct termios t;
      if (::tcgetattr(job->master, &t) == 0) {
        tty_termios.assign(reinterpret_cast<const char*>(&t), sizeof t);
      }
      struct winsize ws;
      if (::ioctl(job->master, TIOCGWINSZ, &ws) == 0) {
        rpc::WinSize w;
        w.rows = ws.ws_row;
        w.cols = ws.ws_col;
        w.xpixel = ws.ws_xpixel;
        w.ypixel = ws.ws_ypixel;
        tty_winsize = w;
      }
    }
    job->last_contact = Clock::now();
  }
  const std::string dir = job->ckpt_dir;
  auto img_of = [&](pid_t pid) { return dir + "/" + std::to_string(pid) + ".img"; };
  auto err_of = [&](pid_t pid) { return dir + "/" + std::to_string(pid) + ".err"; };
  // Every process signalled so far, and whether its image is in place.
  std::map<pid_t, bool> signalled;
  bool stop_mode = false;  // the processes stop after their images (set before any is signalled)
  auto undo = [&](Status why) -> Status {
    // Whoever stopped after its image runs on; no image is left behind. A process still
    // writing its image is waited for first: a SIGCONT before its own SIGSTOP would leave it
    // stopped for good.
    const auto settle_deadline = Clock::now() + kKillTimeout;
    auto settled = [&](pid_t pid) {
      auto p = JobTree::Read(pid);
      return !p.ok() || p->zombie() || PathExists(err_of(pid)) ||
             (PathExists(img_of(pid)) && (!stop_mode || p->stopped()));
    };
    for (const auto& [pid, unused] : signalled) {
      while (Clock::now() < settle_deadline && !settled(pid)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    for (const auto& [pid, unused] : signalled) {
      for (const auto& [fd, copy] : DeletedFileCopies(img_of(pid))) ::unlink(copy.c_str());
      ::unlink(img_of(pid).c_str());
      ::unlink(err_of(pid).c_str());
      ::kill(pid, SIGCONT);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      job->checkpointing = false;
      job->input_paused = false;
    }
    WakeIo();
    KLOG_INFO("{} was not checkpointed: {}", name, why.message());
    return why;
  };

  // The job's processes: the root and its descendants. One process is checkpointed in the mode
  // asked for; a tree always stops (every process, after its image), so that the pipes between
  // its processes can be drained, and then runs on, dies or stays stopped as asked.
  auto listed = JobTree::List(root);
  if (!listed.ok()) return undo(Aborted(name + " ended before its checkpoint"));
  const bool tree = listed->size() > 1;
  bool own_pipe = false;  // a lone process with a pipe of its own: stopped too, to drain it
  for (const auto& [fd, inode] : JobTree::PipeFds(root)) own_pipe = own_pipe || manifest.StreamOfPipe(inode) < 0;
  // A lone process holding one file description on two descriptors (`2>&1` to a file) is
  // stopped too: the sharing is found, and recorded, only while it is still there. (Looked for
  // only when nothing else stops it: a move stops it anyway.)
  const bool stopped_anyway = tree || own_pipe || after == AfterCheckpoint::kStop;
  const bool shares_files = !stopped_anyway && !JobTree::SharedFiles({root}).empty();
  union sigval mode;
  mode.sival_int = stopped_anyway || shares_files ? shim::kCheckpointStop
                   : after == AfterCheckpoint::kRun        ? shim::kCheckpointContinue
                                                           : shim::kCheckpointExit;
  const bool stops = mode.sival_int == shim::kCheckpointStop;
  stop_mode = stops;
  std::vector<TreeProcess> procs;
  std::map<pid_t, Clock::time_point> first_seen_without_handler;
  const auto deadline = Clock::now() + kCheckpointTimeout;
  for (;;) {
    const auto look_started = Clock::now();
    bool reaped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reaped = job->root_reaped;
    }
    if (reaped) {
      // Exit mode: the root killed itself once its image was in place.
      if (!stops && signalled.count(root) && PathExists(img_of(root))) break;
      return undo(Aborted(name + " ended before its checkpoint image was written"));
    }
    auto now = JobTree::List(root);
    if (!now.ok()) {
      // Reaped since the look above: in exit mode that is the root killing itself once its
      // image was in place.
      if (!stops && signalled.count(root) && PathExists(img_of(root))) break;
      return undo(Aborted(name + " ended before its checkpoint image was written"));
    }
    procs = std::move(now).value();
    if (procs.size() > static_cast<size_t>(JobManifest::kMaxProcs))
      return undo(FailedPrecondition(name + " cannot be checkpointed: more than " +
                                     std::to_string(JobManifest::kMaxProcs) + " processes"));
    // Every process not signalled yet (all of them the first time; later, those forked since
    // the last look, which fork gave the handler) must be one the shim can checkpoint. All are
    // checked before any is signalled: the signal's default action would kill a process
    // without the shim's handler. A process that preloads the shim but has no handler yet is
    // between its exec and the shim's constructor (a shell's `sleep` just started): it is
    // waited for, up to kShimStartGrace, and signalled once the handler is there. A process
    // that ended since the listing is looked for again too (it will not be there).
    std::set<pid_t> starting;
    for (const TreeProcess& p : procs) {
      if (p.zombie() || signalled.count(p.pid)) continue;
      if (p.sid != root)
        return undo(FailedPrecondition(name + " cannot be checkpointed: " + p.Describe() +
                                       " runs in a session of its own"));
      if (JobTree::Catches(p.pid, shim::kCheckpointSignal)) continue;
      if (auto now = JobTree::Read(p.pid); !now.ok() || now->zombie()) {
        starting.insert(p.pid);  // ended since the listing: look again
        continue;
      }
      const auto first = first_seen_without_handler.try_emplace(p.pid, Clock::now()).first->second;
      if (!config_.shim_path.empty() && JobTree::Preloads(p.pid, config_.shim_path) &&
          Clock::now() - first < kShimStartGrace) {
        starting.insert(p.pid);
        continue;
      }
      return undo(FailedPrecondition(name + " cannot be checkpointed: " + p.Describe() +
                                     " does not run the kite shim (statically linked, or started without "
                                     "LD_PRELOAD)"));
    }
    bool all = starting.empty();
    for (const TreeProcess& p : procs) {
      if (p.zombie() || starting.count(p.pid)) continue;
      auto it = signalled.find(p.pid);
      if (it == signalled.end()) {
        for (const auto& [fd, copy] : DeletedFileCopies(img_of(p.pid))) ::unlink(copy.c_str());
        ::unlink(img_of(p.pid).c_str());
        ::unlink(err_of(p.pid).c_str());
        if (::sigqueue(p.pid, shim::kCheckpointSignal, mode) < 0) {
          // Ended since the listing (a shell's `sleep` that was done): not in the next one.
          if (errno == ESRCH) {
            all = false;
            continue;
          }
          return undo(PosixError("signalling " + p.Describe() + " of " + name, errno));
        }
        signalled[p.pid] = false;
        all = false;
        continue;
      }
      if (PathExists(err_of(p.pid))) {
        std::string reason = ReadReason(err_of(p.pid));
        return undo(FailedPrecondition(name + " cannot be checkpointed: " + (tree ? p.Describe() + ": " : "") + reason));
      }
      it->second = PathExists(img_of(p.pid)) && (!stops || p.stopped());
      all = all && it->second;
    }
    if (all) break;
    if (Clock::now() > deadline)
      return undo(Unavailable(name + " wrote no checkpoint image within " + std::to_string(kCheckpointTimeout.count()) +
                              " s"));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a look is a few /proc reads: cheap, and the freeze waits for it
    if (!starting.empty()) waited_for_shim += Clock::now() - look_started;
  }

  const auto t_images = Clock::now();
  // Everything is still (or gone, in exit mode): the pipes the job made hold what their
  // readers had not read yet.
  std::map<pid_t, pid_t> vpid_of;  // real -> the pid the job knows
  {
    std::ifstream map(PidMapPath(root));
    std::string header;
    if (std::getline(map, header) && header + "\n" == shim::PidMapFile::kHeader) {
      for (pid_t v, r; map >> v >> r;) vpid_of[r] = v;
    }
  }
  vpid_of[root] = job->vpid;
  auto vpid = [&](pid_t real) { return vpid_of.count(real) ? vpid_of[real] : real; };
  std::map<uint64_t, std::pair<pid_t, int>> own_pipes;  // inode -> a holder and its descriptor
  for (const TreeProcess& p : procs) {
    if (p.zombie()) continue;
    for (const auto& [fd, inode] : JobTree::PipeFds(p.pid)) {
      if (manifest.StreamOfPipe(inode) < 0 && !own_pipes.count(inode)) own_pipes[inode] = {p.pid, fd};
    }
  }
  const std::string base = "job-" + std::to_string(id);
  std::map<uint64_t, std::string> pipe_bytes;
  for (const auto& [inode, holder] : own_pipes) {
    auto bytes = JobTree::DrainPipe(holder.first, holder.second);
    if (!bytes.ok()) {
      for (const auto& [done_inode, data] : pipe_bytes) {
        (void)JobTree::RefillPipe(own_pipes[done_inode].first, own_pipes[done_inode].second, data);
      }
      return undo(bytes.status());
    }
    pipe_bytes[inode] = std::move(bytes).value();
  }
  Status written = OkStatus();
  for (const TreeProcess& p : procs) {
    JobManifest::Proc mp;
    mp.vpid = vpid(p.pid);
    mp.vparent = p.pid == root ? 0 : vpid(p.ppid);
    mp.vpgid = vpid(p.pgid);
    // A process that wrote its image is live in the checkpoint even when it is a zombie now:
    // in exit mode a lone root kills itself right after its image.
    const bool imaged = signalled.count(p.pid) && PathExists(img_of(p.pid));
    if (p.zombie() && !imaged) {
      mp.exited = true;
      mp.wait_status = p.exit_code;
    } else {
      mp.image = base + "." + std::to_string(mp.vpid) + ".img";
      // Copies of its deleted open files first: they are named after the image.
      for (const auto& [fd, copy] : DeletedFileCopies(img_of(p.pid))) {
        const std::string to = dir + "/" + mp.image + ".fd" + std::to_string(fd);
        if (::rename(copy.c_str(), to.c_str()) < 0 && written.ok())
          written = PosixError("renaming a deleted file's copy of " + p.Describe(), errno);
      }
      if (::rename(img_of(p.pid).c_str(), (dir + "/" + mp.image).c_str()) < 0 && written.ok())
        written = PosixError("renaming the image of " + p.Describe(), errno);
    }
    manifest.procs.push_back(mp);
  }
  if (stops) {
    // Descriptions several descriptors share, with their offsets now that nothing moves them
    // (an image's own offset may be older: another holder ran on after it).
    std::vector<pid_t> live;
    for (const TreeProcess& p : procs) {
      if (!p.zombie()) live.push_back(p.pid);
    }
    for (const JobTree::SharedFile& f : JobTree::SharedFiles(live)) {
      JobManifest::Share s;
      s.pos = f.pos;
      for (const auto& [pid, fd] : f.holders) s.holders.push_back({vpid(pid), fd});
      manifest.shares.push_back(std::move(s));
    }
  }
  for (const JobManifest::Proc& p : manifest.procs) {
    if (manifest.IndexOf(p.vpgid) < 0 && written.ok())
      written = FailedPrecondition(name + " cannot be checkpointed: process " + std::to_string(p.vpid) +
                                   "'s process group lost its leader");
  }
  for (const auto& [inode, data] : pipe_bytes) {
    JobManifest::Pipe mp;
    mp.inode = inode;
    if (!data.empty()) {
      mp.data_file = base + ".pipe-" + std::to_string(inode);
      if (written.ok()) written = WriteOwnedFile(dir + "/" + mp.data_file, data, job->creds, after == AfterCheckpoint::kExit);
    }
    manifest.pipes.push_back(mp);
  }
  manifest.ckpt_dir = dir;  // stays right when the files are moved elsewhere (kite checkpoint --to)
  const std::string manifest_path = dir + "/" + base + ".job";
  // A move's files live only until the job runs elsewhere: not synced (nor are its images).
  if (written.ok())
    written = WriteOwnedFile(manifest_path, manifest.Serialize(), job->creds, after == AfterCheckpoint::kExit);
  if (!written.ok()) {
    for (const auto& [inode, data] : pipe_bytes) (void)JobTree::RefillPipe(own_pipes[inode].first, own_pipes[inode].second, data);
    for (const JobManifest::Proc& p : manifest.procs) {
      if (p.exited) continue;
      for (const auto& [fd, copy] : DeletedFileCopies(dir + "/" + p.image)) ::unlink(copy.c_str());
      ::unlink((dir + "/" + p.image).c_str());
    }
    return undo(written);
  }

  const auto t_written = Clock::now();
  rpc::CheckpointReply r;
  r.image_path = manifest_path;
  r.left_running = leave_running;
  if (!tty_termios.empty()) {
    r.termios = tty_termios;
    r.__isset.termios = true;
  }
  if (tty_winsize) {
    r.winsize = *tty_winsize;
    r.__isset.winsize = true;
  }
  if (stops && after == AfterCheckpoint::kRun) {
    // The copy is taken; the job goes on with its pipes as they were.
    for (const auto& [inode, data] : pipe_bytes) {
      Status back = JobTree::RefillPipe(own_pipes[inode].first, own_pipes[inode].second, data);
      if (!back.ok()) KLOG_WARN("{}: putting pipe bytes back: {}", name, back.ToString());
    }
    for (const TreeProcess& p : procs) ::kill(p.pid, SIGCONT);
  } else if (stops && after == AfterCheckpoint::kExit) {
    // The images were written in stop mode (not synced): they are all that is left of the job
    // once it is killed, so they go to disk first.
    for (const JobManifest::Proc& p : manifest.procs) {
      if (p.exited) continue;
      std::vector<std::string> files = {dir + "/" + p.image};
      for (auto& [fd, copy] : DeletedFileCopies(files[0])) files.push_back(std::move(copy));
      for (const std::string& file : files) {
        UniqueFd f(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!f.valid() || ::fsync(f.get()) < 0) KLOG_WARN("{}: syncing {}: {}", name, file, std::strerror(errno));
      }
    }
    for (const TreeProcess& p : procs) ::kill(p.pid, SIGKILL);
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (!r.__isset.winsize && job->winsize) {
    r.winsize = *job->winsize;
    r.__isset.winsize = true;
  }
  if (after == AfterCheckpoint::kExit) {
    // The root is gone after its image: wait until everything it wrote is buffered.
    if (!job->cv.wait_for(lock, kKillTimeout + kReapTimeout,
                          [&] { return job->phase == Job::Phase::kExited || job->released; }))
      KLOG_WARN("{}: output not drained {} s after its checkpoint", name,
                std::chrono::duration_cast<std::chrono::seconds>(kKillTimeout + kReapTimeout).count());
  } else if (after == AfterCheckpoint::kStop) {
    // The job is stopped; what it wrote before is in its pipes or pty until the I/O thread
    // has read it. Wait until they are empty (or the buffers are full: the home reads on).
    job->move_stopped = true;
    job->move_checkpoint = manifest_path;
    const auto drain_deadline = Clock::now() + kKillTimeout;
    while (Clock::now() < drain_deadline && !job->released && job->phase == Job::Phase::kRunning &&
           !OutputDrainedLocked(*job)) {
      job->cv.wait_for(lock, std::chrono::milliseconds(2));
    }
  }
  r.stdout_offset = job->out[kStdout].end();
  r.stderr_offset = job->out[kStderr].end();
  int64_t unread = std::max<int64_t>(job->stdin_unread, 0);
  int now_unread = 0;
  if (job->in_fd >= 0 && job->in_fd != job->master && ::ioctl(job->in_fd, FIONREAD, &now_unread) == 0)
    unread = now_unread;
  r.stdin_offset = job->stdin_written - unread;
  r.command = job->command;
  r.creds = job->creds;
  r.home_host = job->home_host;
  r.vpid = job->vpid;
  r.home_ppid = job->home_ppid;
  r.tty_mask = job->tty_mask;
  job->checkpointing = false;
  ++job->checkpoints;
  job->cv.notify_all();
  if (leave_running) job->input_paused = false;
  lock.unlock();
  if (leave_running) WakeIo();
  auto ms = [](Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  const auto t_end = Clock::now();
  KLOG_INFO("{} checkpointed to {} ({} process(es), {} pipe(s) of its own, {} shared file description(s); stdout {} "
            "stderr {} stdin {}){}; {} ms: images {} ms (of which {} ms waiting for a shim to start), pipes and "
            "manifest {} ms, output drained {} ms",
            name, r.image_path, manifest.procs.size(), manifest.pipes.size(), manifest.shares.size(), r.stdout_offset,
            r.stderr_offset, r.stdin_offset,
            leave_running ? ", left running" : after == AfterCheckpoint::kStop ? ", left stopped" : "",
            ms(t_end - t_start), ms(t_images - t_start), ms(waited_for_shim), ms(t_written - t_images),
            ms(t_end - t_written));
  return r;
}

std::string JobManager::PidMapPath(pid_t root) const {
  char path[PATH_MAX];
  const std::string sock = config_.socket_path();
  return shim::PidMapFile::PathFor(sock.c_str(), root, path, sizeof path) ? path : "";
}

bool JobManager::OutputDrainedLocked(const Job& job) const {
  for (const Job::Source& src : job.src) {
    if (src.fd < 0 || src.eof) continue;
    int pending = 0;
    if (::ioctl(src.fd, FIONREAD, &pending) == 0 && pending > 0) {
      if (job.out[src.stream].full()) continue;  // backpressure: the home drains it later
      return false;
    }
  }
  return true;
}

Status JobManager::Resume(int64_t id) {
  const std::string name = "job " + std::to_string(id);
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::shared_ptr<Job> job = FindLocked(id);
    if (!job) return NotFound("no " + name + " on " + config_.host_name);
    if (!job->move_stopped) return FailedPrecondition(name + " is not stopped by a checkpoint");
    job->move_stopped = false;
    job->input_paused = false;
    if (!job->move_checkpoint.empty()) RemoveCheckpoint(std::exchange(job->move_checkpoint, std::string()));
    if (!job->root_reaped) {
      ::kill(-job->pid, SIGCONT);
      if (auto procs = JobTree::List(job->pid); procs.ok()) {
        for (const TreeProcess& p : *procs) ::kill(p.pid, SIGCONT);
      }
    }
  }
  WakeIo();
  KLOG_INFO("{} resumed where it was (its move did not happen)", name);
  return OkStatus();
}

StatusOr<int64_t> JobManager::Restore(const rpc::RestoreSpec& spec, bool stream_pages) {
  if (spec.stdout_offset < 0 || spec.stderr_offset < 0 || spec.stdin_offset < 0)
    return InvalidArgument("restore offsets must not be negative");
  if (spec.__isset.termios && spec.termios.size() != sizeof(struct termios))
    return InvalidArgument("termios must be " + std::to_string(sizeof(struct termios)) + " bytes");
  if (spec.command.size() > JobLauncher::kMaxArgBytes) return InvalidArgument("command too long");
  KITE_ASSIGN_OR_RETURN(JobManifest manifest, JobCheckpoint::ValidateCheckpoint(config_, spec.image_path, spec.creds));
  const std::string restorer = ExecutableDir() + "/kite-restore-tree";
  if (::access(restorer.c_str(), X_OK) < 0) return FailedPrecondition("no " + restorer + " on " + config_.host_name);

  rpc::ExecSpec e;
  e.argv = {restorer};
  if (spec.creds.uid == 0) e.argv.push_back("--allow-root");  // ValidateImage checked allow_root
  if (stream_pages) e.argv.push_back("--stream-pages");  // the pages come through FIFOs (PageStream)
  e.argv.insert(e.argv.end(), {"--expect-uid", std::to_string(spec.creds.uid), spec.image_path});
  e.env = {"PATH=/usr/bin:/bin"};
  e.cwd = "/";  // the image has the job's own
  e.umask = 022;
  e.creds = spec.creds;
  e.tty_mask = spec.tty_mask;
  if (spec.__isset.winsize) {
    e.winsize = spec.winsize;
    e.__isset.winsize = true;
  }
  e.home_host = spec.home_host;
  e.vpid = spec.vpid;
  e.home_ppid = spec.home_ppid;
  ResumePoint r;
  r.stdout_offset = spec.stdout_offset;
  r.stderr_offset = spec.stderr_offset;
  r.stdin_offset = spec.stdin_offset;
  if (spec.__isset.termios) r.termios = spec.termios;
  r.command = spec.command;
  for (const JobManifest::Proc& p : manifest.procs) r.highest_vpid = std::max(r.highest_vpid, p.vpid);
  // The restored shims keep the checkpoint directory they were started with (in their
  // memory): the next images land beside these.
  r.ckpt_dir = manifest.ckpt_dir.empty() ? spec.image_path.substr(0, spec.image_path.rfind('/')) : manifest.ckpt_dir;
  // That directory may be another host's name here (the job was started there): made if need be.
  if (auto at = JobCheckpoint::Locate(config_, r.ckpt_dir + "/next"); at.ok()) {
    auto made = JobCheckpoint::PrepareDir(config_, at->host, spec.creds.uid, spec.creds.gid);
    if (!made.ok()) return made.status().With("the restored job's checkpoint directory");
  }
  KITE_ASSIGN_OR_RETURN(int64_t id, StartJob(e, &r));
  Status restored = AwaitRestored(id);
  if (!restored.ok()) {
    Status released = Release(id);
    if (!released.ok() && released.code() != StatusCode::kNotFound)
      KLOG_WARN("job {}: release after a failed restore: {}", id, released.ToString());
    return restored;
  }
  return id;
}

Status JobManager::AwaitRestored(int64_t id) {
  // kite-restore names the process after the restored program (PR_SET_NAME) once every region,
  // file and identity is back, past its point of no return; until then it is "kite-restore"
  // (kite-restore-tree, before it, "kite-restore-tr").
  // So a restore_job that returns OK has a job that runs, and one that fails leaves the
  // checkpointed original (stopped by checkpoint_job(stop)) the home's to resume.
  const auto deadline = Clock::now() + kCheckpointTimeout;
  for (;;) {
    pid_t pid;
    {
      std::unique_lock<std::mutex> lock(mu_);
      std::shared_ptr<Job> job = FindLocked(id);
      if (!job) return Aborted("job " + std::to_string(id) + " was released while it was being restored");
      if (job->root_reaped) {
        // Wait for its stderr (kite-restore's reason), then report the exit.
        job->cv.wait_for(lock, kDrainAfterExit * 2, [&] { return job->phase == Job::Phase::kExited; });
        std::string why;
        job->out[kStderr].Read(job->out[kStderr].begin(), 4096, &why);
        while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) why.pop_back();
        const int st = job->wait_status;
        std::string how = WIFEXITED(st) ? "exited with status " + std::to_string(WEXITSTATUS(st))
                                        : "was killed by signal " + std::to_string(WTERMSIG(st));
        return FailedPrecondition("kite-restore on " + config_.host_name + " " + how +
                                  (why.empty() ? std::string() : ": " + why));
      }
      pid = job->pid;
    }
    // The root is released last-but-one: its children leave kite-restore just after it, once
    // it gives them the word. Restored means every process of the tree is.
    auto restoring = [](const std::string& comm) { return comm.empty() || comm.rfind("kite-restore", 0) == 0; };
    bool restored = !restoring(CommOf(pid));
    if (restored) {
      if (auto tree = JobTree::List(pid); tree.ok()) {
        for (const TreeProcess& p : *tree) restored = restored && (p.zombie() || !restoring(p.comm));
      }
    }
    if (restored) return OkStatus();
    if (Clock::now() > deadline)
      return Unavailable("kite-restore on " + config_.host_name + " did not finish within " +
                         std::to_string(kCheckpointTimeout.count()) + " s");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

namespace {

// Whether process `pid` has a handler for `signo` (its SigCgt mask in /proc).
bool CatchesSignal(pid_t pid, int signo) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("SigCgt:", 0) != 0) continue;
    uint64_t mask = std::strtoull(line.c_str() + 7, nullptr, 16);
    return (mask >> (signo - 1)) & 1;
  }
  return false;
}

}  // namespace

Status JobManager::Signal(int64_t id, int32_t signo) {
  if (signo < 0 || signo > 64) return InvalidArgument("signal " + std::to_string(signo) + " is not 0..64");
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<Job> job = FindLocked(id);
  if (!job) return NotFound("no job " + std::to_string(id) + " on " + config_.host_name);
  job->last_contact = Clock::now();
  // Once the root is reaped its pid may be reused: nothing is signalled any more (the home
  // is about to get the exit status anyway).
  if (job->root_reaped) return OkStatus();
  // The job's process group is orphaned here (its parent, remoted, is in another session), and
  // the kernel discards SIGTSTP/SIGTTIN/SIGTTOU sent to an orphaned group whose members take
  // the default action. At home the same ^Z would stop the job: so unless the root catches
  // the signal itself (a shell, an editor), stop the group with SIGSTOP.
  if ((signo == SIGTSTP || signo == SIGTTIN || signo == SIGTTOU) && !CatchesSignal(job->pid, signo)) signo = SIGSTOP;
  if (::kill(-job->pid, signo) < 0 && errno != ESRCH)
    return PosixError("kill job " + std::to_string(id) + " with signal " + std::to_string(signo), errno);
  return OkStatus();
}

Status JobManager::Resize(int64_t id, const rpc::WinSize& w) {
  if (w.rows < 0 || w.cols < 0 || w.xpixel < 0 || w.ypixel < 0) return InvalidArgument("window size must not be negative");
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<Job> job = FindLocked(id);
  if (!job) return NotFound("no job " + std::to_string(id) + " on " + config_.host_name);
  job->last_contact = Clock::now();
  if (job->master < 0) return OkStatus();  // no terminal (or it is gone): nothing to resize
  struct winsize ws{};
  ws.ws_row = static_cast<unsigned short>(w.rows);
  ws.ws_col = static_cast<unsigned short>(w.cols);
  ws.ws_xpixel = static_cast<unsigned short>(w.xpixel);
  ws.ws_ypixel = static_cast<unsigned short>(w.ypixel);
  // On the master, the kernel sends SIGWINCH to the terminal's foreground process group.
  if (::ioctl(job->master, TIOCSWINSZ, &ws) < 0) return PosixError("TIOCSWINSZ", errno);
  return OkStatus();
}

Status JobManager::Release(int64_t id) {
  std::shared_ptr<Job> job;
  {
    std::unique_lock<std::mutex> lock(mu_);
    job = FindLocked(id);
    if (!job) return NotFound("no job " + std::to_string(id) + " on " + config_.host_name);
    if (job->releasing) {  // a concurrent release (the home's retry, or the GC) does the work
      job->cv.wait_for(lock, kKillTimeout + kReapTimeout, [&] { return job->released; });
      return OkStatus();
    }
    job->releasing = true;
    // The pid cannot be reused before it is reaped, and reaping is recorded under mu_.
    if (!job->root_reaped) ::kill(-job->pid, SIGKILL);
  }
  std::string move_checkpoint;  // a move's checkpoint of it, if it was stopped by one
  // The process group misses what left it (setsid, setpgid); the cgroups have everything.
  if (!cgroups_.KillAll(id, kKillTimeout))
    KLOG_ERROR("job {}: processes survive SIGKILL in its cgroups", id);
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cgroups_.contains_jobs() && job->root_reaped) ::kill(-job->pid, SIGKILL);  // best effort
    if (!job->cv.wait_for(lock, kReapTimeout, [&] { return job->root_reaped; }))
      KLOG_ERROR("job {}: root pid {} not reaped {} s after SIGKILL; freeing its slot anyway", id, job->pid,
                 std::chrono::duration_cast<std::chrono::seconds>(kReapTimeout).count());
    job->released = true;
    move_checkpoint = std::move(job->move_checkpoint);
    jobs_.erase(id);
    FreeSlotLocked(*job);
    job->cv.notify_all();
  }
  WakeIo();  // closes the job's fds
  cgroups_.RemoveJob(id);
  if (!move_checkpoint.empty()) RemoveCheckpoint(move_checkpoint);
  KLOG_INFO("job {} released (home {} vpid {})", id, job->home_host, job->vpid);
  return OkStatus();
}

void JobManager::Shutdown() {
  std::vector<int64_t> ids;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
    // A Start() past its checks finishes adding its job first, so the job is killed below.
    state_cv_.wait(lock, [&] { return starting_ == 0; });
    for (auto& [id, job] : jobs_) {
      ids.push_back(id);
      job->cv.notify_all();
      if (!job->root_reaped) ::kill(-job->pid, SIGKILL);  // all at once, before the slow part
    }
  }
  if (!ids.empty()) KLOG_INFO("shutting down: killing {} guest job(s)", ids.size());
  for (int64_t id : ids) {
    Status s = Release(id);
    if (!s.ok() && s.code() != StatusCode::kNotFound) KLOG_WARN("release job {}: {}", id, s.ToString());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_threads_ = true;
  }
  state_cv_.notify_all();
  WakeIo();
  if (housekeeping_thread_.joinable()) housekeeping_thread_.join();
  if (io_thread_.joinable()) io_thread_.join();
  // Orphans killed with their cgroups may still be on their way to becoming zombies: reap
  // until no child is left (bounded: a task stuck in the kernel cannot hold us forever).
  for (auto deadline = Clock::now() + std::chrono::seconds(1);;) {
    Reap();
    siginfo_t si;
    std::memset(&si, 0, sizeof si);
    if (::waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, job] : io_jobs_) CloseAllLocked(*job);
  io_jobs_.clear();
  for (auto& job : to_register_) CloseAllLocked(*job);
  to_register_.clear();
}

int JobManager::free_slots() const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::max(0, config_.slots - used_slots_);
}

std::vector<rpc::GuestJob> JobManager::Guests() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<rpc::GuestJob> guests;
  for (const auto& [id, job] : jobs_) {
    if (job->at_home) continue;
    rpc::GuestJob g;
    g.job_id = id;
    g.home_host = job->home_host;
    g.vpid = job->vpid;
    g.uid = job->uid;
    g.local_pid = job->pid;
    g.started_unix_ms = job->started_unix_ms;
    g.command = job->command;
    guests.push_back(std::move(g));
  }
  return guests;
}

OwnerMonitor::GuestSample JobManager::SampleGuests() const {
  OwnerMonitor::GuestSample s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, job] : jobs_) {
      if (!job->pty_slave.empty()) s.ttys.insert(job->pty_slave);
      if (!job->root_reaped) ++s.running;
    }
  }
  s.cpu_ns = cgroups_.GuestCpuNs();
  return s;
}

void JobManager::TEST_SetGcAfter(std::chrono::milliseconds after) {
  std::lock_guard<std::mutex> lock(mu_);
  gc_after_ = after;
}

// --- the I/O thread ----------------------------------------------------------------------

void JobManager::IoLoop() {
  // A write to a pipe whose reader is gone must fail with EPIPE here, not kill remoted.
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);

  struct epoll_event events[64];
  Clock::time_point next_sweep = Clock::now();
  Clock::time_point next_deadline = Clock::now();
  for (;;) {
    auto now = Clock::now();
    auto wake_at = std::min(next_sweep, next_deadline);
    int timeout = wake_at <= now ? 0
                                 : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count());
    int n = ::epoll_wait(epoll_.get(), events, 64, timeout);
    if (n < 0) {
      if (errno != EINTR) KLOG_ERROR("epoll_wait: {}", std::strerror(errno));
      n = 0;
    }
    bool sweep = false;
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_.get()) {
        uint64_t count;
        ssize_t r = ::read(fd, &count, sizeof count);
        (void)r;
        continue;
      }
      auto w = watches_.find(fd);
      if (w == watches_.end()) continue;  // closed earlier in this round
      auto it = io_jobs_.find(w->second);
      if (it == io_jobs_.end()) continue;
      Job& job = *it->second;
      const uint32_t ev = events[i].events;
      if (fd == job.pidfd) {
        sweep = true;
        continue;
      }
      if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (int s = 0; s < kSources; ++s) {
          if (job.src[s].fd == fd) {
            ReadSource(job, s);
            break;
          }
        }
      }
      if ((ev & (EPOLLOUT | EPOLLERR)) && fd == job.in_fd) WriteStdin(job);
    }
    now = Clock::now();
    if (sweep || now >= next_sweep) {
      Reap();
      next_sweep = now + kSweepInterval;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_threads_) return;
      for (auto& job : to_register_) io_jobs_[job->id] = job;
      to_register_.clear();
    }
    next_deadline = now + kSweepInterval;
    for (auto it = io_jobs_.begin(); it != io_jobs_.end();) {
      if (Maintain(*it->second, now, &next_deadline)) ++it;
      else it = io_jobs_.erase(it);
    }
  }
}

void JobManager::ReadSource(Job& job, int s) {
  const int fd = job.src[s].fd;  // only this thread changes it
  ssize_t n = ::read(fd, io_buf_.data(), io_buf_.size());
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (n > 0) {
    job.out[job.src[s].stream].Append(io_buf_.data(), static_cast<size_t>(n));
  } else {
    // 0: every writer closed the pipe. EIO on the pty master: every slave fd is closed.
    if (n < 0 && !(s == kSrcPty && errno == EIO))
      KLOG_WARN("job {}: reading its output: {}", job.id, std::strerror(errno));
    job.src[s].eof = true;
    if (s == kSrcPty) {
      // Keep the master open until the job is over: closing it hangs up the terminal and
      // SIGHUPs the session, which may still be running after closing its tty fds.
      job.in.Discard();  // nobody is left to read the terminal
    } else {
      CloseFdLocked(job, fd);
    }
  }
  job.cv.notify_all();
}

void JobManager::WriteStdin(Job& job) {
  const int fd = job.in_fd;
  std::string chunk;
  bool eof_due;
  char veof = 4;  // ^D
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (job.input_paused) return;
    std::string_view pending = job.in.pending();
    chunk.assign(pending.substr(0, kIoChunk));
    eof_due = job.in.eof_due();
  }
  if (chunk.empty() && !eof_due) return;
  const bool pty = fd == job.master;
  if (chunk.empty()) {  // EOF, everything before it written
    if (!pty) {
      std::lock_guard<std::mutex> lock(mu_);
      job.in.MarkEofDelivered();
      CloseFdLocked(job, fd);
      return;
    }
    // A terminal has no EOF of its own: VEOF at the start of a line makes the reader's
    // read() return 0. On a non-empty line the first VEOF only ends the line.
    struct termios t;
    if (::tcgetattr(fd, &t) == 0 && t.c_cc[VEOF] != _POSIX_VDISABLE) veof = static_cast<char>(t.c_cc[VEOF]);
    chunk.assign(1, veof);
  }
  ssize_t n = ::write(fd, chunk.data(), chunk.size());
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (n < 0) {
    // EPIPE: the job closed its stdin. EIO: its terminal is gone. Either way, drop input.
    if (errno != EPIPE && errno != EIO) KLOG_WARN("job {}: writing its input: {}", job.id, std::strerror(errno));
    job.in.Discard();
    if (!pty) CloseFdLocked(job, fd);
    return;
  }
  if (eof_due) {
    if (job.line_empty) job.in.MarkEofDelivered();
    job.line_empty = true;
    return;
  }
  job.in.Consume(static_cast<size_t>(n));
  job.stdin_written += n;
  const char last = chunk[static_cast<size_t>(n) - 1];
  job.line_empty = last == '\n' || last == '\r' || last == veof;
}

void JobManager::Reap() {
  std::lock_guard<std::mutex> reap_lock(reap_mu_);
  for (int guard = 0; guard < 4096; ++guard) {
    siginfo_t si;
    std::memset(&si, 0, sizeof si);
    // Peek first: which child is a zombie, without taking it.
    if (::waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0) return;
    const pid_t pid = si.si_pid;
    int status = 0;
    struct rusage ru;
    std::memset(&ru, 0, sizeof ru);
    // 0 or -1: Launch() reaped a child that failed before exec; look again.
    if (::wait4(pid, &status, WNOHANG, &ru) != pid) continue;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = roots_.find(pid);
    if (it == roots_.end()) {
      KLOG_DEBUG("reaped orphan pid {} (status {:#x})", pid, status);
      continue;
    }
    std::shared_ptr<Job> job = it->second;
    roots_.erase(it);
    ::unlink(PidMapPath(pid).c_str());  // a restored job's, if it was one
    job->root_reaped = true;
    job->wait_status = status;
    job->rusage = ToRusage(ru);
    if (job->phase == Job::Phase::kRunning) {
      job->phase = Job::Phase::kDraining;
      job->drain_deadline = Clock::now() + kDrainAfterExit;
    }
    job->cv.notify_all();
    KLOG_DEBUG("job {}: root pid {} ended with status {:#x}", job->id, pid, status);
  }
}

bool JobManager::Maintain(Job& job, Clock::time_point now, Clock::time_point* next_deadline) {
  bool finish = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (job.released) {
      CloseAllLocked(job);
      return false;
    }
    if (job.root_reaped && job.pidfd >= 0) CloseFdLocked(job, job.pidfd);
    if (job.phase == Job::Phase::kDraining) {
      finish = (job.StreamEof(kStdout) && job.StreamEof(kStderr)) || now >= job.drain_deadline;
      if (!finish) *next_deadline = std::min(*next_deadline, job.drain_deadline);
    }
  }
  if (finish) {
    // Take what is in the pipes now, even past the high-water mark: the root is dead, so
    // this is what it wrote (plus whatever a straggling descendant adds, capped).
    for (int s = 0; s < kSources; ++s) {
      size_t taken = 0;
      while (taken < kFinalDrainCap) {
        const int fd = job.src[s].fd;
        if (fd < 0 || job.src[s].eof) break;
        ssize_t n = ::read(fd, io_buf_.data(), io_buf_.size());
        if (n < 0 && errno == EINTR) continue;
        std::lock_guard<std::mutex> lock(mu_);
        if (n > 0) {
          job.out[job.src[s].stream].Append(io_buf_.data(), static_cast<size_t>(n));
          taken += static_cast<size_t>(n);
        } else {
          if (!(n < 0 && errno == EAGAIN)) job.src[s].eof = true;
          break;
        }
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    CloseAllLocked(job);  // a descendant still writing now gets EPIPE, as from a closed terminal
    job.in.Discard();
    FreeSlotLocked(job);
    job.phase = Job::Phase::kExited;
    job.exited_at = now;
    job.cv.notify_all();
    return true;
  }
  std::lock_guard<std::mutex> lock(mu_);
  SyncEpollLocked(job);
  return true;
}

void JobManager::FreeSlotLocked(Job& job) {
  if (job.at_home || job.slot_freed) return;
  job.slot_freed = true;
  --used_slots_;
  fair_.Released(job.home_host);
}

void JobManager::SyncEpollLocked(Job& job) {
  std::map<int, uint32_t> want;
  if (job.pidfd >= 0) want[job.pidfd] |= EPOLLIN;
  for (const Job::Source& s : job.src) {
    // Backpressure: a full buffer is not read, so the job blocks in write(2).
    if (s.fd >= 0 && !s.eof && !job.out[s.stream].full()) want[s.fd] |= EPOLLIN;
  }
  if (job.in_fd >= 0 && job.in.wants_write() && !job.input_paused) want[job.in_fd] |= EPOLLOUT;
  // An fd with no interest is removed, not kept with 0 events: epoll would still report
  // EPOLLHUP on it (a paused pipe whose writer is gone) and spin.
  for (auto it = job.registered.begin(); it != job.registered.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->first, nullptr);
    watches_.erase(it->first);
    it = job.registered.erase(it);
  }
  for (const auto& [fd, events] : want) {
    auto it = job.registered.find(fd);
    if (it != job.registered.end() && it->second == events) continue;
    struct epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    int op = it == job.registered.end() ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (::epoll_ctl(epoll_.get(), op, fd, &ev) < 0) {
      KLOG_ERROR("job {}: epoll_ctl fd {}: {}", job.id, fd, std::strerror(errno));
      continue;
    }
    job.registered[fd] = events;
    watches_[fd] = job.id;
  }
}

void JobManager::CloseFdLocked(Job& job, int fd) {
  if (fd < 0) return;
  if (job.registered.erase(fd)) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    watches_.erase(fd);
  }
  // The master serves several roles; closing it ends them all.
  if (fd == job.in_fd) {
    // What the job never read, for a checkpoint's stdin offset (a pipe's FIONREAD works on
    // its write end too).
    int unread = 0;
    if (fd != job.master && ::ioctl(fd, FIONREAD, &unread) == 0) job.stdin_unread = unread;
    job.in_fd = -1;
  }
  if (fd == job.master) job.master = -1;
  if (fd == job.pidfd) job.pidfd = -1;
  for (Job::Source& s : job.src) {
    if (s.fd == fd) s.fd = -1, s.eof = true;
  }
  ::close(fd);
}

void JobManager::CloseAllLocked(Job& job) {
  // Each close clears every role its fd had, so the master is closed once.
  for (int* fd : {&job.pidfd, &job.master, &job.in_fd, &job.src[0].fd, &job.src[1].fd, &job.src[2].fd}) {
    if (*fd >= 0) CloseFdLocked(job, *fd);
  }
}

// --- housekeeping ------------------------------------------------------------------------

void JobManager::HousekeepingLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_threads_) {
    state_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_threads_; });
    if (stop_threads_ || shutting_down_) continue;
    auto now = Clock::now();
    std::vector<int64_t> stale;
    for (auto& [id, job] : jobs_) {
      if (job->releasing) continue;
      if (job->phase != Job::Phase::kExited) {
        // A running job its home has not asked about for this long has no home any more
        // (a home polls every second; one that gave up on a call cannot know the job runs).
        auto silent = now - job->last_contact;
        if (silent >= kOrphanAfter) {
          KLOG_WARN("job {} (home {} vpid {}) runs but no home has contacted it for {} s: killing it", id,
                    job->home_host, job->vpid, std::chrono::duration_cast<std::chrono::seconds>(silent).count());
          stale.push_back(id);
        }
        continue;
      }
      auto silent = now - std::max(job->last_contact, job->exited_at);
      if (silent < gc_after_) continue;
      KLOG_WARN("job {} (home {} vpid {}) exited and its home has not collected it for {} ms: releasing it", id,
                job->home_host, job->vpid, std::chrono::duration_cast<std::chrono::milliseconds>(silent).count());
      stale.push_back(id);
    }
    lock.unlock();
    for (int64_t id : stale) {
      Status s = Release(id);
      if (!s.ok() && s.code() != StatusCode::kNotFound) KLOG_WARN("release job {}: {}", id, s.ToString());
    }
    lock.lock();
  }
}

}  // namespace kite
