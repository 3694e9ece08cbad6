// FsCluster: processes and mounts for kitefs integration tests.
#include "tests/fs/fs_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/certs.h"
#include "common/rpc.h"

namespace kite::fs::testing {
namespace {

namespace stdfs = std::filesystem;
using kite::testing::Subprocess;
using std::chrono::milliseconds;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

bool PortOpen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool up = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return up;
}

Status WriteText(const stdfs::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
  out.close();
  if (!out) return Internal("cannot write " + p.string());
  return OkStatus();
}

std::string HostName(int i) { return "node" + std::to_string(i + 1); }

// Unescapes a mountinfo path ("\040" is a space).
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

bool IsKitefsMount(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream ss(line);
    std::string id, parent, dev, root, point;
    ss >> id >> parent >> dev >> root >> point;
    if (Unescape(point) != path) continue;
    size_t dash = line.find(" - ");
    if (dash != std::string::npos && line.compare(dash + 3, 11, "fuse.kitefs") == 0) return true;
  }
  return false;
}

StatusOr<std::unique_ptr<FsCluster>> FsCluster::Start(const FsClusterOptions& options) {
  std::unique_ptr<FsCluster> c(new FsCluster());
  KITE_RETURN_IF_ERROR(c->Init(options));
  return c;
}

Status FsCluster::Init(const FsClusterOptions& options) {
  signal(SIGPIPE, SIG_IGN);
  options_ = options;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "fs";
  dir_ = stdfs::temp_directory_path() / ("kitefs-" + std::to_string(getpid()) + "-" + name);
  stdfs::remove_all(dir_);
  stdfs::create_directories(dir_);
  ClusterInitOptions ci;
  ci.out_dir = (dir_ / "ca").string();
  for (int i = 0; i < options.clients; ++i) ci.hosts[HostName(i)] = "127.0.0.1";
  ci.hosts["fsd"] = "127.0.0.1";
  ci.hosts["node9"] = "127.0.0.1";
  KITE_RETURN_IF_ERROR(InitCluster(ci));
  for (const auto& [host, addr] : ci.hosts) {
    std::string toml = "[cluster]\nca = \"" + (dir_ / "ca" / "ca.pem").string() + "\"\ncert = \"" +
                       (dir_ / "ca" / host / "host.pem").string() + "\"\nkey = \"" +
                       (dir_ / "ca" / host / "host.key").string() + "\"\n[host]\nname = \"" + host +
                       "\"\nlisten = \"127.0.0.1\"\n";
    KITE_RETURN_IF_ERROR(WriteText(dir_ / (host + ".toml"), toml));
  }
  port_ = FreePort();
  if (port_ == 0) return Internal("no free port");
  KITE_RETURN_IF_ERROR(StartServer());
  clients_.resize(options.clients);
  mounted_.assign(options.clients, false);
  for (int i = 0; i < options.clients; ++i) {
    stdfs::create_directories(mount(i));
    KITE_RETURN_IF_ERROR(Mount(i));
  }
  return OkStatus();
}

FsCluster::~FsCluster() {
  for (size_t i = 0; i < clients_.size(); ++i) {
    if (IsKitefsMount(mount(static_cast<int>(i)))) umount2(mount(static_cast<int>(i)).c_str(), MNT_DETACH);
    if (clients_[i]) {
      clients_[i]->Kill(SIGTERM).ok();
      if (!clients_[i]->Wait(milliseconds(5000)).ok()) clients_[i]->Kill(SIGKILL).ok();
    }
  }
  clients_.clear();
  if (server_) {
    server_->Kill(SIGKILL).ok();
    server_->Wait(milliseconds(5000)).ok();
  }
  server_.reset();
  std::error_code ec;
  stdfs::remove_all(dir_, ec);
}

std::string FsCluster::mount(int i) const { return (dir_ / ("m" + std::to_string(i + 1))).string(); }

Status FsCluster::StartServer(const std::vector<std::string>& env) {
  std::vector<std::string> argv = {KITE_BIN_DIR "/kite-fsd",
                                   "--config",
                                   (dir_ / "fsd.toml").string(),
                                   "--store",
                                   (dir_ / "store").string(),
                                   "--port",
                                   std::to_string(port_),
                                   "--listen",
                                   "127.0.0.1",
                                   "--client-timeout-ms",
                                   std::to_string(options_.client_timeout_ms)};
  argv.insert(argv.end(), options_.server_args.begin(), options_.server_args.end());
  if (server_) server_log_ += server_->Stderr();  // an earlier server's, if it was not killed here
  KITE_ASSIGN_OR_RETURN(server_, Subprocess::Start(argv, {.env = env}));
  server_->CloseStdin();
  for (int i = 0; i < 1000; ++i) {
    if (PortOpen(port_)) return OkStatus();
    if (server_->Wait(milliseconds(0)).ok())
      return Internal("kite-fsd exited at start: " + server_->Wait(milliseconds(0))->Describe());
    std::this_thread::sleep_for(milliseconds(10));
  }
  return Internal("kite-fsd never listened on port " + std::to_string(port_) + ": " + server_->Stderr());
}

Status FsCluster::KillServer(int sig) {
  if (!server_) return FailedPrecondition("no server");
  KITE_RETURN_IF_ERROR(server_->Kill(sig));
  auto r = server_->Wait(milliseconds(10000));
  if (!r.ok()) return r.status();
  server_log_ += server_->Stderr();
  server_.reset();
  return OkStatus();
}

StatusOr<kite::testing::ProcessResult> FsCluster::WaitForServerExit(std::chrono::milliseconds timeout) {
  if (!server_) return FailedPrecondition("no server");
  KITE_ASSIGN_OR_RETURN(auto r, server_->Wait(timeout));
  server_log_ += server_->Stderr();
  server_.reset();
  return r;
}

std::string FsCluster::ServerLog() const { return server_log_ + (server_ ? server_->Stderr() : ""); }

std::vector<std::string> FsCluster::ClientArgv(int i, const std::vector<std::string>& extra) const {
  std::vector<std::string> argv = {KITE_BIN_DIR "/kitefs", "-f", "--config", (dir_ / (HostName(i) + ".toml")).string(),
                                   "--server", "127.0.0.1:" + std::to_string(port_)};
  argv.insert(argv.end(), options_.client_args.begin(), options_.client_args.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(mount(i));
  return argv;
}

Status FsCluster::Mount(int i) {
  KITE_ASSIGN_OR_RETURN(clients_[i], Subprocess::Start(ClientArgv(i, {}), {}));
  clients_[i]->CloseStdin();
  for (int t = 0; t < 1000; ++t) {
    if (IsKitefsMount(mount(i))) {
      mounted_[i] = true;
      return OkStatus();
    }
    if (clients_[i]->Wait(milliseconds(0)).ok())
      return Internal("kitefs " + std::to_string(i) + " exited: " + clients_[i]->Wait(milliseconds(0))->Describe());
    std::this_thread::sleep_for(milliseconds(10));
  }
  return Internal("kitefs never mounted " + mount(i) + ": " + clients_[i]->Stderr());
}

Status FsCluster::KillClient(int i) {
  KITE_RETURN_IF_ERROR(clients_[i]->Kill(SIGKILL));
  return clients_[i]->Wait(milliseconds(10000)).status();
}

Status FsCluster::Unmount(int i) {
  if (umount2(mount(i).c_str(), MNT_DETACH) != 0) return PosixError("umount " + mount(i), errno);
  auto r = clients_[i]->Wait(milliseconds(10000));
  if (!r.ok()) return r.status();
  if (!r->Succeeded()) return Internal("kitefs " + std::to_string(i) + " ended badly: " + r->Describe());
  return OkStatus();
}

std::string FsCluster::ClientLog(int i) const { return clients_[i] ? clients_[i]->Stderr() : ""; }

StatusOr<std::unique_ptr<ServerPool>> FsCluster::DirectClient() {
  KITE_ASSIGN_OR_RETURN(auto tls, TlsContext::Create((dir_ / "ca" / "ca.pem").string(),
                                                     (dir_ / "ca" / "node9" / "host.pem").string(),
                                                     (dir_ / "ca" / "node9" / "host.key").string()));
  ServerPool::Options o;
  o.host = "127.0.0.1";
  o.port = port_;
  o.retry_for_ms = 5000;
  return std::make_unique<ServerPool>(tls, o);
}

}  // namespace kite::fs::testing
