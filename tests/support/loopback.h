// Waiting for a test's own server on loopback: serve() listens on its own thread, so a test
// connects only once the port takes connections. Header-only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace kite::test_support {

// True once 127.0.0.1:`port` accepts a TCP connection, false after `tries` tries 10 ms apart.
inline bool WaitUntilListening(int port, int tries = 200) {
  for (int i = 0; i < tries; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool up = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (fd >= 0) ::close(fd);
    if (up) return true;
    ::usleep(10000);
  }
  return false;
}

}  // namespace kite::test_support
