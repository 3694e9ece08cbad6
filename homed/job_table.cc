// JobTable: home jobs (run by the deputy itself) are not watched; they are dropped lazily when
// listed and their process is gone.
#include "homed/job_table.h"

#include <signal.h>

#include <cerrno>

namespace kite {

void JobTable::Add(JobRecord job) {
  std::lock_guard<std::mutex> lock(mu_);
  jobs_[job.vpid] = std::move(job);
}

void JobTable::Remove(pid_t vpid) {
  std::lock_guard<std::mutex> lock(mu_);
  jobs_.erase(vpid);
}

void JobTable::Moved(pid_t vpid, const std::string& host, int64_t job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(vpid);
  if (it == jobs_.end()) return;
  it->second.host = host;
  it->second.job_id = job_id;
}

std::shared_ptr<DeputySession> JobTable::Session(pid_t vpid, uid_t* owner) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(vpid);
  if (it == jobs_.end()) return nullptr;
  *owner = it->second.uid;
  return it->second.session.lock();
}

std::shared_ptr<DeputySession> JobTable::SessionOf(const std::string& host, int64_t job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [vpid, rec] : jobs_) {
    if (!rec.local && rec.host == host && rec.job_id == job_id) return rec.session.lock();
  }
  return nullptr;
}

std::vector<JobRecord> JobTable::List(uid_t uid, bool all_users) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<JobRecord> out;
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->second.local && ::kill(it->first, 0) != 0 && errno == ESRCH) {
      it = jobs_.erase(it);
      continue;
    }
    if (all_users || it->second.uid == uid) out.push_back(it->second);
    ++it;
  }
  return out;
}

std::string CommandLine(const std::vector<std::string>& argv, size_t max) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
    if (s.size() > max) {
      s.resize(max);
      break;
    }
  }
  return s;
}

}  // namespace kite
