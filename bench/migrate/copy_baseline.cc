// The physical limits a migration's freeze is compared with (issue 6): moving SIZE MiB of
// touched memory into memory a process has just mapped, on the host it runs on.
//   memcpy: from a filled buffer into a fresh anonymous mapping;
//   tcp:    through a loopback TCP connection (a forked sender writes the filled buffer, the
//           receiver reads it into a fresh anonymous mapping), as a transfer over the network
//           to a restoring process would, with no network in the way.
// Fresh memory is part of both, as it is of a restore: the first write to each page allocates
// it (on a virtual machine that returns free pages to its hypervisor, that is most of the cost).
// Usage: kite_copy_baseline SIZE_MIB [RUNS (3)]; prints "memcpy_ms=<median> tcp_ms=<median>".
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

[[noreturn]] void Die(const char* what) {  // a failed call: errno says why
  std::perror(what);
  std::exit(1);
}

[[noreturn]] void Wrong(const char* what) {  // a copy that did not arrive whole
  std::fprintf(stderr, "kite_copy_baseline: %s\n", what);
  std::exit(1);
}

double NowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

char* MapFresh(size_t len) {
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) Die("mmap");
  return static_cast<char*>(p);
}

double MemcpyMs(const char* src, size_t len) {
  double t0 = NowMs();
  char* dst = MapFresh(len);
  std::memcpy(dst, src, len);
  double ms = NowMs() - t0;
  if (std::memcmp(dst + len - 4096, src + len - 4096, 4096) != 0) Wrong("memcpy copied the wrong bytes");
  munmap(dst, len);
  return ms;
}

double TcpMs(const char* src, size_t len) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) Die("socket");
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof addr;
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) {
    Die("listen on loopback");
  }
  double t0 = NowMs();
  pid_t sender = fork();
  if (sender < 0) Die("fork");
  if (sender == 0) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) _exit(2);
    for (size_t off = 0; off < len;) {
      ssize_t n = write(s, src + off, std::min<size_t>(len - off, 1 << 20));
      if (n <= 0) _exit(3);
      off += static_cast<size_t>(n);
    }
    _exit(0);
  }
  int conn = accept(listener, nullptr, nullptr);
  if (conn < 0) Die("accept");
  char* dst = MapFresh(len);
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(conn, dst + got, len - got);
    if (n < 0) Die("read");
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  double ms = NowMs() - t0;
  int status = 0;
  waitpid(sender, &status, 0);
  if (got != len || !WIFEXITED(status) || WEXITSTATUS(status) != 0) Wrong("the loopback copy is incomplete");
  if (std::memcmp(dst, src, 4096) != 0) Wrong("the loopback copy has the wrong bytes");
  close(conn);
  close(listener);
  munmap(dst, len);
  return ms;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[(v.size() - 1) / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || std::atol(argv[1]) <= 0) {
    std::fprintf(stderr, "usage: kite_copy_baseline SIZE_MIB [RUNS]\n");
    return 64;
  }
  size_t len = static_cast<size_t>(std::atol(argv[1])) << 20;
  int runs = argc == 3 ? std::max(1, std::atoi(argv[2])) : 3;
  char* src = MapFresh(len);
  for (size_t i = 0; i < len; i += 64) src[i] = static_cast<char>(i * 131 >> 6);
  std::vector<double> mem, tcp;
  for (int i = 0; i < runs; ++i) {
    mem.push_back(MemcpyMs(src, len));
    tcp.push_back(TcpMs(src, len));
  }
  std::printf("memcpy_ms=%.0f tcp_ms=%.0f\n", Median(mem), Median(tcp));
  return 0;
}
