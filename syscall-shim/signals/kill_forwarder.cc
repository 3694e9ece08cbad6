// kill(2) forwarded to the home through the local homed (see kill_forwarder.h). The frame is
// built by hand on the stack rather than with wire::Writer, which allocates: kill() must stay
// async-signal-safe. tests/shim checks the bytes against wire::Frame.
#include "syscall-shim/signals/kill_forwarder.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "common/wire.h"
#include "common/wire_io.h"

namespace kite::shim {

void KillForwarder::Configure(const char* sock_path, const char* home, int timeout_ms) {
  sock_path_ = sock_path;
  home_ = home;
  timeout_ms_ = timeout_ms;
}

size_t KillForwarder::EncodeKillFrame(const char* home, int32_t pid, int32_t signo, char* out,
                                      size_t cap) {
  size_t home_len = strnlen(home, 65);
  size_t body_len = 4 + home_len + 4 + 4;
  if (home_len > 64 || cap < wire::kHeaderBytes + body_len) return 0;
  wire::Header h;
  h.type = static_cast<uint16_t>(wire::MsgType::kKill);
  h.body_len = static_cast<uint32_t>(body_len);
  wire::EncodeHeader(h, out);
  // KillMsg::Encode: bytes(home) = u32 length + bytes, then i32 pid, i32 signo, each copied in
  // host order exactly as wire::Writer does.
  char* p = out + wire::kHeaderBytes;
  uint32_t n = static_cast<uint32_t>(home_len);
  memcpy(p, &n, 4);
  memcpy(p + 4, home, home_len);
  memcpy(p + 4 + home_len, &pid, 4);
  memcpy(p + 8 + home_len, &signo, 4);
  return wire::kHeaderBytes + body_len;
}

int KillForwarder::Connect() const {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  // Set before connect: a homed whose backlog is full must not hang the caller either.
  timeval tv{timeout_ms_ / 1000, (timeout_ms_ % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t len = strnlen(sock_path_, sizeof addr.sun_path);
  if (len == sizeof addr.sun_path) {
    ::close(fd);
    return -ENAMETOOLONG;
  }
  memcpy(addr.sun_path, sock_path_, len + 1);
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  return fd;
}

int KillForwarder::Forward(pid_t pid, int signo) const {
  if (sock_path_ == nullptr || home_ == nullptr) return ESRCH;
  char frame[kMaxFrameBytes];
  size_t frame_len = EncodeKillFrame(home_, pid, signo, frame, sizeof frame);
  if (frame_len == 0) return ESRCH;
  int fd = Connect();
  if (fd < 0) return ESRCH;

  int result = ESRCH;
  char hb[wire::kHeaderBytes];
  wire::Header h;
  char body[16];
  if (wire::WriteAll(fd, frame, frame_len) == 0 && wire::ReadAll(fd, hb, sizeof hb) == 0 &&
      wire::DecodeHeader(hb, &h) && h.type == static_cast<uint16_t>(wire::MsgType::kKillReply) &&
      h.body_len <= sizeof body && wire::ReadAll(fd, body, h.body_len) == 0) {
    wire::Reader r(std::string_view(body, h.body_len));
    wire::KillReply reply;
    // A value that cannot be an errno comes from a confused peer: treat it as no answer.
    if (reply.Decode(r) && reply.err >= 0 && reply.err < 4096) result = reply.err;
  }
  ::close(fd);
  return result;
}

}  // namespace kite::shim
