// Blocking frame I/O on a connected Unix stream socket, for the local protocol (common/wire.h).
// Header-only and exception-free (the shim uses it). Functions return 0 or an errno value:
// EPROTO for a malformed frame, ECONNRESET when the peer closed the connection.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/wire.h"

namespace kite::wire {

inline constexpr const char* kDefaultSocketPath = "/run/kite/homed.sock";

inline int WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += k;
    n -= static_cast<size_t>(k);
  }
  return 0;
}

inline int ReadAll(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t k = ::read(fd, p, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (k == 0) return ECONNRESET;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return 0;
}

inline int SendFrame(int fd, const std::string& frame) { return WriteAll(fd, frame.data(), frame.size()); }

template <typename Msg>
inline int Send(int fd, MsgType type, const Msg& msg) { return SendFrame(fd, Frame(type, msg)); }
inline int Send(int fd, MsgType type) { return SendFrame(fd, Frame(type)); }

// Reads one frame. On success *type and *body hold it.
inline int RecvFrame(int fd, MsgType* type, std::string* body) {
  char hb[kHeaderBytes];
  if (int e = ReadAll(fd, hb, sizeof hb)) return e;
  Header h;
  if (!DecodeHeader(hb, &h)) return EPROTO;
  body->resize(h.body_len);
  if (h.body_len > 0) {
    if (int e = ReadAll(fd, body->data(), h.body_len)) return e == ECONNRESET ? EPROTO : e;
  }
  *type = static_cast<MsgType>(h.type);
  return 0;
}

// Decodes `body` as Msg; EPROTO when it is malformed.
template <typename Msg>
inline int DecodeBody(const std::string& body, Msg* msg) {
  Reader r(body);
  return msg->Decode(r) ? 0 : EPROTO;
}

// Connects to the home-node daemon's socket; returns the fd or -errno.
inline int ConnectUnix(const char* path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t len = 0;
  while (path[len] != '\0') ++len;
  if (len >= sizeof addr.sun_path) {
    ::close(fd);
    return -ENAMETOOLONG;
  }
  for (size_t i = 0; i <= len; ++i) addr.sun_path[i] = path[i];
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  return fd;
}

}  // namespace kite::wire
