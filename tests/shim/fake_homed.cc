// The test stand-in for homed's kill service (see fake_homed.h).
#include "tests/shim/fake_homed.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

#include "common/wire_io.h"

namespace kite::shim::testing {

FakeHomed::FakeHomed(const std::string& dir) : path_(dir + "/homed.sock") {
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(listen_fd_, 0) << strerror(errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  EXPECT_LT(path_.size(), sizeof addr.sun_path);
  memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
  EXPECT_EQ(::listen(listen_fd_, 16), 0) << strerror(errno);
  EXPECT_EQ(::pipe2(stop_pipe_, O_CLOEXEC), 0);
  thread_ = std::thread([this] { Serve(); });
}

FakeHomed::~FakeHomed() {
  char c = 'x';
  (void)!::write(stop_pipe_[1], &c, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
  ::unlink(path_.c_str());
}

std::vector<wire::KillMsg> FakeHomed::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void FakeHomed::Serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++connections_;
    HandleOne(fd);
    ::close(fd);
  }
}

void FakeHomed::HandleOne(int fd) {
  wire::MsgType type;
  std::string body;
  wire::KillMsg msg;
  if (wire::RecvFrame(fd, &type, &body) != 0 || type != wire::MsgType::kKill ||
      wire::DecodeBody(body, &msg) != 0) {
    ++malformed_;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(msg);
  }
  switch (mode_.load()) {
    case Mode::kReply:
      wire::Send(fd, wire::MsgType::kKillReply, wire::KillReply{reply_err_.load()});
      break;
    case Mode::kGarbage: {
      std::string frame = wire::Frame(wire::MsgType::kKillReply, wire::KillReply{0});
      frame[0] = 'X';
      wire::SendFrame(fd, frame);
      break;
    }
    case Mode::kWrongType:
      wire::Send(fd, wire::MsgType::kOk);
      break;
    case Mode::kSilent: {
      // Wait until the client gives up and closes, or the test ends.
      pollfd fds[2] = {{fd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      ::poll(fds, 2, 30000);
      break;
    }
    case Mode::kHangUp:
      break;
  }
}

}  // namespace kite::shim::testing
