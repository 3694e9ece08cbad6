// Mutual TLS for real: a Home server on loopback admits only peers with a certificate from the
// cluster CA; strangers, plain TCP, garbage and oversized frames are refused and the server
// keeps serving.
#include "common/certs.h"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <thrift/transport/TSocket.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "common/rpc.h"
#include "tests/support/loopback.h"
#include "kite/rpc/Home.h"

namespace kite {
namespace {

namespace fs = std::filesystem;

class CountingHome : public rpc::HomeIf {
 public:
  void report_state(const rpc::HostStatus&) override { ++reports; }
  int32_t kill(int32_t pid, int32_t, const rpc::Credentials&) override { return pid == 1 ? 0 : 3; }
  void evict_jobs(std::vector<int64_t>&, const std::string&, const std::vector<int64_t>&) override {}
  std::atomic<int> reports{0};
};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // as the daemons do: a peer hanging up is an error, not a death
    dir_ = fs::temp_directory_path() / ("kite-tls-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    ClusterInitOptions o;
    o.out_dir = dir_;
    o.hosts = {{"node1", "127.0.0.1"}, {"node2", "127.0.0.1"}};
    ASSERT_TRUE(InitCluster(o).ok());
    ASSERT_TRUE(MakeSelfSigned("mallory", dir_ / "mallory.pem", dir_ / "mallory.key").ok());
    port_ = 20000 + getpid() % 20000;
  }
  void TearDown() override {
    if (server_) {
      server_->stop();
      thread_.join();
    }
    fs::remove_all(dir_);
  }

  std::shared_ptr<TlsContext> Context(const std::string& host) {
    auto ctx = TlsContext::Create(dir_ / "ca.pem", dir_ / host / "host.pem", dir_ / host / "host.key");
    EXPECT_TRUE(ctx.ok()) << ctx.status().ToString();
    return ctx.ok() ? *ctx : nullptr;
  }

  void StartServer(const TlsContext& tls) {
    handler_ = std::make_shared<CountingHome>();
    auto server = MakeServer(tls, "127.0.0.1", port_, std::make_shared<rpc::HomeProcessor>(handler_));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = *server;
    thread_ = std::thread([this] { server_->serve(); });
    ASSERT_TRUE(test_support::WaitUntilListening(port_)) << "the server never listened";
  }

  Status CallKill(const TlsContext& tls, int32_t* result) {
    auto conn = Connect<rpc::HomeClient>(tls, "127.0.0.1", port_, 2000, 2000);
    if (!conn.ok()) return conn.status();
    return Call("kill", [&] { *result = conn.value()->client->kill(1, 0, rpc::Credentials()); });
  }

  fs::path dir_;
  int port_ = 0;
  std::shared_ptr<CountingHome> handler_;
  std::shared_ptr<apache::thrift::server::TServer> server_;
  std::thread thread_;
};

TEST_F(TlsTest, ClusterPeersTalk) {
  auto server_tls = Context("node1");
  StartServer(*server_tls);
  int32_t r = -1;
  Status s = CallKill(*Context("node2"), &r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(r, 0);
}

TEST_F(TlsTest, ForeignCertificateIsRefused) {
  StartServer(*Context("node1"));
  auto mallory = TlsContext::Create(dir_ / "ca.pem", dir_ / "mallory.pem", dir_ / "mallory.key");
  ASSERT_TRUE(mallory.ok());
  int32_t r = -1;
  Status s = CallKill(**mallory, &r);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  // The server is unharmed.
  ASSERT_TRUE(CallKill(*Context("node2"), &r).ok());
}

TEST_F(TlsTest, ClientWithoutCertificateIsRefused) {
  StartServer(*Context("node1"));
  auto factory = std::make_shared<apache::thrift::transport::TSSLSocketFactory>(apache::thrift::transport::TLSv1_2);
  factory->loadTrustedCertificates((dir_ / "ca.pem").c_str());
  factory->authenticate(true);
  bool refused = false;
  try {
    auto sock = factory->createSocket("127.0.0.1", port_);
    sock->setRecvTimeout(2000);
    auto transport = std::make_shared<apache::thrift::transport::TFramedTransport>(sock);
    rpc::HomeClient client(std::make_shared<apache::thrift::protocol::TBinaryProtocol>(transport));
    transport->open();
    client.kill(1, 0, rpc::Credentials());
  } catch (const std::exception&) {
    refused = true;
  }
  EXPECT_TRUE(refused);
}

TEST_F(TlsTest, ServerWithForeignCertificateIsRefusedByClient) {
  auto mallory = TlsContext::Create(dir_ / "ca.pem", dir_ / "mallory.pem", dir_ / "mallory.key");
  ASSERT_TRUE(mallory.ok());
  StartServer(**mallory);
  int32_t r = -1;
  EXPECT_FALSE(CallKill(*Context("node2"), &r).ok());
}

TEST_F(TlsTest, PlainTcpGarbageAndOversizedFramesDoNotHurtTheServer) {
  StartServer(*Context("node1"));
  // Plain TCP speaking Thrift, and plain garbage.
  for (std::string payload : {std::string("\x00\x00\x00\x10\x80\x01\x00\x01", 8) + "garbagegarbage",
                              std::string(4096, '\xff')}) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    (void)!write(fd, payload.data(), payload.size());
    char buf[64];
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)!read(fd, buf, sizeof buf);  // the server answers with a TLS alert or closes
    close(fd);
  }
  // An authenticated peer announcing a 2 GiB frame is cut off.
  {
    auto tls = Context("node2");
    auto sock = tls->client_factory()->createSocket("127.0.0.1", port_);
    sock->setRecvTimeout(3000);
    sock->open();
    const uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff};
    sock->write(huge, 4);
    sock->flush();
    uint8_t b;
    bool closed = false;
    try {
      closed = sock->read(&b, 1) == 0;
    } catch (const std::exception&) {
      closed = true;
    }
    EXPECT_TRUE(closed);
  }
  int32_t r = -1;
  Status s = CallKill(*Context("node2"), &r);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(CertsTest, InitRefusesToReplaceACa) {
  auto dir = fs::temp_directory_path() / ("kite-ca-" + std::to_string(getpid()));
  fs::remove_all(dir);
  ClusterInitOptions o;
  o.out_dir = dir;
  o.hosts = {{"a", "10.0.0.1"}};
  ASSERT_TRUE(InitCluster(o).ok());
  Status again = InitCluster(o);
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
  o.hosts = {{"bad/name", "1.2.3.4"}};
  o.out_dir = dir / "sub";
  EXPECT_EQ(InitCluster(o).code(), StatusCode::kInvalidArgument);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kite
