// Logging set-up: a stderr sink shared by every thread of the process.
#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <thrift/TOutput.h>

#include <cstdlib>

namespace kite {

void InitLogging(const std::string& component, const std::string& level) {
  auto logger = spdlog::stderr_logger_mt(component);
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n] [%l] %v");
  const char* env = std::getenv("KITE_LOG");
  spdlog::set_level(spdlog::level::from_str(env && *env ? env : level));
  spdlog::flush_on(spdlog::level::info);
  // Thrift reports refused handshakes and dropped peers on its own; they are routine for a
  // daemon (a peer restarting), so they go to the debug log.
  apache::thrift::GlobalOutput.setOutputFunction([](const char* msg) { SPDLOG_DEBUG("thrift: {}", msg); });
}

}  // namespace kite
