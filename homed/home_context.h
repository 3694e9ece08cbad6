// HomeContext: the state that homed's parts share (one per daemon).
#pragma once

#include <memory>
#include <string>

#include "common/config.h"
#include "common/rpc.h"
#include "homed/host_table.h"
#include "homed/job_table.h"
#include "homed/remote_pool.h"

namespace kite {

struct HomeContext {
  HomeContext(const Config& c, std::shared_ptr<TlsContext> t) : config(c), tls(t), pool(config, t) {}

  const Config config;
  std::shared_ptr<TlsContext> tls;
  HostTable hosts;
  RemotePool pool;
  JobTable jobs;
};

}  // namespace kite
