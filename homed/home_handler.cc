// HomeHandler: thin — validation here, the work in HostTable and KillAs.
#include "homed/home_handler.h"

#include <cerrno>

#include "common/log.h"
#include "homed/deputy_session.h"
#include "homed/local_server.h"

namespace kite {

void HomeHandler::report_state(const rpc::HostStatus& status) {
  if (status.host.empty() || ctx_.config.hosts.count(status.host) == 0) {
    KLOG_WARN("state report from a host not in this cluster's config: '{}'", status.host);
    return;
  }
  ctx_.hosts.Update(status);
}

void HomeHandler::evict_jobs(std::vector<int64_t>& known, const std::string& host,
                             const std::vector<int64_t>& job_ids) {
  if (ctx_.config.hosts.count(host) == 0) {
    KLOG_WARN("eviction request from a host not in this cluster's config: '{}'", host);
    return;
  }
  for (int64_t id : job_ids) {
    auto session = ctx_.jobs.SessionOf(host, id);
    if (!session) continue;
    known.push_back(id);
    session->EvictFrom(host);
  }
}

int32_t HomeHandler::kill(int32_t pid, int32_t signo, const rpc::Credentials& caller) {
  if (signo < 0 || signo > 64 || pid == 0 || pid == -1) return EINVAL;
  if (caller.uid < 0) return EPERM;
  // The calling homed vouches for the uid (it read it with SO_PEERCRED, and TLS proved it is a
  // cluster host); root on another host is root here only if the cluster allows root jobs.
  if (caller.uid == 0 && !ctx_.config.allow_root) return EPERM;
  return KillAs(static_cast<uid_t>(caller.uid), pid, signo);
}

}  // namespace kite
