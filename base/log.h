// Logging for every nvdra process: spdlog with klog's text layout by default
// ("I1125 14:15:03.123456  4711 file.cpp:42] message"), JSON lines with --logging-format=json, and
// klog-style verbosity: NVDRA_V(n) lines appear when -v is n or more.
//
// Secrets never reach a sink: callers pass tokens and keys through redact(), and the transport
// logs headers only through redact_header().
#pragma once

// g++ 12 cannot use __FUNCTION__ inside coroutines ("array used as initializer"); spdlog's macros
// would. File and line are enough for klog's layout.
#ifndef SPDLOG_FUNCTION
#define SPDLOG_FUNCTION ""
#endif
#ifndef SPDLOG_ACTIVE_LEVEL
#define SPDLOG_ACTIVE_LEVEL SPDLOG_LEVEL_TRACE
#endif
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

namespace nvdra::log {

enum class Format { kText, kJson };

struct Options {
  Format format = Format::kText;
  int verbosity = 0;
};

// Parses "text" or "json".
bool parse_format(std::string_view s, Format* out);

// Installs the default logger. `sink` defaults to stderr; tests pass a capturing sink.
void init(const Options& options, std::shared_ptr<spdlog::sinks::sink> sink = nullptr);

int verbosity();
inline bool v(int level) {
  return level <= verbosity();
}

// What a log line shows instead of a secret.
std::string redact(std::string_view secret);
// Header value safe to log: Authorization and other credential headers are replaced.
std::string redact_header(std::string_view name, std::string_view value);

}  // namespace nvdra::log

#define NVDRA_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define NVDRA_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define NVDRA_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)
#define NVDRA_V(n, ...)                               \
  do {                                                \
    if (::nvdra::log::v(n)) SPDLOG_INFO(__VA_ARGS__); \
  } while (0)
