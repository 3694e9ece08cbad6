// DeputySession: placement and the three relay paths of one remote job.
#include "homed/deputy_session.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/log.h"
#include "common/migration.h"
#include "common/wire_io.h"
#include "syscall-shim/tree/job_manifest.h"

namespace kite {
namespace {

using Clock = std::chrono::steady_clock;

// How long the output relay keeps trying to reach a host that stopped answering before it
// declares the job lost.
constexpr auto kLostAfter = std::chrono::seconds(4);
// Stdin bytes kept after a copy accepted them, to send again to the next copy after a move:
// at most InputQueue::kMaxQueued (1 MiB) wait in a remoted plus a pipe's 64 KiB.
constexpr size_t kStdinRetain = 2u << 20;
// While a move is in flight the output relay polls briefly, so it follows a switch at once.
constexpr int kMovePollMs = 20;
// How long the mover waits for the relays to follow a switch before killing the original.
constexpr auto kSwitchTimeout = std::chrono::seconds(10);
// Reads of checkpoint_job and restore_job wait this long: the remoted gives each up to 30 s
// (JobManager::kCheckpointTimeout) plus draining and launch. A client that gave up earlier
// would not know whether the copy runs.
constexpr int kMoveCallTimeoutMs = 90'000;

// One long call of a move on a fresh connection (see kMoveCallTimeoutMs).
template <typename Fn>
Status LongCall(RemotePool& pool, const std::string& host, const std::string& what, Fn&& fn) {
  auto conn = pool.ConnectLong(host, kMoveCallTimeoutMs);
  if (!conn.ok()) return conn.status();
  return Call(what + " on " + host, [&] { fn(*conn.value()->client); });
}

bool UnderSharedPath(const std::string& cwd, const std::vector<std::string>& shared) {
  for (const auto& p : shared) {
    if (p.empty()) continue;
    std::string base = p.back() == '/' ? p.substr(0, p.size() - 1) : p;
    if (cwd == base || cwd.rfind(base + "/", 0) == 0) return true;
  }
  return false;
}

}  // namespace

Status ReadProcessIdentity(pid_t pid, std::vector<int32_t>* groups, pid_t* ppid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  if (!status) return NotFound("process " + std::to_string(pid) + " is gone");
  std::string line;
  bool have_ppid = false;
  while (std::getline(status, line)) {
    if (line.rfind("PPid:", 0) == 0) {
      *ppid = static_cast<pid_t>(std::stol(line.substr(5)));
      have_ppid = true;
    } else if (line.rfind("Groups:", 0) == 0) {
      std::istringstream in(line.substr(7));
      int32_t g;
      while (in >> g) groups->push_back(g);
    }
  }
  if (!have_ppid) return Internal("cannot parse /proc/" + std::to_string(pid) + "/status");
  return OkStatus();
}

DeputySession::DeputySession(HomeContext& ctx, int fd, PeerCred peer, wire::RunRequest request)
    : ctx_(ctx), fd_(fd), peer_(peer), req_(std::move(request)) {}

bool DeputySession::SendDeputy(const std::string& frame) {
  std::lock_guard<std::mutex> lock(send_mu_);
  if (deputy_gone_) return false;
  if (wire::SendFrame(fd_, frame) != 0) {
    deputy_gone_ = true;
    return false;
  }
  return true;
}

void DeputySession::SendError(const Status& s) {
  wire::ErrorMsg e;
  e.code = static_cast<int32_t>(s.code());
  e.message = s.message();
  SendDeputy(wire::Frame(wire::MsgType::kError, e));
}

rpc::ExecSpec DeputySession::BuildSpec() const {
  rpc::ExecSpec spec;
  spec.argv = req_.argv;
  spec.env = req_.env;
  spec.cwd = req_.cwd;
  spec.umask = static_cast<int32_t>(req_.umask);
  for (const auto& l : req_.rlimits) {
    rpc::Rlimit r;
    r.resource = l.resource;
    r.soft = l.soft;
    r.hard = l.hard;
    spec.rlimits.push_back(r);
  }
  spec.creds.uid = static_cast<int32_t>(peer_.uid);
  spec.creds.gid = static_cast<int32_t>(peer_.gid);
  pid_t ppid = 0;
  if (!ReadProcessIdentity(peer_.pid, &spec.creds.groups, &ppid).ok()) spec.creds.groups.clear();
  spec.blocked_signals = static_cast<int64_t>(req_.blocked_signals);
  spec.ignored_signals = static_cast<int64_t>(req_.ignored_signals);
  spec.tty_mask = static_cast<int32_t>(req_.tty_mask);
  if (req_.tty_mask != 0) {
    rpc::WinSize ws;
    ws.rows = static_cast<int16_t>(req_.winsize.rows);
    ws.cols = static_cast<int16_t>(req_.winsize.cols);
    ws.xpixel = static_cast<int16_t>(req_.winsize.xpixel);
    ws.ypixel = static_cast<int16_t>(req_.winsize.ypixel);
    spec.__set_winsize(ws);
  }
  spec.home_host = ctx_.config.host_name;
  spec.vpid = peer_.pid;
  spec.home_ppid = ppid;
  spec.stdin_empty = (req_.flags & wire::kRunStdinEmpty) != 0;
  return spec;
}

Status DeputySession::PlaceRestart() {
  // A checkpoint taken by kite checkpoint: restored as a new job of this deputy. The restored
  // processes keep what their memory holds (their vpids, their home); what the new job's
  // relays need starts afresh at offset 0.
  rpc::ExecSpec base = BuildSpec();
  rpc::RestoreSpec spec;
  spec.image_path = req_.restart;
  spec.creds = base.creds;
  spec.tty_mask = base.tty_mask;
  if (base.__isset.winsize) spec.__set_winsize(base.winsize);
  spec.home_host = base.home_host;
  spec.vpid = base.vpid;
  spec.home_ppid = base.home_ppid;
  spec.command = "kite restart " + req_.restart;
  std::vector<std::string> candidates;
  if (!req_.host.empty()) {
    KITE_RETURN_IF_ERROR(ctx_.config.AddressOf(req_.host).status());
    candidates.push_back(req_.host);
  } else {
    candidates = ctx_.hosts.Candidates(ctx_.config.host_name);
    candidates.push_back(ctx_.config.host_name);  // home restores its own job whatever its owner does
  }
  std::string why_not;
  for (const auto& host : candidates) {
    rpc::ExecReply reply;
    Status s = LongCall(ctx_.pool, host, "restore job", [&](rpc::RemoteClient& c) { c.restore_job(reply, spec); });
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(move_mu_);
      where_ = {host, reply.job_id};
      if (host != ctx_.config.host_name) ctx_.hosts.NoteClaimed(host);
      return OkStatus();
    }
    KLOG_INFO("restart of {} on {} refused: {}", req_.restart, host, s.ToString());
    why_not += (why_not.empty() ? "" : "; ") + s.message();
    // A checkpoint that is not valid, or not the caller's, is no better on another host.
    if (s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kPermissionDenied ||
        s.code() == StatusCode::kNotFound)
      return s;
  }
  return FailedPrecondition("no host restored " + req_.restart + " (" + why_not + ")");
}

Status DeputySession::Place(std::string* local_reason) {
  if (!req_.restart.empty()) return PlaceRestart();
  const bool explicit_host = !req_.host.empty();
  if (!UnderSharedPath(req_.cwd, ctx_.config.shared_paths)) {
    std::string why = "the working directory " + req_.cwd + " is not on the cluster file system";
    if (explicit_host) return FailedPrecondition("cannot run on " + req_.host + ": " + why);
    *local_reason = why + ": running at home";
    return OkStatus();
  }
  std::vector<std::string> candidates;
  if (explicit_host) {
    if (!ctx_.config.AddressOf(req_.host).ok()) return ctx_.config.AddressOf(req_.host).status();
    candidates.push_back(req_.host);
  } else {
    candidates = ctx_.hosts.Candidates(ctx_.config.host_name);
  }

  rpc::ExecSpec spec = BuildSpec();
  Status last = ResourceExhausted("no idle host has a free slot");
  for (const auto& host : candidates) {
    rpc::ExecReply reply;
    Status s = ctx_.pool.With(host, "start job", [&](rpc::RemoteClient& c) { c.start_job(reply, spec); });
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(move_mu_);
      where_ = {host, reply.job_id};
      ctx_.hosts.NoteClaimed(host);
      return OkStatus();
    }
    KLOG_DEBUG("placement of {} on {} refused: {}", req_.argv[0], host, s.ToString());
    switch (s.code()) {
      case StatusCode::kResourceExhausted:
      case StatusCode::kFailedPrecondition:
      case StatusCode::kUnavailable:
        last = s;
        continue;  // the next host may take it
      default:
        return s;  // the request itself is refused: another host would refuse it too
    }
  }
  if (explicit_host) return last;
  if (!(req_.flags & wire::kRunAllowLocal)) return last;
  *local_reason = last.message() + ": running at home";
  return OkStatus();
}

void DeputySession::Run() {
  std::string local_reason;
  Status placed = Place(&local_reason);
  if (!placed.ok()) {
    SendError(placed);
    return;
  }
  JobRecord rec;
  rec.vpid = peer_.pid;
  rec.uid = peer_.uid;
  rec.command = CommandLine(req_.argv);
  rec.started = Clock::now();
  const Where placed_at = Current();
  if (placed_at.host.empty()) {
    // No remote host: the deputy execs the command itself, so it is an ordinary child of its
    // caller. The record shows it in `kite ps` until the process is gone.
    rec.host = ctx_.config.host_name;
    rec.local = true;
    ctx_.jobs.Add(rec);
    wire::Chunk why;
    why.data = local_reason;
    SendDeputy(wire::Frame(wire::MsgType::kRunLocal, why));
    return;
  }
  rec.host = placed_at.host;
  rec.job_id = placed_at.job_id;
  rec.session = weak_from_this();
  ctx_.jobs.Add(rec);
  KLOG_INFO("job vpid {} uid {} placed on {} as job {}: {}", peer_.pid, peer_.uid, placed_at.host, placed_at.job_id,
            rec.command);

  wire::Placed p;
  p.host = placed_at.host;
  p.job_id = placed_at.job_id;
  SendDeputy(wire::Frame(wire::MsgType::kPlaced, p));

  std::thread output([this] { RelayOutput(); });
  std::thread input([this] { RelayInput(); });
  ReadDeputy();
  {
    std::lock_guard<std::mutex> lock(in_mu_);
    in_stop_ = true;
  }
  in_cv_.notify_all();
  {
    std::lock_guard<std::mutex> lock(move_mu_);  // the input relay may wait for a move
    move_cv_.notify_all();
  }
  input.join();
  output.join();
  {
    // A move in flight finishes first (it may be about to kill the original): then the copy
    // that runs is the one released.
    std::unique_lock<std::mutex> lock(move_mu_);
    move_cv_.wait(lock, [&] { return !moving_; });
    moving_ = true;  // no move starts from now on
    moving_hint_ = true;
  }
  FinishRemote();
  ctx_.jobs.Remove(peer_.pid);
}

DeputySession::Where DeputySession::Current() {
  std::lock_guard<std::mutex> lock(move_mu_);
  return where_;
}

// Reads the deputy's frames until it closes the connection (normally right after it got the
// exit status). Never blocks on the remote host: stdin goes to the input thread's queue.
void DeputySession::ReadDeputy() {
  for (;;) {
    wire::MsgType type;
    std::string body;
    if (wire::RecvFrame(fd_, &type, &body) != 0) break;
    switch (type) {
      case wire::MsgType::kStdinData:
      case wire::MsgType::kStdinEof: {
        StdinItem item;
        if (type == wire::MsgType::kStdinData) {
          wire::Chunk c;
          if (wire::DecodeBody(body, &c) != 0) goto malformed;
          item.data = std::move(c.data);
        } else {
          item.eof = true;
        }
        std::lock_guard<std::mutex> lock(in_mu_);
        in_queue_.push_back(std::move(item));
        in_cv_.notify_one();
        break;
      }
      case wire::MsgType::kSignal: {
        wire::SignalMsg m;
        if (wire::DecodeBody(body, &m) != 0) goto malformed;
        if (job_over_) break;
        Where w;
        {
          std::lock_guard<std::mutex> lock(move_mu_);
          if (moving_) {  // delivered to whichever copy runs when the move is over
            held_signals_.push_back(m.signo);
            break;
          }
          w = where_;
        }
        Status s = ctx_.pool.With(w.host, "signal", [&](rpc::RemoteClient& c) { c.signal_job(w.job_id, m.signo); });
        if (!s.ok()) KLOG_WARN("forwarding signal {} to job {} on {}: {}", m.signo, w.job_id, w.host, s.ToString());
        break;
      }
      case wire::MsgType::kWinsize: {
        wire::Winsize w;
        if (wire::DecodeBody(body, &w) != 0) goto malformed;
        rpc::WinSize ws;
        ws.rows = static_cast<int16_t>(w.rows);
        ws.cols = static_cast<int16_t>(w.cols);
        ws.xpixel = static_cast<int16_t>(w.xpixel);
        ws.ypixel = static_cast<int16_t>(w.ypixel);
        if (job_over_) break;
        Where at;
        {
          std::lock_guard<std::mutex> lock(move_mu_);
          if (moving_) {
            held_winsize_ = ws;
            break;
          }
          at = where_;
        }
        Status s = ctx_.pool.With(at.host, "resize", [&](rpc::RemoteClient& c) { c.resize(at.job_id, ws); });
        if (!s.ok()) KLOG_WARN("forwarding a window size to job {} on {}: {}", at.job_id, at.host, s.ToString());
        break;
      }
      default:
        goto malformed;
    }
    continue;
  malformed:
    KLOG_WARN("deputy {} sent a malformed or unexpected frame (type {}); dropping it", peer_.pid,
              static_cast<int>(type));
    SendError(InvalidArgument("malformed frame from the deputy"));
    break;
  }
  std::lock_guard<std::mutex> lock(send_mu_);
  deputy_gone_ = true;
  ::shutdown(fd_, SHUT_RDWR);
}

void DeputySession::RelayOutput() {
  Where w = Current();
  int64_t out_ack = 0, err_ack = 0;    // offsets in the current copy's streams
  int64_t out_skip = 0, err_skip = 0;  // a requeued copy's bytes below these were delivered already
  std::unique_ptr<RemoteConn> conn;
  Clock::time_point failing_since{};
  Status last_error;
  while (!deputy_gone_) {
    if (moving_hint_) {
      // Follow a switch once everything the old copy wrote up to its checkpoint is delivered.
      std::lock_guard<std::mutex> lock(move_mu_);
      if (switch_ && (switch_->requeue || (out_ack >= switch_->out_from && err_ack >= switch_->err_from))) {
        if (conn) ctx_.pool.Release(w.host, std::move(conn));
        if (switch_->requeue) {
          out_skip = std::max(out_ack, out_skip);
          err_skip = std::max(err_ack, err_skip);
          out_ack = err_ack = 0;
        }
        w = switch_->to;
        where_ = w;
        in_from_ = switch_->in_from;
        switch_.reset();
        generation_hint_ = ++generation_;
        failing_since = Clock::time_point{};
        move_cv_.notify_all();
        {
          std::lock_guard<std::mutex> in_lock(in_mu_);  // lock order: move_mu_, then in_mu_
          in_cv_.notify_all();
        }
      }
    }
    if (!conn) {
      auto c = ctx_.pool.Acquire(w.host);
      if (c.ok()) conn = std::move(c).value();
      else last_error = c.status();
    }
    const int wait_ms = moving_hint_ ? kMovePollMs : RemotePool::kLongPollMs;
    rpc::JobOutput out;
    Status s = conn ? Call("read output of job " + std::to_string(w.job_id) + " on " + w.host,
                           [&] { conn->client->read_output(out, w.job_id, out_ack, err_ack, wait_ms); })
                    : last_error;
    if (!s.ok()) {
      conn.reset();
      if (moving_hint_ && s.code() != StatusCode::kUnavailable) {
        // The copy a move lets go is forgotten by its host (NOT_FOUND): wait for the mover.
        std::unique_lock<std::mutex> lock(move_mu_);
        move_cv_.wait(lock, [&] { return !moving_ || switch_.has_value(); });
        if (switch_) continue;
      }
      if (s.code() != StatusCode::kUnavailable) {
        job_over_ = true;
        SendError(s.With("job lost"));
        return;
      }
      auto now = Clock::now();
      if (failing_since == Clock::time_point{}) failing_since = now;
      if (now - failing_since > kLostAfter) {
        job_over_ = true;
        KLOG_WARN("job vpid {} lost: {}", peer_.pid, s.ToString());
        SendError(Unavailable("lost contact with " + w.host + ", where the job ran (" + s.message() + ")"));
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      continue;
    }
    failing_since = Clock::time_point{};
    // Offsets make a repeated reply harmless: forward only what is past the acknowledged point.
    auto forward = [&](const std::string& data, int64_t offset, int64_t* ack, int64_t skip, wire::MsgType type) {
      if (offset > *ack) return false;  // a gap: the remoted dropped bytes we never saw
      size_t from = static_cast<size_t>(std::max(*ack, skip) - offset);
      for (size_t pos = from; pos < data.size(); pos += wire::kMaxChunk) {
        wire::Chunk c;
        c.data.assign(data, pos, std::min(wire::kMaxChunk, data.size() - pos));
        if (!SendDeputy(wire::Frame(type, c))) return true;
      }
      *ack = std::max(*ack, offset + static_cast<int64_t>(data.size()));
      return true;
    };
    if (!forward(out.stdout_data, out.stdout_offset, &out_ack, out_skip, wire::MsgType::kStdoutData) ||
        !forward(out.stderr_data, out.stderr_offset, &err_ack, err_skip, wire::MsgType::kStderrData)) {
      job_over_ = true;
      SendError(DataLoss("output of job " + std::to_string(w.job_id) + " has a gap"));
      return;
    }
    if (moving_hint_) {
      std::unique_lock<std::mutex> lock(move_mu_);
      out_ack_ = out_ack;
      err_ack_ = err_ack;
      if (out.exited) {
        // The copy a move lets go (a requeue kills it before the new one starts) does not end
        // the job: wait for the mover. A move that ends without a switch means the exit is real.
        move_cv_.wait(lock, [&] { return !moving_ || switch_.has_value(); });
      }
      if (switch_) continue;
    }
    if (out.exited) {
      job_over_ = true;
      wire::ExitMsg e;
      e.wait_status = out.wait_status;
      e.utime_us = out.rusage.utime_us;
      e.stime_us = out.rusage.stime_us;
      e.maxrss_kb = out.rusage.maxrss_kb;
      SendDeputy(wire::Frame(wire::MsgType::kExit, e));
      // The host gave the slot back at the exit: count it free now, not once the release is
      // done, or make's next recipe, started the moment this deputy exits, finds no slot.
      if (w.host != ctx_.config.host_name && !slot_noted_free_.exchange(true)) ctx_.hosts.NoteReleased(w.host);
      ctx_.pool.Release(w.host, std::move(conn));
      {
        std::lock_guard<std::mutex> lock(move_mu_);
        move_cv_.notify_all();  // a mover waiting for a switch gives up
      }
      return;
    }
  }
  if (conn) ctx_.pool.Release(w.host, std::move(conn));
}

void DeputySession::RelayInput() {
  // Every stdin byte from offset `base` on: bytes a copy accepted are kept (kStdinRetain), so
  // that after a move the new copy gets what the old one had accepted but not consumed.
  std::string buf;
  int64_t base = 0;
  // An empty stdin: the first copy started at EOF; a copy after a move is sent the EOF.
  const bool empty = (req_.flags & wire::kRunStdinEmpty) != 0;
  bool eof = empty;       // the deputy's stdin ended (after buf)
  bool eof_sent = empty;  // the current copy accepted everything and the EOF
  int64_t offset = 0;     // accepted by the current copy
  int64_t acked = 0;      // the highest offset acknowledged to the deputy (flow control)
  uint64_t generation;
  Where w;
  {
    std::lock_guard<std::mutex> lock(move_mu_);
    w = where_;
    generation = generation_;
  }
  std::unique_ptr<RemoteConn> conn;
  int backoff_ms = 1;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(in_mu_);
      const bool all_sent = offset >= base + static_cast<int64_t>(buf.size()) && (!eof || eof_sent);
      if (all_sent) {
        in_cv_.wait(lock, [&] { return in_stop_ || !in_queue_.empty() || generation_hint_ != generation; });
      }
      if (in_stop_) break;
      for (; !in_queue_.empty(); in_queue_.pop_front()) {
        if (!eof) buf += in_queue_.front().data;
        eof = eof || in_queue_.front().eof;
      }
    }
    {
      std::unique_lock<std::mutex> lock(move_mu_);
      move_cv_.wait(lock, [&] { return !moving_ || job_over_ || deputy_gone_; });
      if (job_over_ || deputy_gone_) break;
      if (generation != generation_) {  // a new copy, which consumed up to in_from_
        if (conn) ctx_.pool.Release(w.host, std::move(conn));
        generation = generation_;
        w = where_;
        if (in_from_ < base) {
          KLOG_ERROR("job vpid {}: stdin from offset {} is needed after a move, but only bytes from {} on are kept",
                     peer_.pid, in_from_, base);
          break;
        }
        offset = in_from_;
        eof_sent = false;
      }
    }
    const int64_t total = base + static_cast<int64_t>(buf.size());
    if (offset >= total && (!eof || eof_sent)) continue;
    if (!conn) {
      auto c = ctx_.pool.Acquire(w.host);
      if (!c.ok()) {  // the output relay notices a lost host and reports it
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      conn = std::move(c).value();
    }
    int64_t accepted = offset;
    std::string rest = buf.substr(static_cast<size_t>(offset - base));
    Status s = Call("write input", [&] { accepted = conn->client->write_input(w.job_id, offset, rest, eof); });
    if (!s.ok()) {
      conn.reset();
      bool moved;
      {
        std::lock_guard<std::mutex> lock(move_mu_);
        moved = moving_ || generation != generation_;
      }
      if (s.code() != StatusCode::kUnavailable && !moved) break;  // the job is gone
      std::this_thread::sleep_for(std::chrono::milliseconds(moved ? 5 : 100));
      continue;
    }
    if (accepted > offset) backoff_ms = 1;
    offset = std::max(offset, accepted);
    stdin_sent_ = std::max<int64_t>(stdin_sent_, offset);
    if (eof && offset == total) eof_sent = true;
    if (offset > acked) {
      acked = offset;
      wire::Offset ack;
      ack.offset = static_cast<uint64_t>(acked);
      SendDeputy(wire::Frame(wire::MsgType::kStdinAck, ack));
    }
    // Trim in large steps: erasing the front of buf is a memmove of everything kept.
    if (offset - base > static_cast<int64_t>(2 * kStdinRetain)) {
      const size_t drop = static_cast<size_t>(offset - base) - kStdinRetain;
      buf.erase(0, drop);
      base += static_cast<int64_t>(drop);
    }
    if (offset >= total) continue;
    // The job is not reading: wait a little, up to 50 ms between tries.
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, 50);
  }
  if (conn) ctx_.pool.Release(w.host, std::move(conn));
}

void DeputySession::FinishRemote() {
  const Where w = Current();
  if (!job_over_) KLOG_INFO("deputy {} is gone: killing job {} on {}", peer_.pid, w.job_id, w.host);
  Status s = ctx_.pool.With(w.host, "release", [&](rpc::RemoteClient& c) { c.release(w.job_id); });
  if (!s.ok() && s.code() != StatusCode::kNotFound)
    KLOG_WARN("releasing job {} on {}: {}", w.job_id, w.host, s.ToString());
  // Released, or the host forgot it (restart, GC): either way this home no longer holds it. A
  // failed release (host unreachable) also stops counting: the host's reports tell the rest.
  if (w.host != ctx_.config.host_name && !slot_noted_free_.exchange(true)) ctx_.hosts.NoteReleased(w.host);
}

// --- moves -------------------------------------------------------------------------------

std::vector<std::string> DeputySession::MoveTargets(const std::string& to, MoveCause cause,
                                                    const std::string& from) const {
  const std::string& home = ctx_.config.host_name;
  std::vector<std::string> targets;
  if (!to.empty()) {
    targets.push_back(to);
    if (cause == MoveCause::kRequest) return targets;  // asked for one host: that one or nothing
  } else if (cause == MoveCause::kRequest || ctx_.config.evict_to == "idle") {
    for (const auto& h : ctx_.hosts.Candidates(home)) {
      if (h != from && h != home) targets.push_back(h);
    }
  }
  // Home takes its own jobs back whatever its owner does: the last resort of every eviction.
  if (from != home && std::find(targets.begin(), targets.end(), home) == targets.end()) targets.push_back(home);
  return targets;
}

StatusOr<wire::MoveReply> DeputySession::Move(const std::string& to, MoveCause cause) {
  Where from;
  {
    std::lock_guard<std::mutex> lock(move_mu_);
    if (job_over_ || deputy_gone_) return FailedPrecondition("the job has ended");
    if (moving_) return FailedPrecondition("the job is already moving");
    if (where_.host.empty()) return FailedPrecondition("the job runs at home as an ordinary process");
    if (!to.empty() && to == where_.host) return FailedPrecondition("the job already runs on " + to);
    moving_ = true;
    moving_hint_ = true;
    from = where_;
  }
  if (!to.empty()) {
    Status known = ctx_.config.AddressOf(to).status();
    if (!known.ok()) {
      EndMove();
      return known;
    }
  }
  const auto t0 = Clock::now();
  rpc::CheckpointReply ck;
  Status s = LongCall(ctx_.pool, from.host, "checkpoint job " + std::to_string(from.job_id), [&](rpc::RemoteClient& c) {
    c.checkpoint_job(ck, from.job_id, /*leave_running=*/false, /*stop=*/true);
  });
  if (!s.ok()) {
    if (cause == MoveCause::kEviction && s.code() == StatusCode::kFailedPrecondition &&
        (req_.flags & wire::kRunRequeueOk) && stdin_sent_ == 0) {
      KLOG_INFO("job vpid {} cannot be migrated off {} ({}): requeueing it", peer_.pid, from.host, s.message());
      auto r = Requeue(from);
      EndMove();
      return r;
    }
    EndMove();
    return s.With("cannot move the job");
  }
  const auto t_ckpt = Clock::now();

  rpc::RestoreSpec spec = RestoreSpecFor(ck);
  {
    std::lock_guard<std::mutex> lock(move_mu_);
    if (held_winsize_) spec.__set_winsize(*held_winsize_);
  }

  std::string why_not;
  Where dest;
  for (const auto& target : MoveTargets(to, cause, from.host)) {
    rpc::ExecReply reply;
    Status r = LongCall(ctx_.pool, target, "restore job", [&](rpc::RemoteClient& c) { c.restore_job(reply, spec); });
    if (r.ok()) {
      dest = {target, reply.job_id};
      break;
    }
    KLOG_INFO("job vpid {}: {} did not take it: {}", peer_.pid, target, r.ToString());
    why_not += (why_not.empty() ? "" : "; ") + r.message();
  }
  const int64_t image_bytes = ck.image_bytes;
  const int processes = ck.processes;
  if (dest.host.empty()) {
    // Nobody took it: the original runs on where it was, as if nothing happened.
    Status r = ctx_.pool.With(from.host, "resume job", [&](rpc::RemoteClient& c) { c.resume_job(from.job_id); });
    if (!r.ok()) KLOG_ERROR("job vpid {}: resuming it on {} after a failed move: {}", peer_.pid, from.host, r.ToString());
    DropCheckpoint(ck);
    EndMove();
    return FailedPrecondition("no host restored the job (" + why_not + "); it runs on on " + from.host);
  }
  const auto t_restored = Clock::now();
  if (dest.host != ctx_.config.host_name) ctx_.hosts.NoteClaimed(dest.host);

  Switch sw;
  sw.to = dest;
  sw.out_from = ck.stdout_offset;
  sw.err_from = ck.stderr_offset;
  sw.in_from = ck.stdin_offset;
  Status switched = SwitchTo(sw);
  // The original (stopped) goes now, whatever happened to the switch: two copies never run.
  Status r = ctx_.pool.With(from.host, "release job", [&](rpc::RemoteClient& c) { c.release(from.job_id); });
  if (!r.ok() && r.code() != StatusCode::kNotFound)
    KLOG_WARN("job vpid {}: releasing the original on {}: {}", peer_.pid, from.host, r.ToString());
  if (from.host != ctx_.config.host_name) ctx_.hosts.NoteReleased(from.host);
  DropCheckpoint(ck);  // the restored copies have it all in memory
  ctx_.jobs.Moved(peer_.pid, dest.host, dest.job_id);
  EndMove();
  if (!switched.ok()) return switched;

  wire::MoveReply reply;
  reply.vpid = peer_.pid;
  reply.from = from.host;
  reply.to = dest.host;
  reply.freeze_ms = std::chrono::duration_cast<std::chrono::milliseconds>(t_restored - t0).count();
  reply.image_bytes = image_bytes;
  SendDeputy(wire::Frame(wire::MsgType::kMoved, reply));
  KLOG_INFO("job vpid {} moved {} -> {} (job {} -> {}): {} process(es), checkpoint {} ms, restore {} ms, images {} bytes",
            peer_.pid, from.host, dest.host, from.job_id, dest.job_id, processes,
            std::chrono::duration_cast<std::chrono::milliseconds>(t_ckpt - t0).count(),
            std::chrono::duration_cast<std::chrono::milliseconds>(t_restored - t_ckpt).count(), image_bytes);
  return reply;
}

void DeputySession::DropCheckpoint(const rpc::CheckpointReply& ck) {
  if (ck.image_host.empty()) {
    RemoveCheckpoint(ck.image_path);
    return;
  }
  Status s = ctx_.pool.With(ck.image_host, "drop checkpoint",
                            [&](rpc::RemoteClient& c) { c.drop_checkpoint(ck.image_path); });
  if (!s.ok()) KLOG_WARN("job vpid {}: removing checkpoint {} on {}: {}", peer_.pid, ck.image_path, ck.image_host, s.ToString());
}

StatusOr<wire::MoveReply> DeputySession::Requeue(const Where& from) {
  const auto t0 = Clock::now();
  // Kill it first: a recipe must never run twice at once (it writes the same files).
  Status r = ctx_.pool.With(from.host, "release job", [&](rpc::RemoteClient& c) { c.release(from.job_id); });
  if (!r.ok() && r.code() != StatusCode::kNotFound) return r.With("cannot requeue the job");
  if (from.host != ctx_.config.host_name) ctx_.hosts.NoteReleased(from.host);
  rpc::ExecSpec spec = BuildSpec();
  Where dest;
  std::string why_not;
  std::vector<std::string> targets;
  if (ctx_.config.evict_to == "idle") {
    for (const auto& h : ctx_.hosts.Candidates(ctx_.config.host_name))
      if (h != from.host && h != ctx_.config.host_name) targets.push_back(h);
  }
  for (const auto& target : targets) {
    rpc::ExecReply reply;
    Status s = ctx_.pool.With(target, "start job", [&](rpc::RemoteClient& c) { c.start_job(reply, spec); });
    if (s.ok()) {
      dest = {target, reply.job_id};
      ctx_.hosts.NoteClaimed(target);
      break;
    }
    why_not += (why_not.empty() ? "" : "; ") + s.message();
  }
  if (dest.host.empty()) {
    // Home: its own remoted runs it whatever the owner does there (a job is no guest at home).
    rpc::ExecReply reply;
    Status s = ctx_.pool.With(ctx_.config.host_name, "start job", [&](rpc::RemoteClient& c) { c.start_job(reply, spec); });
    if (!s.ok()) {
      job_over_ = true;
      SendError(s.With("the job was requeued after an eviction but no host, home included, takes it (" + why_not + ")"));
      return s;
    }
    dest = {ctx_.config.host_name, reply.job_id};
  }
  Switch sw;
  sw.to = dest;
  sw.requeue = true;
  KITE_RETURN_IF_ERROR(SwitchTo(sw));
  ctx_.jobs.Moved(peer_.pid, dest.host, dest.job_id);
  wire::MoveReply reply;
  reply.vpid = peer_.pid;
  reply.from = from.host;
  reply.to = dest.host;
  reply.requeued = 1;
  reply.freeze_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  SendDeputy(wire::Frame(wire::MsgType::kMoved, reply));
  KLOG_INFO("job vpid {} requeued: killed on {}, started again on {} as job {}", peer_.pid, from.host, dest.host,
            dest.job_id);
  return reply;
}

Status DeputySession::SwitchTo(const Switch& sw) {
  std::unique_lock<std::mutex> lock(move_mu_);
  const uint64_t before = generation_;
  switch_ = sw;
  move_cv_.notify_all();
  if (!move_cv_.wait_for(lock, kSwitchTimeout, [&] { return generation_ != before || job_over_ || deputy_gone_; })) {
    switch_.reset();
    return Internal("the relays did not follow the move within " + std::to_string(kSwitchTimeout.count()) + " s");
  }
  if (generation_ == before) {
    switch_.reset();
    where_ = sw.to;  // the deputy is gone: release what runs now
    return Aborted("the job ended while it moved");
  }
  return OkStatus();
}

void DeputySession::EndMove() {
  Where w;
  std::vector<int> signals;
  std::optional<rpc::WinSize> winsize;
  {
    std::lock_guard<std::mutex> lock(move_mu_);
    moving_ = false;
    moving_hint_ = false;
    w = where_;
    signals.swap(held_signals_);
    winsize.swap(held_winsize_);
    move_cv_.notify_all();
  }
  if (job_over_) return;
  for (int sig : signals) {
    Status s = ctx_.pool.With(w.host, "signal", [&](rpc::RemoteClient& c) { c.signal_job(w.job_id, sig); });
    if (!s.ok()) KLOG_WARN("forwarding signal {} to job {} on {}: {}", sig, w.job_id, w.host, s.ToString());
  }
  if (winsize) {
    Status s = ctx_.pool.With(w.host, "resize", [&](rpc::RemoteClient& c) { c.resize(w.job_id, *winsize); });
    if (!s.ok()) KLOG_WARN("forwarding a window size to job {} on {}: {}", w.job_id, w.host, s.ToString());
  }
}

StatusOr<wire::CheckpointReply> DeputySession::CheckpointInPlace() {
  Where at;
  {
    std::lock_guard<std::mutex> lock(move_mu_);
    if (job_over_ || deputy_gone_) return FailedPrecondition("the job has ended");
    if (moving_) return FailedPrecondition("the job is moving");
    if (where_.host.empty()) return FailedPrecondition("the job runs at home as an ordinary process");
    moving_ = true;  // no move meanwhile: it would checkpoint the same processes
    at = where_;
  }
  const auto t0 = Clock::now();
  rpc::CheckpointReply ck;
  Status s = LongCall(ctx_.pool, at.host, "checkpoint job " + std::to_string(at.job_id), [&](rpc::RemoteClient& c) {
    c.checkpoint_job(ck, at.job_id, /*leave_running=*/true, /*stop=*/false);
  });
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EndMove();
  if (!s.ok()) return s.With("cannot checkpoint the job");
  wire::CheckpointReply reply;
  reply.host = at.host;
  reply.manifest = ck.image_path;
  reply.processes = ck.processes;
  reply.bytes = ck.image_bytes;
  reply.ms = ms;
  KLOG_INFO("job vpid {} checkpointed on {} ({} process(es), {} bytes) to {}, left running", peer_.pid, at.host,
            reply.processes, reply.bytes, reply.manifest);
  return reply;
}

void DeputySession::EvictFrom(const std::string& host) {
  {
    std::lock_guard<std::mutex> lock(move_mu_);
    if (evicting_) return;
    evicting_ = true;
  }
  std::thread([self = shared_from_this(), host] {
    for (int attempt = 0;; ++attempt) {
      if (self->job_over_ || self->deputy_gone_ || self->Current().host != host) break;
      auto r = self->Move("", MoveCause::kEviction);
      if (r.ok()) break;
      if (attempt % 10 == 0)
        KLOG_INFO("job vpid {} cannot leave {} yet: {}", self->peer_.pid, host, r.status().message());
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    std::lock_guard<std::mutex> lock(self->move_mu_);
    self->evicting_ = false;
  }).detach();
}

}  // namespace kite
