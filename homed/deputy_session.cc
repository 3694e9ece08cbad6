// DeputySession: placement and the three relay paths of one remote job.
#include "homed/deputy_session.h"

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/log.h"
#include "common/wire_io.h"

namespace kite {
namespace {

using Clock = std::chrono::steady_clock;

// How long the output relay keeps trying to reach a host that stopped answering before it
// declares the job lost.
constexpr auto kLostAfter = std::chrono::seconds(4);

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
  return spec;
}

Status DeputySession::Place(std::string* local_reason) {
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
      host_ = host;
      job_id_ = reply.job_id;
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
  if (host_.empty()) {
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
  rec.host = host_;
  rec.job_id = job_id_;
  ctx_.jobs.Add(rec);
  KLOG_INFO("job vpid {} uid {} placed on {} as job {}: {}", peer_.pid, peer_.uid, host_, job_id_, rec.command);

  wire::Placed p;
  p.host = host_;
  p.job_id = job_id_;
  SendDeputy(wire::Frame(wire::MsgType::kPlaced, p));

  std::thread output([this] { RelayOutput(); });
  std::thread input([this] { RelayInput(); });
  ReadDeputy();
  {
    std::lock_guard<std::mutex> lock(in_mu_);
    in_stop_ = true;
  }
  in_cv_.notify_all();
  input.join();
  output.join();
  FinishRemote();
  ctx_.jobs.Remove(peer_.pid);
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
        Status s = ctx_.pool.With(host_, "signal", [&](rpc::RemoteClient& c) { c.signal_job(job_id_, m.signo); });
        if (!s.ok()) KLOG_WARN("forwarding signal {} to job {} on {}: {}", m.signo, job_id_, host_, s.ToString());
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
        Status s = ctx_.pool.With(host_, "resize", [&](rpc::RemoteClient& c) { c.resize(job_id_, ws); });
        if (!s.ok()) KLOG_WARN("forwarding a window size to job {} on {}: {}", job_id_, host_, s.ToString());
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
  int64_t out_ack = 0, err_ack = 0;
  std::unique_ptr<RemoteConn> conn;
  Clock::time_point failing_since{};
  Status last_error;
  while (!deputy_gone_) {
    if (!conn) {
      auto c = ctx_.pool.Acquire(host_);
      if (c.ok()) conn = std::move(c).value();
      else last_error = c.status();
    }
    rpc::JobOutput out;
    Status s = conn ? Call("read output of job " + std::to_string(job_id_) + " on " + host_,
                           [&] { conn->client->read_output(out, job_id_, out_ack, err_ack, RemotePool::kLongPollMs); })
                    : last_error;
    if (!s.ok()) {
      conn.reset();
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
        SendError(Unavailable("lost contact with " + host_ + ", where the job ran (" + s.message() + ")"));
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      continue;
    }
    failing_since = Clock::time_point{};
    // Offsets make a repeated reply harmless: forward only what is past the acknowledged point.
    auto forward = [&](const std::string& data, int64_t offset, int64_t* ack, wire::MsgType type) {
      if (offset > *ack) return false;  // a gap: the remoted dropped bytes we never saw
      size_t skip = static_cast<size_t>(*ack - offset);
      for (size_t pos = skip; pos < data.size(); pos += wire::kMaxChunk) {
        wire::Chunk c;
        c.data.assign(data, pos, std::min(wire::kMaxChunk, data.size() - pos));
        if (!SendDeputy(wire::Frame(type, c))) return true;
      }
      if (data.size() > skip) *ack = offset + static_cast<int64_t>(data.size());
      return true;
    };
    if (!forward(out.stdout_data, out.stdout_offset, &out_ack, wire::MsgType::kStdoutData) ||
        !forward(out.stderr_data, out.stderr_offset, &err_ack, wire::MsgType::kStderrData)) {
      job_over_ = true;
      SendError(DataLoss("output of job " + std::to_string(job_id_) + " has a gap"));
      return;
    }
    if (out.exited) {
      job_over_ = true;
      wire::ExitMsg e;
      e.wait_status = out.wait_status;
      e.utime_us = out.rusage.utime_us;
      e.stime_us = out.rusage.stime_us;
      e.maxrss_kb = out.rusage.maxrss_kb;
      SendDeputy(wire::Frame(wire::MsgType::kExit, e));
      ctx_.pool.Release(host_, std::move(conn));
      return;
    }
  }
  if (conn) ctx_.pool.Release(host_, std::move(conn));
}

void DeputySession::RelayInput() {
  std::unique_ptr<RemoteConn> conn;
  int64_t offset = 0;
  for (;;) {
    StdinItem item;
    {
      std::unique_lock<std::mutex> lock(in_mu_);
      in_cv_.wait(lock, [&] { return in_stop_ || !in_queue_.empty(); });
      if (in_queue_.empty()) break;  // stopped
      item = std::move(in_queue_.front());
      in_queue_.pop_front();
    }
    const int64_t start = offset;
    const int64_t end = start + static_cast<int64_t>(item.data.size());
    int backoff_ms = 1;
    while (!job_over_ && !deputy_gone_) {
      if (!conn) {
        auto c = ctx_.pool.Acquire(host_);
        if (!c.ok()) break;  // the output relay notices a lost host and reports it
        conn = std::move(c).value();
      }
      int64_t accepted = offset;
      std::string rest = item.data.substr(static_cast<size_t>(offset - start));
      Status s = Call("write input", [&] { accepted = conn->client->write_input(job_id_, offset, rest, item.eof); });
      if (!s.ok()) {
        conn.reset();
        if (s.code() != StatusCode::kUnavailable) break;  // the job is gone
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      if (accepted > offset) backoff_ms = 1;
      offset = std::max(offset, accepted);
      if (offset >= end) break;
      // The job is not reading: wait a little, up to 50 ms between tries.
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min(backoff_ms * 2, 50);
    }
    if (job_over_ || deputy_gone_) break;
    wire::Offset ack;
    ack.offset = static_cast<uint64_t>(offset);
    SendDeputy(wire::Frame(wire::MsgType::kStdinAck, ack));
    if (item.eof) break;
  }
  if (conn) ctx_.pool.Release(host_, std::move(conn));
}

void DeputySession::FinishRemote() {
  if (!job_over_) KLOG_INFO("deputy {} is gone: killing job {} on {}", peer_.pid, job_id_, host_);
  Status s = ctx_.pool.With(host_, "release", [&](rpc::RemoteClient& c) { c.release(job_id_); });
  if (!s.ok() && s.code() != StatusCode::kNotFound)
    KLOG_WARN("releasing job {} on {}: {}", job_id_, host_, s.ToString());
  // Released, or the host forgot it (restart, GC): either way this home no longer holds it. A
  // failed release (host unreachable) also stops counting: the host's reports tell the rest.
  ctx_.hosts.NoteReleased(host_);
}

}  // namespace kite
