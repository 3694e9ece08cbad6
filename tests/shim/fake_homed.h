// A stand-in for kite-homed's kill service, for the shim tests only: listens on a Unix socket,
// decodes kKill frames with common/wire.h and answers as told. The real homed is covered by the
// integration tests; here only the shim's side of the protocol is under test.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/wire.h"

namespace kite::shim::testing {

class FakeHomed {
 public:
  enum class Mode {
    kReply,    // answer kKillReply{err}
    kGarbage,  // answer a frame with a bad magic
    kWrongType,// answer a well-formed frame of another type (kOk)
    kSilent,   // read the request, never answer (the client must time out)
    kHangUp,   // close without answering
  };

  // Listens on <dir>/homed.sock; `dir` must exist. Fails the calling test if it cannot.
  explicit FakeHomed(const std::string& dir);
  ~FakeHomed();  // stops the thread, removes the socket
  FakeHomed(const FakeHomed&) = delete;
  FakeHomed& operator=(const FakeHomed&) = delete;

  const std::string& path() const { return path_; }
  void set_mode(Mode m) { mode_ = m; }
  void set_reply_err(int err) { reply_err_ = err; }

  int connections() const { return connections_; }
  int malformed() const { return malformed_; }
  std::vector<wire::KillMsg> requests() const;

 private:
  void Serve();
  void HandleOne(int fd);

  std::string path_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::atomic<Mode> mode_{Mode::kReply};
  std::atomic<int> reply_err_{0};
  std::atomic<int> connections_{0};
  std::atomic<int> malformed_{0};
  mutable std::mutex mu_;
  std::vector<wire::KillMsg> requests_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace kite::shim::testing
