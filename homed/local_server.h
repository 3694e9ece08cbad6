// LocalServer: homed's Unix stream socket (/run/kite/homed.sock) for the deputy, the `kite`
// CLI and the shim. Callers are identified by SO_PEERCRED; a user sees and moves only their
// own jobs (root sees all). One thread per connection.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "homed/deputy_session.h"
#include "homed/home_context.h"

namespace kite {

class LocalServer {
 public:
  explicit LocalServer(HomeContext& ctx) : ctx_(ctx) {}
  ~LocalServer();

  // Binds the socket (mode 0666: any local user may connect; SO_PEERCRED says who they are).
  Status Listen();
  // Accepts until Stop().
  void Serve();
  // Closes the listener and every connection; waits (briefly) for the connection threads.
  void Stop();

 private:
  void Handle(int fd);
  void HandleQuery(int fd, const PeerCred& peer, wire::MsgType type, const std::string& body);
  // The session of the caller's job `vpid` (any job's, for root); NOT_FOUND otherwise.
  StatusOr<std::shared_ptr<DeputySession>> CallersSession(int32_t vpid, const PeerCred& peer);
  // kite evict: forces `host`'s owner active and waits (kEvictWait at most) for its guests to go.
  Status EvictHost(const std::string& host, wire::EvictReply* reply);
  static constexpr std::chrono::seconds kEvictWait{120};
  // Every host (those in the config that never reported as "unreachable") with its guests.
  std::vector<wire::TopHost> HostInfos() const;

  HomeContext& ctx_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<int> conns_;  // GUARDED_BY(mu_)
};

// Delivers `signo` to `pid` (or a group, when negative) at this host as user `uid` would:
// returns 0 or the errno kill(2) gives that user.
int KillAs(uid_t uid, pid_t pid, int signo);

}  // namespace kite
