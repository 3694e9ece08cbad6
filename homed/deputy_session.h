// DeputySession: one `kite run` deputy's connection, from its RunRequest to the job's end.
//
// It places the job (an idle host with a free slot, claimed at that host's remoted; at home
// when none has one), then relays: the job's stdout/stderr to the deputy (one thread long-polls
// the remoted), the deputy's stdin to the job (a second thread, flow-controlled by
// wire::kStdinWindow so this thread always reads the deputy's signals promptly), and signals and
// window sizes as they come. When the job exits the deputy gets its exact wait status; when the
// deputy disappears (even by SIGKILL) the job is killed; when the host is lost the deputy gets
// an error and exits 255.
//
// Moves (DESIGN §5, docs/design-notes.md "Migration: the home's side"): Move() checkpoints the
// job where it runs, leaving the original stopped, restores it on the target and only then
// switches the relays and kills the original; when no target restores it, the original is
// resumed where it was. While a move is in flight, signals and window sizes from the deputy
// are held and delivered to whichever copy runs afterwards, stdin waits, and output is read
// from the original up to the checkpoint's offsets and from the new copy after them, so the
// deputy sees every byte once.
//
// Lock order: move_mu_ before in_mu_ before send_mu_.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
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

// Why a job moves: the policy differs (DESIGN §5).
enum class MoveCause {
  kRequest,   // kite migrate: fails with the reason when the job cannot be checkpointed
  kEviction,  // the host's owner is back: requeue if the job allows it, default target home
};

class DeputySession : public std::enable_shared_from_this<DeputySession> {
 public:
  // `fd` is the deputy's connection (owned by the caller, open for the session's lifetime).
  // Create with std::make_shared: Run() registers a weak pointer in the job table.
  DeputySession(HomeContext& ctx, int fd, PeerCred peer, wire::RunRequest request);
  // Runs the whole session; returns when the job is over or the deputy is gone.
  void Run();

  // Moves the job to `to` (empty: for a request, the least-loaded other idle host, else home;
  // for an eviction, per config [migration] evict_to). Blocks until the job runs at its new
  // place, or until it runs on where it was (then the error says why: FAILED_PRECONDITION with
  // the shim's reason when it cannot be checkpointed, or why no host restored it). At most one
  // move at a time per job (FAILED_PRECONDITION "already moving").
  StatusOr<wire::MoveReply> Move(const std::string& to, MoveCause cause);
  // An eviction of the host the job runs on: Move(kEviction) in the background, retried
  // every second while the job stays on `host` (a job that cannot move yet, or a busy host).
  void EvictFrom(const std::string& host);
  // kite checkpoint: checkpoints the job where it runs and lets it run on (its pipes and stdio
  // as they were). The checkpoint stays in the job's checkpoint directory for the caller to
  // take (kite checkpoint --to moves it). FAILED_PRECONDITION with the reason when it cannot be
  // checkpointed or is moving.
  StatusOr<wire::CheckpointReply> CheckpointInPlace();

 private:
  struct StdinItem {
    std::string data;
    bool eof = false;
  };

  // Where the job runs now (guarded by move_mu_; copied by the relays).
  struct Where {
    std::string host;
    int64_t job_id = 0;
  };
  // The mover's instruction to the output relay: from these output offsets of the old copy on,
  // read the new one. A requeued job starts again at 0: its first bytes (as many as the
  // deputy already got) are dropped.
  struct Switch {
    Where to;
    int64_t out_from = 0, err_from = 0, in_from = 0;
    bool requeue = false;
  };

  // kite restart: restore_job of req_.restart on the requested host, an idle one, or home.
  Status PlaceRestart();
  Status Place(std::string* local_reason);
  rpc::ExecSpec BuildSpec() const;
  Where Current();
  // The move's steps (Move holds moving_ throughout).
  StatusOr<wire::MoveReply> Requeue(const Where& from);
  Status SwitchTo(const Switch& sw);   // hands over to the relays and waits until they follow
  void EndMove();                      // moving_ = false, held signals/winsize delivered
  // Removes a checkpoint once nobody needs it: on the host whose checkpoint directory holds it
  // (ck.image_host), else (the shared tree) from here.
  void DropCheckpoint(const rpc::CheckpointReply& ck);
  std::vector<std::string> MoveTargets(const std::string& to, MoveCause cause, const std::string& from) const;
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

  std::mutex move_mu_;
  std::condition_variable move_cv_;  // moving_, switch_ taken, acks advanced
  Where where_;                      // GUARDED_BY(move_mu_)
  bool moving_ = false;              // GUARDED_BY(move_mu_)
  std::atomic<bool> moving_hint_{false};  // moving_, read without the lock by the relays
  std::optional<Switch> switch_;     // GUARDED_BY(move_mu_): set by Move, taken by RelayOutput
  uint64_t generation_ = 0;          // GUARDED_BY(move_mu_): bumped at every switch
  std::atomic<uint64_t> generation_hint_{0};  // generation_, for the input relay's stdin wait
  int64_t in_from_ = 0;              // GUARDED_BY(move_mu_): stdin restarts here after a switch
  int64_t out_ack_ = 0, err_ack_ = 0;  // GUARDED_BY(move_mu_): what the deputy got (stream offsets)
  std::vector<int> held_signals_;    // GUARDED_BY(move_mu_): arrived during a move
  std::optional<rpc::WinSize> held_winsize_;  // GUARDED_BY(move_mu_)
  bool evicting_ = false;            // GUARDED_BY(move_mu_): an EvictFrom thread runs
  std::atomic<int64_t> stdin_sent_{0};  // bytes of stdin accepted by some copy (requeue needs 0)

  std::mutex send_mu_;  // serialises writes to fd_

  std::atomic<bool> job_over_{false};      // exit status delivered, or the job was lost
  std::atomic<bool> deputy_gone_{false};
  std::atomic<bool> slot_noted_free_{false};  // the current host's slot counted free (NoteReleased)

  std::mutex in_mu_;
  std::condition_variable in_cv_;
  std::deque<StdinItem> in_queue_;  // GUARDED_BY(in_mu_)
  bool in_stop_ = false;            // GUARDED_BY(in_mu_)
};

// Reads uid/gid/groups and the parent pid of process `pid` from /proc.
Status ReadProcessIdentity(pid_t pid, std::vector<int32_t>* groups, pid_t* ppid);

}  // namespace kite
