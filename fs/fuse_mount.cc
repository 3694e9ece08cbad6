// FuseMount: start-up checks, the session, the keepalive thread and the session loop.
#include "fs/fuse_mount.h"

#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/rpc.h"
#include "fs/fuse_ops.h"
#include "fs/server_pool.h"
#include "kite/fsrpc/kitefs_constants.h"

namespace kite::fs {

class FuseMountImpl {
 public:
  FuseMountImpl(const MountOptions& options) : options_(options) {}

  ~FuseMountImpl() {
    StopKeepalive();
    if (ops_) ops_->Shutdown();
    if (session_) {
      if (mounted_) fuse_session_unmount(session_);
      fuse_session_destroy(session_);
    }
  }

  Status Init(const Config& config) {
    if (::access("/dev/fuse", R_OK | W_OK) != 0) {
      int err = errno;
      return FailedPrecondition(std::string("no usable /dev/fuse (") + std::strerror(err) +
                                "): load the fuse module (modprobe fuse), or give the container the device");
    }
    struct stat st;
    if (::stat(options_.mountpoint.c_str(), &st) != 0) {
      int err = errno;
      Status s = PosixError("mount point " + options_.mountpoint, err);
      return err == ENOTCONN ? FailedPrecondition(s.message() + " (a dead kitefs is still mounted there: umount -l it)")
                             : s;
    }
    if (!S_ISDIR(st.st_mode)) return FailedPrecondition("mount point " + options_.mountpoint + " is not a directory");
    if (options_.server_host.empty()) return InvalidArgument("no server given (--server HOST[:PORT])");

    KITE_ASSIGN_OR_RETURN(auto tls, TlsContext::Create(config));
    ServerPool::Options po;
    po.host = options_.server_host;
    po.port = options_.server_port;
    po.retry_for_ms = options_.connect_wait_ms;
    // The first call waits connect_wait_ms for the server; later ones retry_for_ms.
    {
      ServerPool probe(tls, po);
      KITE_RETURN_IF_ERROR(Hello(probe));
    }
    po.retry_for_ms = options_.retry_for_ms;
    pool_ = std::make_unique<ServerPool>(tls, po);

    ops_ = std::make_unique<FuseOps>(pool_.get(), client_id_,
                                     FuseOps::Options{options_.entry_timeout_s, options_.attr_timeout_s});
    std::string fsname = "kitefs@" + options_.server_host + ":" + std::to_string(options_.server_port);
    std::vector<std::string> argv = {"kitefs", "-o",
                                     "allow_other,default_permissions,subtype=kitefs,fsname=" + fsname};
    if (options_.debug) argv.push_back("-d");
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(args.size()), args.data());
    session_ = fuse_session_new(&fargs, FuseOps::Table(), sizeof(fuse_lowlevel_ops), ops_.get());
    if (!session_) return Internal("fuse_session_new failed (see the message above)");
    ops_->set_session(session_);
    if (fuse_session_mount(session_, options_.mountpoint.c_str()) != 0)
      return Internal("mount of kitefs on " + options_.mountpoint + " failed (see the message above)");
    mounted_ = true;
    KLOG_INFO("kitefs of {} mounted on {} (client {:016x})", pool_->peer(), options_.mountpoint, client_id_);
    return OkStatus();
  }

  Status Daemonize() {
    if (fuse_daemonize(0) != 0) return Internal("fuse_daemonize failed");
    return OkStatus();
  }

  Status Run() {
    if (fuse_set_signal_handlers(session_) != 0) return Internal("fuse_set_signal_handlers failed");
    keepalive_ = std::thread([this] { KeepaliveLoop(); });
    poller_ = std::thread([this] { PollLoop(); });
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(options_.max_threads));
    fuse_loop_cfg_set_idle_threads(cfg, static_cast<unsigned>(std::max(1, options_.max_threads / 2)));
    int rc = fuse_session_loop_mt(session_, cfg);
    fuse_loop_cfg_destroy(cfg);
    fuse_remove_signal_handlers(session_);
    StopKeepalive();
    ops_->Shutdown();  // lock requests still waiting: EINTR, while the session exists
    fuse_session_unmount(session_);
    mounted_ = false;
    KLOG_INFO("kitefs on {} unmounted", options_.mountpoint);
    if (rc < 0) return Internal(std::string("FUSE session loop: ") + std::strerror(-rc));
    return OkStatus();
  }

 private:
  Status Hello(ServerPool& pool) {
    if (getrandom(&client_id_, sizeof client_id_, 0) != sizeof client_id_) client_id_ = static_cast<uint64_t>(getpid());
    std::string name = options_.client_name;
    if (name.empty()) {
      char host[256] = {};
      gethostname(host, sizeof host - 1);
      name = std::string(host) + ":" + options_.mountpoint;
    }
    client_name_ = name;
    fsrpc::ServerInfo info;
    Status s = pool.Call("hello", [&](ServerPool::Client& c) {
      c.hello(info, static_cast<int64_t>(client_id_), name, fsrpc::g_kitefs_constants.FS_PROTOCOL_VERSION);
    });
    if (!s.ok()) return Status(s.code(), "cannot reach " + pool.peer() + ": " + s.message());
    if (info.root_ino != 1) return FailedPrecondition(pool.peer() + " has root inode " + std::to_string(info.root_ino));
    keepalive_ms_ = std::max(500, info.client_timeout_ms / 3);
    invalidation_seq_ = info.invalidation_seq;
    incarnation_ = info.incarnation;
    return OkStatus();
  }

  // Applies the server's invalidations as they come; the next poll acknowledges them.
  void PollLoop() {
    int64_t seq = invalidation_seq_, incarnation = incarnation_;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
      }
      fsrpc::Invalidations inv;
      Status s = pool_->Call("wait_invalidations", [&](ServerPool::Client& c) {
        c.wait_invalidations(inv, static_cast<int64_t>(client_id_), seq, kPollWaitMs);
      });
      if (!s.ok()) {
        KLOG_WARN("{}", s.message());
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_; });
        continue;
      }
      if (inv.incarnation != incarnation || inv.overflow) {
        // The server restarted, or this client fell too far behind: what changed meanwhile is
        // unknown, so nothing cached is trusted.
        KLOG_INFO("invalidations {}: dropping cached attributes and data",
                  inv.overflow ? "were lost" : "restart with a new server");
        ops_->InvalidateAll();
        if (inv.incarnation != incarnation) {
          // Within the server's grace period: take back open files and locks.
          Rehello();
          ops_->ReclaimAfterRestart(inv.incarnation);
        }
        incarnation = inv.incarnation;
      } else {
        ops_->ApplyInvalidations(inv.items);
        ops_->CallbacksLive();  // everything the server said until now is applied
      }
      ops_->ReleaseIdleReads();
      seq = inv.next_seq;
    }
  }

  // Registers again with a restarted server, under our name (for its logs).
  void Rehello() {
    fsrpc::ServerInfo info;
    Status s = pool_->Call("hello", [&](ServerPool::Client& c) {
      c.hello(info, static_cast<int64_t>(client_id_), client_name_, fsrpc::g_kitefs_constants.FS_PROTOCOL_VERSION);
    });
    if (!s.ok()) KLOG_WARN("{}", s.message());
  }

  void KeepaliveLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(keepalive_ms_));
      if (stopping_) break;
      lock.unlock();
      Status s = pool_->Call("keepalive", [&](ServerPool::Client& c) { c.keepalive(static_cast<int64_t>(client_id_)); });
      if (!s.ok()) KLOG_WARN("{}", s.message());
      lock.lock();
    }
  }

  void StopKeepalive() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (pool_) pool_->Shutdown();  // no more waiting for a server that is gone
    if (keepalive_.joinable()) keepalive_.join();
    if (poller_.joinable()) poller_.join();
  }

  const MountOptions options_;
  uint64_t client_id_ = 0;
  std::string client_name_;
  static constexpr int kPollWaitMs = 1000;  // a long poll's length: how long unmount may wait
  int keepalive_ms_ = 10000;
  int64_t invalidation_seq_ = 0;
  int64_t incarnation_ = 0;
  std::unique_ptr<ServerPool> pool_;
  std::unique_ptr<FuseOps> ops_;
  fuse_session* session_ = nullptr;
  bool mounted_ = false;
  std::thread keepalive_;
  std::thread poller_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
};

FuseMount::FuseMount(std::unique_ptr<FuseMountImpl> impl) : impl_(std::move(impl)) {}
FuseMount::~FuseMount() = default;

StatusOr<std::unique_ptr<FuseMount>> FuseMount::Create(const Config& config, const MountOptions& options) {
  auto impl = std::make_unique<FuseMountImpl>(options);
  KITE_RETURN_IF_ERROR(impl->Init(config));
  return std::unique_ptr<FuseMount>(new FuseMount(std::move(impl)));
}

Status FuseMount::Daemonize() { return impl_->Daemonize(); }
Status FuseMount::Run() { return impl_->Run(); }

}  // namespace kite::fs
