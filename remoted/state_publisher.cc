// StatePublisher: the once-a-second tick and the per-peer senders.
#include "remoted/state_publisher.h"

#include <fstream>
#include <sstream>

#include "common/log.h"
#include "kite/rpc/Home.h"
#include "kite/rpc/kite_constants.h"

namespace kite {
namespace {

double ReadLoad1() {
  std::ifstream in("/proc/loadavg");
  double load = 0;
  in >> load;
  return load;
}

int64_t ReadMemAvailableKb() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream fields(line.substr(13));
      int64_t kb = 0;
      fields >> kb;
      return kb;
    }
  }
  return 0;
}

int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

StatePublisher::StatePublisher(const Config& config, std::shared_ptr<TlsContext> tls, JobManager* jobs,
                               OwnerMonitor* owner, const Evictor* evictor)
    : config_(config), tls_(std::move(tls)), jobs_(jobs), owner_(owner), evictor_(evictor) {}

StatePublisher::~StatePublisher() { Stop(); }

rpc::HostStatus StatePublisher::BuildStatus() const {
  rpc::HostStatus s;
  s.host = config_.host_name;
  s.state = owner_->state();
  if (evictor_ != nullptr) {
    if (s.state == rpc::HostState::OWNER_ACTIVE && evictor_->evicting()) s.state = rpc::HostState::DRAINING;
    s.last_clear_ms = evictor_->last_clear_ms();
  }
  s.override_mode = owner_->override_mode();
  s.load1 = ReadLoad1();
  s.slots = jobs_->slots();
  s.free_slots = jobs_->free_slots();
  s.free_memory_kb = ReadMemAvailableKb();
  s.owner_idle_ms = owner_->owner_idle_ms();
  s.guests = jobs_->Guests();
  s.protocol_version = rpc::g_kite_constants.PROTOCOL_VERSION;
  s.sent_unix_ms = WallNowMs();
  return s;
}

void StatePublisher::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_) return;
  started_ = true;
  tick_thread_ = std::thread([this] { TickLoop(); });
  if (!tls_) return;
  for (const auto& [host, address] : config_.hosts) {
    auto peer = std::make_unique<Peer>();
    peer->host = host;
    peer->address = address;
    Peer* p = peer.get();
    p->thread = std::thread([this, p] { PeerLoop(p); });
    peers_.push_back(std::move(peer));
  }
}

void StatePublisher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (tick_thread_.joinable()) tick_thread_.join();
  for (auto& p : peers_) {
    if (p->thread.joinable()) p->thread.join();
  }
}

void StatePublisher::TickLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    owner_->Update(jobs_->SampleGuests());
    rpc::HostStatus status = BuildStatus();
    lock.lock();
    latest_ = std::move(status);
    ++generation_;
    cv_.notify_all();
    cv_.wait_for(lock, kPeriod, [&] { return stop_; });
  }
}

void StatePublisher::PeerLoop(Peer* peer) {
  using Clock = std::chrono::steady_clock;
  std::unique_ptr<Conn<rpc::HomeClient>> conn;
  uint64_t seen = 0;
  std::chrono::milliseconds backoff{1000};
  Clock::time_point next_try{};
  bool reported_failure = false;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    rpc::HostStatus status = latest_;
    lock.unlock();

    Status s;
    if (!conn && Clock::now() < next_try) {
      lock.lock();
      continue;  // backing off: this report is skipped for this peer
    }
    if (!conn) {
      auto c = Connect<rpc::HomeClient>(*tls_, peer->address, config_.home_port, kConnectTimeoutMs, kSendTimeoutMs);
      if (c.ok()) conn = std::move(c).value();
      else s = c.status();
    }
    if (conn) s = Call("report state to " + peer->host, [&] { conn->client->report_state(status); });
    if (s.ok()) {
      if (reported_failure) KLOG_INFO("reporting state to {} ({}) works again", peer->host, peer->address);
      reported_failure = false;
      backoff = std::chrono::milliseconds(1000);
    } else {
      conn.reset();
      if (!reported_failure) KLOG_WARN("cannot report state to {}: {}; retrying with backoff", peer->host, s.ToString());
      else KLOG_DEBUG("report state to {}: {}", peer->host, s.ToString());
      reported_failure = true;
      next_try = Clock::now() + backoff;
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
    }
    lock.lock();
  }
}

}  // namespace kite
