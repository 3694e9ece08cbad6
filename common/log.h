// Logging for the daemons and the CLI: spdlog to stderr, one line an event, with the
// component's name. The shim never logs through this (it is in every process of a build).
#pragma once

#ifndef SPDLOG_ACTIVE_LEVEL
#define SPDLOG_ACTIVE_LEVEL SPDLOG_LEVEL_DEBUG
#endif
#include <spdlog/spdlog.h>

#include <string>

namespace kite {

// Sets up the default logger: "[time] [component] [level] message" on stderr.
// `level` is one of trace/debug/info/warn/error; $KITE_LOG overrides it.
void InitLogging(const std::string& component, const std::string& level = "info");

}  // namespace kite

#define KLOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define KLOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define KLOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define KLOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)
