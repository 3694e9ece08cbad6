// JobTable: the home process table (DESIGN §2) — every job whose home is this host, by vpid:
// where it runs now, whose it is, since when. Thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kite {

class DeputySession;

struct JobRecord {
  pid_t vpid = 0;            // the deputy's pid, which is the job root's getpid()
  uid_t uid = 0;
  std::string host;          // where it runs; this host's name when it runs at home
  int64_t job_id = 0;        // the remoted's id; 0 for a job at home
  bool local = false;        // runs at home (the deputy exec'd it)
  std::string command;
  std::chrono::steady_clock::time_point started;
  std::weak_ptr<DeputySession> session;  // what relays it (and can move it); empty when local
};

class JobTable {
 public:
  void Add(JobRecord job);
  void Remove(pid_t vpid);
  // The job moved (migration, requeue).
  void Moved(pid_t vpid, const std::string& host, int64_t job_id);
  // The session of job `vpid`, or null (no such remote job, or it is ending).
  std::shared_ptr<DeputySession> Session(pid_t vpid, uid_t* owner);
  // The session of the job that runs on `host` as `job_id`, or null.
  std::shared_ptr<DeputySession> SessionOf(const std::string& host, int64_t job_id);
  // Jobs of `uid` (all jobs when all_users), dropping home jobs whose process is gone.
  std::vector<JobRecord> List(uid_t uid, bool all_users);

 private:
  std::mutex mu_;
  std::map<pid_t, JobRecord> jobs_;  // GUARDED_BY(mu_)
};

// argv joined by spaces and cut to `max` bytes, for display.
std::string CommandLine(const std::vector<std::string>& argv, size_t max = 200);

}  // namespace kite
