// CheckpointTransfer: the serving side hands out only files of its own checkpoint directory;
// the fetching side, talking real mutual TLS to a peer that lies (names that climb out of the
// directory, sizes that do not match, a list that is not the checkpoint's), refuses it and
// leaves nothing behind; a dead peer is a clear error; the start-up sweep removes leftover
// files without following symlinks; an export lands on the shared tree, synced, owned by the
// job's user; a streaming fetch copies an image's header and metadata and leaves a hole and a
// FIFO for its pages, which the PageStream then delivers in order (or stops, clearly, when its
// reader never comes or goes away). Moves between real remoteds are tested in
// tests/integration/migrate_test.cc.
#include "remoted/checkpoint_transfer.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "common/certs.h"
#include "kite/rpc/Remote.h"
#include "remoted/job_checkpoint.h"
#include "syscall-shim/image/crc32c.h"
#include "syscall-shim/image/image_format.h"
#include "syscall-shim/tree/job_manifest.h"
#include "tests/support/loopback.h"

namespace kite {
namespace {

namespace fs = std::filesystem;

constexpr int kUid = 65534;

// A peer that answers checkpoint_files and read_checkpoint_file as told: from `contents` (by
// file name, honestly by offset) when it has the file, else `chunk` whatever was asked.
class LyingRemote : public rpc::RemoteNull {
 public:
  void checkpoint_files(std::vector<rpc::CheckpointFile>& out, const std::string&) override { out = files; }
  void read_checkpoint_file(std::string& out, const std::string& path, int64_t offset, int32_t max_bytes) override {
    if (auto it = contents.find(path.substr(path.rfind('/') + 1)); it != contents.end()) {
      out = static_cast<size_t>(offset) >= it->second.size() ? std::string()
                                                             : it->second.substr(static_cast<size_t>(offset), max_bytes);
      return;
    }
    out = chunk.empty() ? std::string() : chunk.substr(0, static_cast<size_t>(extra_bytes ? max_bytes + 1 : max_bytes));
  }
  std::vector<rpc::CheckpointFile> files;
  std::map<std::string, std::string> contents;
  std::string chunk;
  bool extra_bytes = false;
};

// The bytes of an image as far as a copy looks at them: a valid header whose PAGE_DATA
// section holds `pages`, and `meta` after it (kite-restore checks the rest).
std::string FakeImage(const std::string& pages, const std::string& meta) {
  kite_img_header h{};
  std::memcpy(h.magic, KITE_IMG_MAGIC, sizeof h.magic);
  h.version = KITE_IMG_VERSION;
  h.header_size = sizeof h;
  h.section_entry_size = sizeof(kite_img_section);
  h.file_size = KITE_IMG_HEADER_RESERVED + pages.size() + meta.size();
  h.sections[0].type = KITE_SEC_PAGE_DATA;
  h.sections[0].entry_size = 1;
  h.sections[0].offset = KITE_IMG_HEADER_RESERVED;
  h.sections[0].size = pages.size();
  h.sections[0].count = pages.size();
  h.header_crc = kite_crc32c(0, &h, sizeof h);
  std::string img(KITE_IMG_HEADER_RESERVED, '\0');
  std::memcpy(img.data(), &h, sizeof h);
  return img + pages + meta;
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
  ASSERT_EQ(::chown(path.c_str(), kUid, kUid), 0) << path;
}

class CheckpointTransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "makes files owned by another user: run as root";
    signal(SIGPIPE, SIG_IGN);
    dir_ = fs::temp_directory_path() / ("kite-xfer-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    ClusterInitOptions o;
    o.out_dir = dir_ / "pki";
    o.hosts = {{"node1", "127.0.0.1"}, {"node2", "127.0.0.1"}};
    fs::create_directories(dir_);
    Status pki = InitCluster(o);
    ASSERT_TRUE(pki.ok()) << pki.ToString();
    port_ = 20000 + (::getpid() + 7) % 20000;
    config_.host_name = "node1";
    config_.hosts = {{"node1", "127.0.0.1"}, {"node2", "127.0.0.1"}};
    config_.remote_port = port_;
    config_.checkpoint_dir = (dir_ / "ckpt").string();
    config_.shared_paths = {(dir_ / "shared").string()};
    fs::create_directories(dir_ / "shared");
    auto tls = TlsContext::Create(dir_ / "pki/ca.pem", dir_ / "pki/node1/host.pem", dir_ / "pki/node1/host.key");
    ASSERT_TRUE(tls.ok()) << tls.status().ToString();
    tls_ = *tls;
    transfer_ = std::make_unique<CheckpointTransfer>(config_, tls_);
    auto made = JobCheckpoint::PrepareDir(config_, "node2", kUid, kUid);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    ckdir_ = *made;
  }
  void TearDown() override {
    if (server_) {
      server_->stop();
      thread_.join();
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // A checkpoint of one process: job-1.job naming job-1.7.img, and a pipe file.
  std::string MakeCheckpoint() {
    JobManifest m;
    m.streams[0] = {JobManifest::StreamKind::kNone, 0};
    m.streams[1] = {JobManifest::StreamKind::kNone, 0};
    m.streams[2] = {JobManifest::StreamKind::kNone, 0};
    m.procs.push_back({7, 0, 7, false, "job-1.7.img", 0});
    m.pipes.push_back({99, "job-1.pipe-99"});
    WriteFile(ckdir_ + "/job-1.7.img", std::string(5 << 20, 'i'));  // more than one chunk
    WriteFile(ckdir_ + "/job-1.pipe-99", "unread");
    WriteFile(ckdir_ + "/job-1.job", m.Serialize());
    return ckdir_ + "/job-1.job";
  }

  void StartPeer() {
    peer_ = std::make_shared<LyingRemote>();
    auto tls = TlsContext::Create(dir_ / "pki/ca.pem", dir_ / "pki/node2/host.pem", dir_ / "pki/node2/host.key");
    ASSERT_TRUE(tls.ok());
    peer_tls_ = *tls;
    auto server = MakeServer(*peer_tls_, "127.0.0.1", port_, std::make_shared<rpc::RemoteProcessor>(peer_));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = *server;
    thread_ = std::thread([this] { server_->serve(); });
    ASSERT_TRUE(test_support::WaitUntilListening(port_)) << "the peer never listened";
  }

  rpc::RestoreSpec SpecFor(const std::string& manifest) const {
    rpc::RestoreSpec s;
    s.image_path = manifest;
    s.image_host = "node2";
    s.creds.uid = kUid;
    s.creds.gid = kUid;
    return s;
  }

  size_t EntriesIn(const std::string& dir) const {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir)) n += e.is_directory() ? 0 : 1;
    return n;
  }

  // A one-process checkpoint on "node2" that the peer serves honestly: its image holds `pages`.
  std::string ServeStreamableCheckpoint(const std::string& pages, const std::string& meta) {
    JobManifest m;
    for (auto& st : m.streams) st = {JobManifest::StreamKind::kNone, 0};
    m.procs.push_back({7, 0, 7, false, "job-8.7.img", 0});
    peer_->contents = {{"job-8.job", m.Serialize()}, {"job-8.7.img", FakeImage(pages, meta)}};
    peer_->files.clear();
    for (const char* name : {"job-8.job", "job-8.7.img"}) {
      rpc::CheckpointFile f;
      f.name = name;
      f.size = static_cast<int64_t>(peer_->contents[name].size());
      peer_->files.push_back(f);
    }
    return ckdir_ + "/job-8.job";
  }

  size_t FilesIn(const std::string& dir) const {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
    return n;
  }

  fs::path dir_;
  int port_ = 0;
  Config config_;
  std::shared_ptr<TlsContext> tls_, peer_tls_;
  std::unique_ptr<CheckpointTransfer> transfer_;
  std::string ckdir_;
  std::shared_ptr<LyingRemote> peer_;
  std::shared_ptr<apache::thrift::server::TServer> server_;
  std::thread thread_;
};

TEST_F(CheckpointTransferTest, ServesItsCheckpointsAndNothingElse) {
  const std::string manifest = MakeCheckpoint();
  auto files = transfer_->List(manifest);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  ASSERT_EQ(files->size(), 3u);
  EXPECT_EQ((*files)[0].name, "job-1.job");
  EXPECT_EQ((*files)[1].name, "job-1.7.img");
  EXPECT_EQ((*files)[1].size, 5 << 20);
  auto chunk = transfer_->Read(ckdir_ + "/job-1.7.img", 0, 64 << 20);
  ASSERT_TRUE(chunk.ok());
  EXPECT_EQ(chunk->size(), static_cast<size_t>(CheckpointTransfer::kMaxChunkBytes)) << "capped at one chunk";
  auto tail = transfer_->Read(ckdir_ + "/job-1.7.img", (5 << 20) - 3, 100);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(*tail, "iii");
  auto past = transfer_->Read(ckdir_ + "/job-1.7.img", 6 << 20, 100);
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(*past, "");

  const std::string root = config_.checkpoint_dir;
  fs::create_symlink("/etc/passwd", ckdir_ + "/job-2.7.img");
  for (const std::string& bad : {std::string("/etc/passwd"), root + "/node2/65534/../../../etc/passwd",
                                 root + "/node2/65534/.hidden", root + "/node2//job-1.job", root + "/node2",
                                 root + "/node2/abc/job-1.job", root + "/node2/65534/x/job-1.job"}) {
    EXPECT_EQ(transfer_->Read(bad, 0, 10).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(transfer_->Read(ckdir_ + "/job-2.7.img", 0, 10).ok()) << "a symlink is never followed";
  EXPECT_EQ(transfer_->Read(ckdir_ + "/job-1.7.img", -1, 10).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(transfer_->List(ckdir_ + "/job-1.7.img").status().code(), StatusCode::kInvalidArgument);
  ::unlink((ckdir_ + "/job-1.pipe-99").c_str());
  EXPECT_EQ(transfer_->List(manifest).status().code(), StatusCode::kNotFound) << "a file it names is missing";

  ASSERT_TRUE(transfer_->Drop(manifest).ok());
  EXPECT_FALSE(fs::exists(manifest));
  EXPECT_FALSE(fs::exists(ckdir_ + "/job-1.7.img"));
  EXPECT_TRUE(transfer_->Drop(manifest).ok()) << "already gone is no error";
  EXPECT_FALSE(transfer_->Drop("/etc/passwd").ok());
}

TEST_F(CheckpointTransferTest, AFetchRefusesWhatALyingPeerSendsAndLeavesNothing) {
  StartPeer();
  const std::string manifest = ckdir_ + "/job-5.job";
  struct Lie {
    std::vector<rpc::CheckpointFile> files;
    std::string chunk;
    bool extra;
    const char* why;
  };
  auto file = [](std::string name, int64_t size) {
    rpc::CheckpointFile f;
    f.name = std::move(name);
    f.size = size;
    return f;
  };
  const std::vector<Lie> lies = {
      {{}, "x", false, "no files"},
      {{file("job-6.job", 1)}, "x", false, "another checkpoint's manifest"},
      {{file("job-5.job", 1), file("../../../../etc/cron.d/x", 1)}, "x", false, "a name that climbs"},
      {{file("job-5.job", 1), file(".bashrc", 1)}, "x", false, "a hidden name"},
      {{file("job-5.job", -5)}, "x", false, "a negative size"},
      {{file("job-5.job", 10)}, "", false, "fewer bytes than it said"},
      {{file("job-5.job", 4)}, "abcdefgh", true, "more bytes than asked for"},
  };
  for (const Lie& lie : lies) {
    peer_->files = lie.files;
    peer_->chunk = lie.chunk;
    peer_->extra_bytes = lie.extra;
    Status s = transfer_->Fetch(SpecFor(manifest));
    EXPECT_FALSE(s.ok()) << lie.why;
    EXPECT_NE(s.message().find("from node2"), std::string::npos) << s.ToString();
    EXPECT_EQ(FilesIn(ckdir_), 0u) << lie.why << ": a refused fetch leaves nothing";
  }
  // A file of that name here already: never overwritten.
  WriteFile(ckdir_ + "/job-5.job", "mine");
  peer_->files = {file("job-5.job", 4)};
  peer_->chunk = "evil";
  peer_->extra_bytes = false;
  EXPECT_FALSE(transfer_->Fetch(SpecFor(manifest)).ok());
  std::ifstream in(ckdir_ + "/job-5.job");
  std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, "mine");
  // Another user's directory is not this job's.
  rpc::RestoreSpec other = SpecFor(manifest);
  other.creds.uid = 1234;
  EXPECT_EQ(transfer_->Fetch(other).code(), StatusCode::kPermissionDenied);
}

TEST_F(CheckpointTransferTest, AFetchFromADeadOrUnknownHostSaysSo) {
  Status dead = transfer_->Fetch(SpecFor(ckdir_ + "/job-1.job"));  // nobody listens on the port
  EXPECT_EQ(dead.code(), StatusCode::kUnavailable) << dead.ToString();
  EXPECT_NE(dead.message().find("node2"), std::string::npos) << dead.ToString();
  rpc::RestoreSpec unknown = SpecFor(ckdir_ + "/job-1.job");
  unknown.image_host = "node9";
  EXPECT_EQ(transfer_->Fetch(unknown).code(), StatusCode::kNotFound);
  rpc::RestoreSpec here = SpecFor(ckdir_ + "/job-1.job");
  here.image_host = "node1";
  EXPECT_FALSE(transfer_->Fetches(here));
  EXPECT_TRUE(transfer_->Fetch(here).ok()) << "the checkpoint is here already: nothing to copy";
}

TEST_F(CheckpointTransferTest, AStreamingFetchLeavesThePagesToTheStreamAndItDeliversThemInOrder) {
  StartPeer();
  std::string pages((5 << 20) + 3 * 4096, '\0');  // more than one chunk
  for (size_t i = 0; i < pages.size(); ++i) pages[i] = static_cast<char>((i * 7 + i / 4096) & 0xff);
  const std::string meta = "metadata sections";
  const std::string manifest = ServeStreamableCheckpoint(pages, meta);
  auto stream = transfer_->FetchStreaming(SpecFor(manifest));
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  ASSERT_NE(*stream, nullptr);

  // The image is here in full size, its header and metadata copied, a hole where the pages go.
  const std::string image = ckdir_ + "/job-8.7.img", fifo = image + ".pages";
  std::ifstream in(image, std::ios::binary);
  std::string local((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string& want = peer_->contents["job-8.7.img"];
  ASSERT_EQ(local.size(), want.size());
  EXPECT_EQ(local.substr(0, KITE_IMG_HEADER_RESERVED), want.substr(0, KITE_IMG_HEADER_RESERVED));
  EXPECT_EQ(local.substr(KITE_IMG_HEADER_RESERVED + pages.size()), meta);
  EXPECT_EQ(local.substr(KITE_IMG_HEADER_RESERVED, pages.size()), std::string(pages.size(), '\0'));
  struct stat st;
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_uid, static_cast<uid_t>(kUid)) << "the restore reads it as the job's user";
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // A reader as kite-restore opens it: before the writer, non-blocking.
  int rd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(rd, 0);
  (*stream)->Start();
  std::string got;
  char buf[65536];
  while (got.size() < pages.size()) {
    ssize_t n = ::read(rd, buf, sizeof buf);
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
      continue;
    }
    pollfd p{rd, POLLIN, 0};
    ASSERT_GT(::poll(&p, 1, 10000), 0) << "the stream stalled at " << got.size();
  }
  ::close(rd);
  EXPECT_TRUE(got == pages) << "the page data, byte for byte, in file order";
  Status done = (*stream)->Finish();
  EXPECT_TRUE(done.ok()) << done.ToString();
  EXPECT_FALSE(fs::exists(fifo)) << "Finish removes the FIFOs";
}

TEST_F(CheckpointTransferTest, AStreamWithoutAReaderEndsWhenTheRestoreDoesAndABadImageHeaderIsRefused) {
  StartPeer();
  const std::string manifest = ServeStreamableCheckpoint(std::string(8192, 'p'), "m");
  auto stream = transfer_->FetchStreaming(SpecFor(manifest));
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  (*stream)->Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Status none = (*stream)->Finish();  // kite-restore failed before it opened its FIFO
  EXPECT_EQ(none.code(), StatusCode::kAborted) << none.ToString();
  EXPECT_NE(none.message().find("from node2"), std::string::npos) << none.ToString();
  stream->reset();
  RemoveCheckpoint(manifest);
  EXPECT_EQ(EntriesIn(ckdir_), 0u);

  // A reader that goes away mid-stream: the copy stops with a clear error, never hangs.
  ServeStreamableCheckpoint(std::string(20 << 20, 'q'), "m");  // more than the pipe holds
  stream = transfer_->FetchStreaming(SpecFor(manifest));
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  int rd = ::open((ckdir_ + "/job-8.7.img.pages").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(rd, 0);
  (*stream)->Start();
  char buf[4096];
  pollfd p{rd, POLLIN, 0};
  ASSERT_GT(::poll(&p, 1, 10000), 0);
  ASSERT_GT(::read(rd, buf, sizeof buf), 0);
  ::close(rd);
  Status gone = (*stream)->Finish();
  EXPECT_EQ(gone.code(), StatusCode::kAborted) << gone.ToString();
  stream->reset();
  RemoveCheckpoint(manifest);

  // Headers that lie: refused, and nothing is left behind.
  std::string img = FakeImage(std::string(4096, 'p'), "m");
  auto lie = [&](std::string bytes, const char* why) {
    peer_->contents["job-8.7.img"] = bytes;
    peer_->files[1].size = static_cast<int64_t>(bytes.size());
    auto s = transfer_->FetchStreaming(SpecFor(manifest));
    EXPECT_FALSE(s.ok()) << why;
    EXPECT_NE(s.status().message().find("job-8.7.img"), std::string::npos) << s.status().ToString();
    EXPECT_EQ(EntriesIn(ckdir_), 0u) << why << ": a refused fetch leaves nothing";
  };
  std::string bad_crc = img;
  bad_crc[40] ^= 1;
  lie(bad_crc, "a header whose checksum does not match");
  lie(img + "x", "a file longer than its header says");
  lie(std::string(100, 'K'), "no header at all");
  kite_img_header h;
  std::memcpy(&h, img.data(), sizeof h);
  h.sections[0].size = 1 << 30;
  h.header_crc = 0;
  h.header_crc = kite_crc32c(0, &h, sizeof h);
  std::string outside = img;
  std::memcpy(outside.data(), &h, sizeof h);
  lie(outside, "page data past the end of the file");
}

TEST_F(CheckpointTransferTest, TheSweepRemovesLeftoversAndFollowsNoSymlink) {
  MakeCheckpoint();
  const std::string outside = (dir_ / "outside").string();
  WriteFile(outside, "keep me");
  fs::create_symlink(outside, ckdir_ + "/job-3.7.img");
  fs::create_directories(config_.checkpoint_dir + "/node3");
  fs::create_directory_symlink(dir_ / "shared", config_.checkpoint_dir + "/node3/65534");
  WriteFile((dir_ / "shared/precious").string(), "keep me too");
  EXPECT_EQ(transfer_->Sweep(), 4);  // the three files and the symlink itself
  EXPECT_EQ(FilesIn(ckdir_), 0u);
  EXPECT_TRUE(fs::exists(outside));
  EXPECT_TRUE(fs::exists(dir_ / "shared/precious"));
  EXPECT_TRUE(fs::is_directory(ckdir_)) << "directories stay";
}

TEST_F(CheckpointTransferTest, AnExportLandsOnTheSharedTreeOwnedByTheUser) {
  config_.host_name = "node2";  // exporting its own job's checkpoint
  CheckpointTransfer node2(config_, tls_);
  const std::string manifest = MakeCheckpoint();
  rpc::Credentials creds;
  creds.uid = kUid;
  creds.gid = kUid;
  auto exported = node2.Export(manifest, creds);
  ASSERT_TRUE(exported.ok()) << exported.status().ToString();
  const std::string dir = config_.shared_paths[0] + "/.kite-ckpt/node2/65534";
  EXPECT_EQ(*exported, dir + "/job-1.job");
  for (const char* name : {"job-1.job", "job-1.7.img", "job-1.pipe-99"}) {
    struct stat st;
    ASSERT_EQ(::stat((dir + "/" + name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_uid, static_cast<uid_t>(kUid));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  EXPECT_EQ(fs::file_size(dir + "/job-1.7.img"), 5u << 20);
  EXPECT_EQ(FilesIn(ckdir_), 0u) << "the local files are gone once exported";
  config_.shared_paths = {(dir_ / "nowhere").string()};
  EXPECT_EQ(node2.Export(MakeCheckpoint(), creds).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace kite
