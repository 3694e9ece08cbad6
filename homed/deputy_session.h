// DeputySession: one `kite run` deputy's connection, from its RunRequest to the job's end.
//
// It places the job (an idle host with a free slot, claimed at that host's remoted; at home
// when none has one), then relays: the job's stdout/stderr to the deputy (one thread long-polls
// the remoted), the deputy's stdin to the job (a second thread, flow-controlled by
// wire::kStdinWindow so this thread always reads the deputy's signals promptly), and signals and
// window sizes as they come. When the job exits the deputy gets its exact wait status; when the
// deputy disappears (even by SIGKILL) the job is killed; when the host is lost the deputy gets
// an error and exits 255.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/wire.h"
#include "homed/home_context.h"

namespace kite {

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

class DeputySession {
 public:
  // `fd` is the deputy's connection (owned by the caller, open for the session's lifetime).
  DeputySession(HomeContext& ctx, int fd, PeerCred peer, wire::RunRequest request);
  // Runs the whole session; returns when the job is over or the deputy is gone.
  void Run();

 private:
  struct StdinItem {
    std::string data;
    bool eof = false;
  };

  Status Place(std::string* local_reason);
  rpc::ExecSpec BuildSpec() const;
  void RelayOutput();
  void RelayInput();
  void ReadDeputy();
  void FinishRemote();
  // Frames to the deputy come from several threads; one lock keeps them whole.
  bool SendDeputy(const std::string& frame);
  void SendError(const Status& s);

  HomeContext& ctx_;
  const int fd_;
  const PeerCred peer_;
  const wire::RunRequest req_;
  std::string host_;
  int64_t job_id_ = 0;

  std::mutex send_mu_;  // serialises writes to fd_

  std::atomic<bool> job_over_{false};      // exit status delivered, or the job was lost
  std::atomic<bool> deputy_gone_{false};

  std::mutex in_mu_;
  std::condition_variable in_cv_;
  std::deque<StdinItem> in_queue_;  // GUARDED_BY(in_mu_)
  bool in_stop_ = false;            // GUARDED_BY(in_mu_)
};

// Reads uid/gid/groups and the parent pid of process `pid` from /proc.
Status ReadProcessIdentity(pid_t pid, std::vector<int32_t>* groups, pid_t* ppid);

}  // namespace kite
