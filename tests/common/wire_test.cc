// The local protocol: every message round-trips, and no byte string — truncated, mutated or
// random — makes a decoder crash, over-read or accept garbage as valid.
#include "common/wire.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <random>

#include "common/wire_io.h"

namespace kite::wire {
namespace {

RunRequest SampleRun() {
  RunRequest r;
  r.argv = {"sh", "-c", "echo hi"};
  r.env = {"PATH=/usr/bin", "A=\xff\xfe binary"};
  r.cwd = "/kite/src";
  r.umask = 027;
  r.rlimits = {{7, 1024, 4096}, {3, -1, -1}};
  r.blocked_signals = 0x5;
  r.ignored_signals = 0x8;
  r.tty_mask = kTtyStdout | kTtyStdin;
  r.winsize = {24, 80, 0, 0};
  r.host = "node2";
  r.flags = 0;
  return r;
}

template <typename Msg>
std::string Body(const Msg& m) {
  Writer w;
  m.Encode(w);
  return w.buffer();
}

TEST(WireTest, RunRequestRoundTrips) {
  RunRequest in = SampleRun(), out;
  ASSERT_EQ(DecodeBody(Body(in), &out), 0);
  EXPECT_EQ(out.argv, in.argv);
  EXPECT_EQ(out.env, in.env);
  EXPECT_EQ(out.cwd, in.cwd);
  EXPECT_EQ(out.umask, in.umask);
  ASSERT_EQ(out.rlimits.size(), 2u);
  EXPECT_EQ(out.rlimits[0].soft, 1024);
  EXPECT_EQ(out.rlimits[1].hard, -1);
  EXPECT_EQ(out.blocked_signals, in.blocked_signals);
  EXPECT_EQ(out.ignored_signals, in.ignored_signals);
  EXPECT_EQ(out.tty_mask, in.tty_mask);
  EXPECT_EQ(out.winsize.cols, 80);
  EXPECT_EQ(out.host, "node2");
  EXPECT_EQ(out.flags, 0u);
}

TEST(WireTest, EmptyArgvIsRejected) {
  RunRequest in = SampleRun(), out;
  in.argv.clear();
  EXPECT_EQ(DecodeBody(Body(in), &out), EPROTO);
}

TEST(WireTest, EveryTruncationOfARunRequestIsRejected) {
  std::string body = Body(SampleRun());
  for (size_t n = 0; n < body.size(); ++n) {
    RunRequest out;
    EXPECT_EQ(DecodeBody(body.substr(0, n), &out), EPROTO) << "prefix of " << n << " bytes accepted";
  }
  RunRequest out;
  EXPECT_EQ(DecodeBody(body + "x", &out), EPROTO) << "trailing garbage accepted";
}

TEST(WireTest, LyingCountsAreRejectedWithoutHugeAllocations) {
  Writer w;
  w.u32(0xffffffffu);  // argv count
  RunRequest out;
  EXPECT_EQ(DecodeBody(w.buffer(), &out), EPROTO);
  Writer w2;
  w2.u32(1);
  w2.u32(0x7fffffffu);  // one string claiming 2 GiB
  EXPECT_EQ(DecodeBody(w2.buffer(), &out), EPROTO);
}

TEST(WireTest, SignalNumbersAreValidated) {
  SignalMsg m;
  Writer w;
  w.i32(0);
  EXPECT_EQ(DecodeBody(w.buffer(), &m), EPROTO);
  Writer w2;
  w2.i32(65);
  EXPECT_EQ(DecodeBody(w2.buffer(), &m), EPROTO);
  Writer w3;
  w3.i32(15);
  EXPECT_EQ(DecodeBody(w3.buffer(), &m), 0);
  EXPECT_EQ(m.signo, 15);
}

TEST(WireTest, HeaderRejectsBadMagicVersionAndSize) {
  char buf[kHeaderBytes];
  Header h;
  h.type = 1;
  h.body_len = 10;
  EncodeHeader(h, buf);
  Header out;
  EXPECT_TRUE(DecodeHeader(buf, &out));
  buf[0] ^= 1;
  EXPECT_FALSE(DecodeHeader(buf, &out));
  h.version = 2;
  EncodeHeader(h, buf);
  EXPECT_FALSE(DecodeHeader(buf, &out));
  h.version = kVersion;
  h.body_len = kMaxBodyBytes + 1;
  EncodeHeader(h, buf);
  EXPECT_FALSE(DecodeHeader(buf, &out));
}

// Random mutations of valid bodies, and random bytes, through every decoder. The property:
// decoding returns (true or false) without crashing; sanitizer builds also catch over-reads.
TEST(WireTest, FuzzEveryDecoder) {
  std::mt19937 rng(12345);
  HostsReply hosts;
  hosts.hosts.resize(3);
  hosts.hosts[1].host = "node2";
  PsReply ps;
  ps.jobs.resize(2);
  std::vector<std::string> seeds = {Body(SampleRun()), Body(hosts), Body(ps), Body(KillMsg{"node1", 42, 9}),
                                    Body(ExitMsg{}), Body(ErrorMsg{5, "x"}), Body(Chunk{"data"}), std::string()};
  auto decode_all = [](const std::string& b) {
    RunRequest a; HostsReply b2; PsReply c; KillMsg d; ExitMsg e; ErrorMsg f; Chunk g; Placed h; OwnerSet i;
    Winsize j; Offset k; PsQuery l; KillReply m; SignalMsg n;
    DecodeBody(b, &a); DecodeBody(b, &b2); DecodeBody(b, &c); DecodeBody(b, &d); DecodeBody(b, &e);
    DecodeBody(b, &f); DecodeBody(b, &g); DecodeBody(b, &h); DecodeBody(b, &i); DecodeBody(b, &j);
    DecodeBody(b, &k); DecodeBody(b, &l); DecodeBody(b, &m); DecodeBody(b, &n);
  };
  std::uniform_int_distribution<int> byte(0, 255);
  for (int iter = 0; iter < 200000; ++iter) {
    std::string b = seeds[static_cast<size_t>(iter) % seeds.size()];
    int mutations = 1 + iter % 8;
    for (int k = 0; k < mutations && !b.empty(); ++k) {
      size_t pos = rng() % b.size();
      switch (rng() % 3) {
        case 0: b[pos] = static_cast<char>(byte(rng)); break;
        case 1: b.erase(pos, 1 + rng() % 4); break;
        case 2: b.insert(pos, 1 + rng() % 4, static_cast<char>(byte(rng))); break;
      }
    }
    decode_all(b);
    std::string noise(rng() % 64, '\0');
    for (auto& c : noise) c = static_cast<char>(byte(rng));
    decode_all(noise);
  }
  SUCCEED();
}

TEST(WireTest, FramesTravelOverASocketAndGarbageIsEPROTO) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ASSERT_EQ(Send(sv[0], MsgType::kKill, KillMsg{"node3", 1234, 15}), 0);
  MsgType type;
  std::string body;
  ASSERT_EQ(RecvFrame(sv[1], &type, &body), 0);
  EXPECT_EQ(type, MsgType::kKill);
  KillMsg k;
  ASSERT_EQ(DecodeBody(body, &k), 0);
  EXPECT_EQ(k.home, "node3");
  EXPECT_EQ(k.pid, 1234);
  EXPECT_EQ(k.signo, 15);

  const char garbage[] = "GET / HTTP/1.1\r\n\r\n";
  ASSERT_EQ(write(sv[0], garbage, sizeof garbage), static_cast<ssize_t>(sizeof garbage));
  EXPECT_EQ(RecvFrame(sv[1], &type, &body), EPROTO);
  close(sv[0]);
  EXPECT_EQ(RecvFrame(sv[1], &type, &body), ECONNRESET);
  close(sv[1]);
}

}  // namespace
}  // namespace kite::wire
