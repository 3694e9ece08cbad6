// Evictor: the eviction loop and the calls to the homes.
#include "remoted/evictor.h"

#include <algorithm>
#include <set>

#include "common/log.h"
#include "kite/rpc/Home.h"

namespace kite {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kConnectTimeoutMs = 1000;
constexpr int kCallTimeoutMs = 2000;

}  // namespace

Evictor::Evictor(const Config& config, std::shared_ptr<TlsContext> tls, JobManager* jobs, const OwnerMonitor* owner)
    : config_(config), tls_(std::move(tls)), jobs_(jobs), owner_(owner) {}

Evictor::~Evictor() { Stop(); }

void Evictor::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { Loop(); });
}

void Evictor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Evictor::evicting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return evicting_;
}

int64_t Evictor::last_clear_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_clear_ms_;
}

void Evictor::Loop() {
  Clock::time_point started{};
  size_t initial_guests = 0;
  bool owner_was_back = false;
  std::map<int64_t, int> disowned;  // job id -> consecutive answers of its home not knowing it
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, kPoll, [&] { return stop_; });
    if (stop_) break;
    const bool was_evicting = evicting_;  // only this thread writes it
    lock.unlock();
    const bool owner_back = owner_->state() != rpc::HostState::IDLE;
    // The guest list (JobManager's lock, a copy of every command line) only when it matters.
    std::vector<rpc::GuestJob> guests;
    if (owner_back || was_evicting) guests = jobs_->Guests();
    const auto now = Clock::now();
    lock.lock();
    if (owner_back && !owner_was_back && guests.empty() && !evicting_) {
      // Said all the same: whoever waits for the host to be clear learns that it is.
      KLOG_INFO("the owner is back: no guest job to send away, host cleared of 0 guest job(s) in 0 ms");
    }
    owner_was_back = owner_back;
    if (owner_back && !guests.empty() && !evicting_) {
      evicting_ = true;
      started = now;
      initial_guests = guests.size();
      KLOG_INFO("the owner is back: sending {} guest job(s) away", guests.size());
    } else if (evicting_ && guests.empty()) {
      evicting_ = false;
      last_clear_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(now - started).count();
      KLOG_INFO("host cleared of {} guest job(s) in {} ms", initial_guests, last_clear_ms_);
    } else if (evicting_ && !owner_back) {
      evicting_ = false;
      KLOG_INFO("the owner is away again: eviction stopped with {} guest job(s) left", guests.size());
    }
    if (!evicting_) {
      disowned.clear();
      continue;
    }
    lock.unlock();
    std::map<std::string, std::vector<int64_t>> by_home;
    for (const auto& g : guests) by_home[g.home_host].push_back(g.job_id);
    for (auto& [home, ids] : by_home) {
      HomeLink& link = links_[home];
      if (now - link.last_asked < kRepeat) continue;
      link.last_asked = now;
      std::vector<int64_t> known;
      bool reached = false;
      if (tls_) {
        auto addr = config_.AddressOf(home);
        if (!addr.ok()) {
          KLOG_WARN("guest job(s) of unknown home {}: {}", home, addr.status().ToString());
        } else {
          if (!link.conn) {
            auto c = Connect<rpc::HomeClient>(*tls_, *addr, config_.home_port, kConnectTimeoutMs, kCallTimeoutMs);
            if (c.ok()) link.conn = std::move(c).value();
          }
          Status s = link.conn ? Call("evict_jobs at " + home, [&] { link.conn->client->evict_jobs(known, config_.host_name, ids); })
                               : Unavailable("cannot connect to " + home);
          if (s.ok()) {
            reached = true;
            link.unreachable_since = {};
          } else {
            link.conn.reset();
            KLOG_WARN("asking {} to move its {} job(s) away: {}", home, ids.size(), s.ToString());
          }
        }
      }
      std::vector<int64_t> kill;
      if (reached) {
        std::set<int64_t> k(known.begin(), known.end());
        for (int64_t id : ids) {
          if (k.count(id)) {
            disowned.erase(id);
          } else if (++disowned[id] >= 2) {  // twice, a second apart: not a job still being placed
            kill.push_back(id);
          }
        }
      } else {
        if (link.unreachable_since == Clock::time_point{}) link.unreachable_since = now;
        if (now - link.unreachable_since >= kOrphanAfter) kill = ids;
      }
      for (int64_t id : kill) {
        KLOG_WARN("job {} of {}: its home {} it; killing it to clear the host", id, home,
                  reached ? "does not know" : "cannot be reached to move");
        Status s = jobs_->Release(id);
        if (!s.ok() && s.code() != StatusCode::kNotFound) KLOG_WARN("release job {}: {}", id, s.ToString());
        disowned.erase(id);
      }
    }
    lock.lock();
  }
}

}  // namespace kite
