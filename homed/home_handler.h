// HomeHandler: the Thrift Home service (common/kite.thrift) — load reports from the remoteds
// and signals that guest jobs elsewhere send to processes at this home.
#pragma once

#include "homed/home_context.h"
#include "kite/rpc/Home.h"

namespace kite {

class HomeHandler : public rpc::HomeIf {
 public:
  explicit HomeHandler(HomeContext& ctx) : ctx_(ctx) {}
  void report_state(const rpc::HostStatus& status) override;
  int32_t kill(int32_t pid, int32_t signo, const rpc::Credentials& caller) override;
  // Starts moving each known job away from `host` (DeputySession::EvictFrom) and returns their
  // ids; a host not in the cluster config gets an empty list.
  void evict_jobs(std::vector<int64_t>& known, const std::string& host, const std::vector<int64_t>& job_ids) override;

 private:
  HomeContext& ctx_;
};

}  // namespace kite
