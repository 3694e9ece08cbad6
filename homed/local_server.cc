// LocalServer: accept loop, per-connection dispatch, and the CLI's queries.
#include "homed/local_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "common/log.h"
#include "common/wire_io.h"
#include "kite/rpc/Home.h"

namespace kite {
namespace {

std::string StateName(rpc::HostState::type s, bool reachable) {
  if (!reachable) return "unreachable";
  switch (s) {
    case rpc::HostState::IDLE: return "idle";
    case rpc::HostState::OWNER_ACTIVE: return "owner-active";
    case rpc::HostState::DRAINING: return "draining";
  }
  return "unknown";
}

std::string OverrideName(rpc::OwnerOverride::type o) {
  switch (o) {
    case rpc::OwnerOverride::AUTO: return "auto";
    case rpc::OwnerOverride::FORCE_ACTIVE: return "active";
    case rpc::OwnerOverride::FORCE_IDLE: return "idle";
  }
  return "auto";
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void ReplyError(int fd, const Status& s) {
  wire::ErrorMsg e;
  e.code = static_cast<int32_t>(s.code());
  e.message = s.message();
  wire::Send(fd, wire::MsgType::kError, e);
}

}  // namespace

int KillAs(uid_t uid, pid_t pid, int signo) {
  if (uid == 0) return ::kill(pid, signo) == 0 ? 0 : errno;
  // The kernel's own permission check, as the user: a child drops to the uid and sends it.
  // Only raw syscalls between fork and _exit (this process has threads).
  pid_t child = ::fork();
  if (child < 0) return errno;
  if (child == 0) {
    if (::syscall(SYS_setresuid, uid, uid, uid) != 0) ::_exit(EPERM);
    ::_exit(::syscall(SYS_kill, pid, signo) == 0 ? 0 : errno);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : EPERM;
}

LocalServer::~LocalServer() { Stop(); }

Status LocalServer::Listen() {
  const std::string path = ctx_.config.socket_path();
  if (::mkdir(ctx_.config.run_dir.c_str(), 0755) != 0 && errno != EEXIST)
    return PosixError("create " + ctx_.config.run_dir, errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return InvalidArgument("socket path too long: " + path);
  std::copy(path.begin(), path.end(), addr.sun_path);
  // A socket file left by a crashed homed is stale only if nobody answers on it.
  int probe = wire::ConnectUnix(path.c_str());
  if (probe >= 0) {
    ::close(probe);
    return FailedPrecondition("another kite-homed is already serving " + path);
  }
  ::unlink(path.c_str());
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return PosixError("socket", errno);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return PosixError("bind " + path, errno);
  ::chmod(path.c_str(), 0666);
  if (::listen(listen_fd_, 256) != 0) return PosixError("listen " + path, errno);
  return OkStatus();
}

void LocalServer::Serve() {
  while (!stopping_) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (stopping_) break;
      if (errno == EMFILE || errno == ENFILE) {
        KLOG_ERROR("accept on the local socket: out of file descriptors");
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      KLOG_ERROR("accept on the local socket: {}", strerror(errno));
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      conns_.insert(fd);
    }
    std::thread([this, fd] {
      Handle(fd);
      std::lock_guard<std::mutex> lock(mu_);
      conns_.erase(fd);
      ::close(fd);
      cv_.notify_all();
    }).detach();
  }
}

void LocalServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (listen_fd_ >= 0) {
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    ::unlink(ctx_.config.socket_path().c_str());
  }
  std::unique_lock<std::mutex> lock(mu_);
  for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);
  cv_.wait_for(lock, std::chrono::seconds(5), [&] { return conns_.empty(); });
}

void LocalServer::Handle(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return;
  PeerCred peer{cred.pid, cred.uid, cred.gid};

  wire::MsgType type;
  std::string body;
  int err = wire::RecvFrame(fd, &type, &body);
  if (err == EPROTO) {
    ReplyError(fd, InvalidArgument("malformed frame"));
    return;
  }
  if (err != 0) return;
  if (type == wire::MsgType::kRunRequest) {
    wire::RunRequest req;
    if (wire::DecodeBody(body, &req) != 0) {
      ReplyError(fd, InvalidArgument("malformed run request"));
      return;
    }
    if (req.cwd.empty() || req.cwd[0] != '/') {
      ReplyError(fd, InvalidArgument("the working directory must be an absolute path"));
      return;
    }
    std::make_shared<DeputySession>(ctx_, fd, peer, std::move(req))->Run();
    return;
  }
  HandleQuery(fd, peer, type, body);
}

std::vector<wire::TopHost> LocalServer::HostInfos() const {
  std::vector<wire::TopHost> out;
  auto now = HostTable::Clock::now();
  const int64_t now_ms = NowUnixMs();
  for (const auto& e : ctx_.hosts.Snapshot()) {
    wire::TopHost t;
    wire::HostInfo& h = t.info;
    h.host = e.status.host;
    h.state = StateName(e.status.state, e.reachable);
    h.override_mode = OverrideName(e.status.override_mode);
    h.load1 = e.status.load1;
    h.slots = e.status.slots;
    h.free_slots = e.status.free_slots;
    h.free_memory_kb = e.status.free_memory_kb;
    h.owner_idle_ms = e.status.owner_idle_ms;
    h.guests = static_cast<int32_t>(e.status.guests.size());
    h.last_report_ms_ago = std::chrono::duration_cast<std::chrono::milliseconds>(now - e.received).count();
    if (e.reachable) {
      for (const auto& g : e.status.guests) {
        wire::GuestInfo gi;
        gi.home = g.home_host;
        gi.vpid = g.vpid;
        gi.uid = g.uid;
        gi.elapsed_ms = std::max<int64_t>(0, now_ms - g.started_unix_ms);
        gi.command = g.command;
        t.guests.push_back(std::move(gi));
      }
    }
    out.push_back(std::move(t));
  }
  // Hosts in the config that never reported are listed too: they are part of the cluster.
  for (const auto& [name, addr] : ctx_.config.hosts) {
    bool seen = false;
    for (const auto& t : out) seen |= t.info.host == name;
    if (!seen) {
      wire::TopHost t;
      t.info.host = name;
      t.info.state = "unreachable";
      t.info.override_mode = "auto";
      t.info.last_report_ms_ago = -1;
      out.push_back(std::move(t));
    }
  }
  return out;
}

Status LocalServer::EvictHost(const std::string& host, wire::EvictReply* reply) {
  // The owner override is what eviction means: the host's remoted sends every guest home (or
  // elsewhere) and takes no new ones until `kite owner HOST auto`.
  rpc::HostStatus st;
  KITE_RETURN_IF_ERROR(ctx_.pool.With(host, "status", [&](rpc::RemoteClient& c) { c.status(st); }));
  reply->guests_before = static_cast<int32_t>(st.guests.size());
  const int64_t previous_clear = st.last_clear_ms;
  KITE_RETURN_IF_ERROR(
      ctx_.pool.With(host, "set owner", [&](rpc::RemoteClient& c) { c.set_owner(rpc::OwnerOverride::FORCE_ACTIVE); }));
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + kEvictWait;
  for (;;) {
    KITE_RETURN_IF_ERROR(ctx_.pool.With(host, "status", [&](rpc::RemoteClient& c) { c.status(st); }));
    reply->guests_left = static_cast<int32_t>(st.guests.size());
    if (st.guests.empty()) break;
    if (std::chrono::steady_clock::now() > deadline) return OkStatus();  // guests_left says how many stay
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (reply->guests_before == 0) {
    reply->clear_ms = 0;
  } else {
    // The host's own figure, from the owner's return to its last guest gone; ours as a bound.
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
         st.last_clear_ms == previous_clear && std::chrono::steady_clock::now() < until;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      KITE_RETURN_IF_ERROR(ctx_.pool.With(host, "status", [&](rpc::RemoteClient& c) { c.status(st); }));
    }
    reply->clear_ms = st.last_clear_ms != previous_clear
                          ? st.last_clear_ms
                          : std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
                                .count();
  }
  return OkStatus();
}

StatusOr<std::shared_ptr<DeputySession>> LocalServer::CallersSession(int32_t vpid, const PeerCred& peer) {
  uid_t owner = 0;
  auto session = ctx_.jobs.Session(vpid, &owner);
  if (!session || (owner != peer.uid && peer.uid != 0)) {
    // Someone else's job is "no such job" too: its existence is not the caller's business.
    return NotFound("no remote job " + std::to_string(vpid) + " of yours has its home on " + ctx_.config.host_name +
                    " (kite ps lists them)");
  }
  return session;
}

void LocalServer::HandleQuery(int fd, const PeerCred& peer, wire::MsgType type, const std::string& body) {
  wire::Empty empty;
  switch (type) {
    case wire::MsgType::kHostsQuery: {
      wire::HostsReply reply;
      for (auto& h : HostInfos()) reply.hosts.push_back(std::move(h.info));
      wire::Send(fd, wire::MsgType::kHostsReply, reply);
      return;
    }
    case wire::MsgType::kTopQuery: {
      if (wire::DecodeBody(body, &empty) != 0) return ReplyError(fd, InvalidArgument("malformed top query"));
      wire::TopReply reply{HostInfos()};
      wire::Send(fd, wire::MsgType::kTopReply, reply);
      return;
    }
    case wire::MsgType::kPsQuery: {
      wire::PsQuery q;
      if (wire::DecodeBody(body, &q) != 0) return ReplyError(fd, InvalidArgument("malformed ps query"));
      const bool all = q.all_users && peer.uid == 0;
      wire::PsReply reply;
      auto now = std::chrono::steady_clock::now();
      for (const auto& j : ctx_.jobs.List(peer.uid, all)) {
        wire::JobInfo info;
        info.vpid = j.vpid;
        info.home = ctx_.config.host_name;
        info.host = j.host;
        info.state = j.local ? "home" : "running";
        info.uid = static_cast<int32_t>(j.uid);
        info.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - j.started).count();
        info.command = j.command;
        reply.jobs.push_back(std::move(info));
      }
      // Jobs of other homes, as the hosts running them report them.
      const int64_t now_ms = NowUnixMs();
      for (const auto& e : ctx_.hosts.Snapshot()) {
        if (!e.reachable) continue;
        for (const auto& g : e.status.guests) {
          if (g.home_host == ctx_.config.host_name) continue;
          if (!all && g.uid != static_cast<int32_t>(peer.uid)) continue;
          wire::JobInfo info;
          info.vpid = g.vpid;
          info.home = g.home_host;
          info.host = e.status.host;
          info.state = "running";
          info.uid = g.uid;
          info.elapsed_ms = std::max<int64_t>(0, now_ms - g.started_unix_ms);
          info.command = g.command;
          reply.jobs.push_back(std::move(info));
        }
      }
      wire::Send(fd, wire::MsgType::kPsReply, reply);
      return;
    }
    case wire::MsgType::kOwnerSet: {
      wire::OwnerSet m;
      if (wire::DecodeBody(body, &m) != 0) return ReplyError(fd, InvalidArgument("malformed owner request"));
      if (peer.uid != 0) return ReplyError(fd, PermissionDenied("only root may set a host's owner state"));
      rpc::OwnerOverride::type mode;
      if (m.mode == "active") mode = rpc::OwnerOverride::FORCE_ACTIVE;
      else if (m.mode == "idle") mode = rpc::OwnerOverride::FORCE_IDLE;
      else if (m.mode == "auto") mode = rpc::OwnerOverride::AUTO;
      else return ReplyError(fd, InvalidArgument("owner state must be active, idle or auto, not '" + m.mode + "'"));
      if (auto addr = ctx_.config.AddressOf(m.host); !addr.ok()) return ReplyError(fd, addr.status());
      Status s = ctx_.pool.With(m.host, "set owner", [&](rpc::RemoteClient& c) { c.set_owner(mode); });
      if (!s.ok()) return ReplyError(fd, s);
      wire::Send(fd, wire::MsgType::kOk);
      return;
    }
    case wire::MsgType::kMigrate: {
      wire::MigrateMsg m;
      if (wire::DecodeBody(body, &m) != 0) return ReplyError(fd, InvalidArgument("malformed migrate request"));
      auto session = CallersSession(m.vpid, peer);
      if (!session.ok()) return ReplyError(fd, session.status());
      auto moved = (*session)->Move(m.to, MoveCause::kRequest);
      if (!moved.ok()) return ReplyError(fd, moved.status());
      wire::Send(fd, wire::MsgType::kMoveReply, *moved);
      return;
    }
    case wire::MsgType::kCheckpoint: {
      wire::CheckpointMsg m;
      if (wire::DecodeBody(body, &m) != 0) return ReplyError(fd, InvalidArgument("malformed checkpoint request"));
      auto session = CallersSession(m.vpid, peer);
      if (!session.ok()) return ReplyError(fd, session.status());
      auto done = (*session)->CheckpointInPlace();
      if (!done.ok()) return ReplyError(fd, done.status());
      wire::Send(fd, wire::MsgType::kCheckpointReply, *done);
      return;
    }
    case wire::MsgType::kEvict: {
      wire::EvictMsg m;
      if (wire::DecodeBody(body, &m) != 0) return ReplyError(fd, InvalidArgument("malformed evict request"));
      if (peer.uid != 0) return ReplyError(fd, PermissionDenied("only root may evict a host"));
      if (auto addr = ctx_.config.AddressOf(m.host); !addr.ok()) return ReplyError(fd, addr.status());
      wire::EvictReply reply;
      Status s = EvictHost(m.host, &reply);
      if (!s.ok()) return ReplyError(fd, s);
      wire::Send(fd, wire::MsgType::kEvictReply, reply);
      return;
    }
    case wire::MsgType::kKill: {
      wire::KillMsg m;
      if (wire::DecodeBody(body, &m) != 0) return ReplyError(fd, InvalidArgument("malformed kill request"));
      wire::KillReply reply;
      if (m.home == ctx_.config.host_name) {
        reply.err = KillAs(peer.uid, m.pid, m.signo);
      } else {
        auto addr = ctx_.config.AddressOf(m.home);
        if (!addr.ok()) {
          reply.err = ESRCH;
        } else {
          auto conn = Connect<rpc::HomeClient>(*ctx_.tls, *addr, ctx_.config.home_port, 2000, 5000);
          rpc::Credentials creds;
          creds.uid = static_cast<int32_t>(peer.uid);
          creds.gid = static_cast<int32_t>(peer.gid);
          int32_t result = ESRCH;
          Status s = conn.ok() ? Call("kill at " + m.home, [&] { result = conn.value()->client->kill(m.pid, m.signo, creds); })
                               : conn.status();
          if (!s.ok()) KLOG_WARN("forwarding kill({}, {}) to {}: {}", m.pid, m.signo, m.home, s.ToString());
          reply.err = s.ok() ? result : ESRCH;
        }
      }
      wire::Send(fd, wire::MsgType::kKillReply, reply);
      return;
    }
    default:
      ReplyError(fd, InvalidArgument("unexpected message type " + std::to_string(static_cast<int>(type))));
  }
}

}  // namespace kite
