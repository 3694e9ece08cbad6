// FileDaemon: wires the Store, the OpenTable, the InvalidationLog, the Thrift server and the
// housekeeping thread (expires silent clients and their locks, removes unlinked files whose
// grace ended, drops the recorded outcomes of changes of clients that are gone, logs how many
// calls of each kind it served in the last minute).
#include <thrift/TProcessor.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/rpc.h"
#include "fs/file_handler.h"
#include "fs/fsd.h"
#include "fs/invalidation_log.h"
#include "fs/lock_table.h"
#include "fs/open_table.h"
#include "fs/store.h"
#include "kite/fsrpc/FileService.h"

namespace kite::fs {
namespace {

// Counts the calls served, per method (what a workload asks of the server: where its time goes).
class CallCounter : public apache::thrift::TProcessorEventHandler {
 public:
  void* getContext(const char* fn_name, void*) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++counts_[fn_name];  // Thrift's method names are static strings: counted by address
    return nullptr;
  }
  // "N calls: open 120, lookup 80, ..." (most first) since the last Take(); "" if none.
  std::string Take() {
    std::unordered_map<const char*, uint64_t> counts;
    {
      std::lock_guard<std::mutex> lock(mu_);
      counts.swap(counts_);
    }
    std::vector<std::pair<uint64_t, std::string>> by_count;
    uint64_t total = 0;
    for (const auto& [name, n] : counts) {
      std::string_view m(name);
      if (size_t dot = m.rfind('.'); dot != std::string_view::npos) m.remove_prefix(dot + 1);
      by_count.emplace_back(n, std::string(m));
      total += n;
    }
    if (total == 0) return "";
    std::sort(by_count.begin(), by_count.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::string out = std::to_string(total) + " calls:";
    for (size_t i = 0; i < by_count.size(); ++i) {
      out += (i ? ", " : " ") + by_count[i].second + " " + std::to_string(by_count[i].first);
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::unordered_map<const char*, uint64_t> counts_;  // GUARDED_BY(mu_)
};

}  // namespace

class FileDaemonImpl {
 public:
  FileDaemonImpl(const Config& config, const FileServerOptions& options) : config_(config), options_(options) {}

  Status Init() {
    if (options_.store_dir.empty()) return InvalidArgument("no store directory given (--store DIR)");
    if (options_.port <= 0 || options_.port > 65535) return InvalidArgument("bad port " + std::to_string(options_.port));
    if (options_.client_timeout_ms < 1000)
      return InvalidArgument("client timeout of " + std::to_string(options_.client_timeout_ms) + " ms (at least 1000)");
    KITE_ASSIGN_OR_RETURN(auto tls, TlsContext::Create(config_));
    StoreOptions so;
    so.path = options_.store_dir;
    so.sync_metadata = options_.sync_metadata;
    if (options_.sync_interval_ms < 0) return InvalidArgument("negative sync interval");
    so.sync_interval_ms = options_.sync_interval_ms;
    so.unlinked_grace_ms = options_.unlinked_grace_ms;
    if (options_.grace_ms < 0) return InvalidArgument("negative grace period");
    so.orphan_reclaim_ms = options_.grace_ms;
    invalidations_ = std::make_unique<InvalidationLog>();
    // A new inode's maker holds it before anyone else can name it.
    so.made = [log = invalidations_.get()](uint64_t client, uint64_t ino) { log->Hold(client, ino); };
    KITE_ASSIGN_OR_RETURN(store_, Store::Open(so));
    if (options_.ack_timeout_ms < 0) return InvalidArgument("negative acknowledgement timeout");
    opens_ = std::make_unique<OpenTable>(store_.get(), std::chrono::milliseconds(options_.client_timeout_ms));
    locks_ = std::make_unique<LockTable>(std::chrono::milliseconds(options_.grace_ms));
    auto handler = std::make_shared<FileHandler>(store_.get(), opens_.get(), invalidations_.get(), locks_.get(),
                                                 options_.client_timeout_ms,
                                                 std::chrono::milliseconds(options_.ack_timeout_ms));
    auto processor = std::make_shared<fsrpc::FileServiceProcessor>(handler);
    calls_ = std::make_shared<CallCounter>();
    processor->setEventHandler(calls_);
    listen_ = options_.listen_address.empty() ? config_.listen_address : options_.listen_address;
    KITE_ASSIGN_OR_RETURN(server_, MakeServer(*tls, listen_, options_.port, processor));
    return OkStatus();
  }

  Status Run() {
    KLOG_INFO("kite-fsd serving {} on {}:{} (store incarnation {})", options_.store_dir, listen_, options_.port,
              store_->incarnation());
    std::thread expiry([this] { ExpireLoop(); });
    Status result;
    try {
      server_->serve();
    } catch (const std::exception& e) {
      result = Unavailable(std::string("FileService stopped: ") + e.what());
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    expiry.join();
    if (std::string c = calls_->Take(); !c.empty()) KLOG_INFO("served {} since the last count", c);
    return result;
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (invalidations_) invalidations_->Shutdown();  // long polls and acknowledgement waits end
    if (locks_) locks_->Shutdown();                  // and lock waits
    if (server_) server_->stop();
  }

 private:
  void ExpireLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    auto next_count = std::chrono::steady_clock::now() + kCountEvery;
    // A client that has not come back a client timeout after the start never resends.
    auto forget_absent_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.client_timeout_ms);
    bool absent_forgotten = false;
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(std::min(options_.client_timeout_ms / 4, 1000)));
      if (stopping_) break;
      lock.unlock();
      for (uint64_t client : opens_->ExpireIdle(OpenTable::Clock::now())) {
        invalidations_->Forget(client);
        if (size_t n = locks_->ReleaseClient(client)) KLOG_WARN("client {:016x}: released its {} lock(s)", client, n);
        ForgetRequests(client);
      }
      if (!absent_forgotten && std::chrono::steady_clock::now() >= forget_absent_at) {
        absent_forgotten = true;
        for (uint64_t client : store_->RequestClients()) {
          if (!opens_->Knows(client)) ForgetRequests(client);
        }
      }
      auto purged = store_->PurgeUnlinked(Store::WallNowNs());
      if (!purged.ok()) KLOG_WARN("{}", purged.status().message());
      if (std::chrono::steady_clock::now() >= next_count) {
        next_count += kCountEvery;
        if (std::string c = calls_->Take(); !c.empty()) KLOG_INFO("served {} in the last minute", c);
      }
      lock.lock();
    }
  }

  void ForgetRequests(uint64_t client) {
    Status s = store_->ForgetRequests(client);
    if (!s.ok()) KLOG_WARN("client {:016x}: {}", client, s.message());
  }

  static constexpr std::chrono::seconds kCountEvery{60};
  const Config config_;
  const FileServerOptions options_;
  std::shared_ptr<CallCounter> calls_;
  std::string listen_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<OpenTable> opens_;
  std::unique_ptr<InvalidationLog> invalidations_;
  std::unique_ptr<LockTable> locks_;
  std::shared_ptr<apache::thrift::server::TServer> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
};

FileDaemon::FileDaemon(std::unique_ptr<FileDaemonImpl> impl) : impl_(std::move(impl)) {}
FileDaemon::~FileDaemon() = default;

StatusOr<std::unique_ptr<FileDaemon>> FileDaemon::Create(const Config& config, const FileServerOptions& options) {
  auto impl = std::make_unique<FileDaemonImpl>(config, options);
  KITE_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<FileDaemon>(new FileDaemon(std::move(impl)));
}

Status FileDaemon::Run() { return impl_->Run(); }
void FileDaemon::Stop() { impl_->Stop(); }

}  // namespace kite::fs
