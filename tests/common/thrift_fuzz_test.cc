// The Thrift boundary under attack: valid requests, mutated and truncated copies of them and
// random bytes go through the generated Remote and Home processors (the code every daemon runs
// on every frame). The property: each one is decoded or rejected with an exception, the
// handler only ever sees well-formed arguments, and nothing crashes or allocates absurdly.
#include <gtest/gtest.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <random>

#include "common/rpc.h"
#include "kite/rpc/Home.h"
#include "kite/rpc/Remote.h"

namespace kite {
namespace {

using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::transport::TMemoryBuffer;

class NullRemote : public rpc::RemoteIf {
 public:
  void status(rpc::HostStatus&) override { ++calls; }
  void start_job(rpc::ExecReply& r, const rpc::ExecSpec& spec) override {
    ++calls;
    argv_total += spec.argv.size();
    r.job_id = 1;
  }
  void read_output(rpc::JobOutput&, int64_t, int64_t, int64_t, int32_t) override { ++calls; }
  int64_t write_input(int64_t, int64_t offset, const std::string&, bool) override { ++calls; return offset; }
  void signal_job(int64_t, int32_t) override { ++calls; }
  void resize(int64_t, const rpc::WinSize&) override { ++calls; }
  void release(int64_t) override { ++calls; }
  void set_owner(rpc::OwnerOverride::type) override { ++calls; }
  void checkpoint_job(rpc::CheckpointReply&, int64_t, bool, bool) override { ++calls; }
  void resume_job(int64_t) override { ++calls; }
  void restore_job(rpc::ExecReply&, const rpc::RestoreSpec&) override { ++calls; }
  void checkpoint_files(std::vector<rpc::CheckpointFile>&, const std::string&) override { ++calls; }
  void read_checkpoint_file(std::string&, const std::string&, int64_t, int32_t) override { ++calls; }
  void drop_checkpoint(const std::string&) override { ++calls; }
  int calls = 0;
  size_t argv_total = 0;
};

class NullHome : public rpc::HomeIf {
 public:
  void report_state(const rpc::HostStatus&) override { ++calls; }
  int32_t kill(int32_t, int32_t, const rpc::Credentials&) override { return ++calls; }
  void evict_jobs(std::vector<int64_t>&, const std::string&, const std::vector<int64_t>&) override { ++calls; }
  int calls = 0;
};

// Serialises one client request (send_ only) into the bytes a server would read.
template <typename Client, typename Fn>
std::string Request(Fn&& call) {
  auto buf = std::make_shared<TMemoryBuffer>();
  Client client(std::make_shared<TBinaryProtocol>(buf));
  call(client);
  return buf->getBufferAsString();
}

std::vector<std::string> Seeds() {
  rpc::ExecSpec spec;
  spec.argv = {"sh", "-c", "echo hi"};
  spec.env = {"PATH=/usr/bin"};
  spec.cwd = "/kite";
  spec.rlimits.resize(3);
  spec.creds.groups = {1, 2, 3};
  rpc::HostStatus st;
  st.host = "node2";
  st.guests.resize(2);
  return {
      Request<rpc::RemoteClient>([&](rpc::RemoteClient& c) { c.send_start_job(spec); }),
      Request<rpc::RemoteClient>([&](rpc::RemoteClient& c) { c.send_read_output(7, 0, 0, 100); }),
      Request<rpc::RemoteClient>([&](rpc::RemoteClient& c) { c.send_write_input(7, 0, std::string(100, 'x'), true); }),
      Request<rpc::RemoteClient>([&](rpc::RemoteClient& c) { c.send_signal_job(7, 15); }),
      Request<rpc::HomeClient>([&](rpc::HomeClient& c) { c.send_report_state(st); }),
      Request<rpc::HomeClient>([&](rpc::HomeClient& c) { c.send_kill(42, 9, rpc::Credentials()); }),
  };
}

// Runs one request through a processor, as the server's connection thread would.
template <typename Processor>
void Process(Processor& p, const std::string& bytes) {
  auto in = std::make_shared<TMemoryBuffer>(reinterpret_cast<uint8_t*>(const_cast<char*>(bytes.data())),
                                            static_cast<uint32_t>(bytes.size()), TMemoryBuffer::COPY, ThriftLimits());
  auto out = std::make_shared<TMemoryBuffer>();
  auto ip = std::make_shared<TBinaryProtocol>(in, kMaxFrameBytes, 1 << 20, true, true);
  auto op = std::make_shared<TBinaryProtocol>(out);
  try {
    p.process(ip, op, nullptr);
  } catch (const std::exception&) {
    // Rejected: the server drops the connection. That is the correct outcome for garbage.
  }
}

TEST(ThriftFuzzTest, ValidRequestsReachTheHandler) {
  auto remote = std::make_shared<NullRemote>();
  auto home = std::make_shared<NullHome>();
  rpc::RemoteProcessor rp(remote);
  rpc::HomeProcessor hp(home);
  auto seeds = Seeds();
  for (size_t i = 0; i < 4; ++i) Process(rp, seeds[i]);
  for (size_t i = 4; i < seeds.size(); ++i) Process(hp, seeds[i]);
  EXPECT_EQ(remote->calls, 4);
  EXPECT_EQ(remote->argv_total, 3u);
  EXPECT_EQ(home->calls, 2);
}

TEST(ThriftFuzzTest, MutatedAndRandomRequestsNeverCrash) {
  auto remote = std::make_shared<NullRemote>();
  auto home = std::make_shared<NullHome>();
  rpc::RemoteProcessor rp(remote);
  rpc::HomeProcessor hp(home);
  auto seeds = Seeds();
  std::mt19937 rng(20261125);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int iter = 0; iter < 60000; ++iter) {
    std::string b = seeds[static_cast<size_t>(iter) % seeds.size()];
    switch (iter % 4) {
      case 0:  // flip bytes
        for (int k = 0; k < 1 + iter % 5; ++k) b[rng() % b.size()] = static_cast<char>(byte(rng));
        break;
      case 1:  // truncate
        b.resize(rng() % b.size());
        break;
      case 2: {  // a huge length or count where a small one was
        size_t pos = rng() % (b.size() > 4 ? b.size() - 4 : 1);
        const char big[4] = {'\x7f', '\xff', '\xff', '\xf0'};
        b.replace(pos, 4, big, 4);
        break;
      }
      case 3:  // noise
        b.assign(rng() % 256, '\0');
        for (auto& c : b) c = static_cast<char>(byte(rng));
        break;
    }
    Process(rp, b);
    Process(hp, b);
  }
  // Some mutations leave a valid request: the handlers ran, and nothing blew up.
  EXPECT_GT(remote->calls + home->calls, 0);
  EXPECT_LT(remote->argv_total, 1000000u);
}

}  // namespace
}  // namespace kite
