#include "base/log.h"

#include "base/json.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <ctime>

namespace nvdra::log {
namespace {

std::atomic<int> g_verbosity{0};

void append_json_string(std::string_view s, spdlog::memory_buf_t& out) {
  std::string quoted;
  json::append_quoted(quoted, s);
  out.append(quoted.data(), quoted.data() + quoted.size());
}

std::string_view base_name(const char* path) {
  if (path == nullptr) return {};
  std::string_view p(path);
  auto slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

// One JSON object per line, with the keys klog's JSON format uses (ts, caller, msg) plus level.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    const double ts = duration<double>(msg.time.time_since_epoch()).count();
    fmt::format_to(std::back_inserter(dest), "{{\"ts\":{:.6f},\"level\":", ts);
    auto level = spdlog::level::to_string_view(msg.level);
    append_json_string(std::string_view(level.data(), level.size()), dest);
    if (!msg.source.empty()) {
      dest.append(std::string_view(",\"caller\":"));
      append_json_string(fmt::format("{}:{}", base_name(msg.source.filename), msg.source.line),
                         dest);
    }
    dest.append(std::string_view(",\"msg\":"));
    append_json_string(std::string_view(msg.payload.data(), msg.payload.size()), dest);
    dest.append(std::string_view("}\n"));
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

bool parse_format(std::string_view s, Format* out) {
  if (s == "text") {
    *out = Format::kText;
  } else if (s == "json") {
    *out = Format::kJson;
  } else {
    return false;
  }
  return true;
}

void init(const Options& options, std::shared_ptr<spdlog::sinks::sink> sink) {
  g_verbosity.store(options.verbosity);
  if (!sink) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("nvdra", std::move(sink));
  if (options.format == Format::kJson) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    // klog: Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg
    logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%L%m%d %H:%M:%S.%f %7t %s:%#] %v", spdlog::pattern_time_type::local));
  }
  logger->set_level(spdlog::level::trace);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

int verbosity() {
  return g_verbosity.load(std::memory_order_relaxed);
}

std::string redact(std::string_view secret) {
  if (secret.empty()) return "<empty>";
  return "<redacted>";
}

std::string redact_header(std::string_view name, std::string_view value) {
  std::string lower;
  for (char c : name)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "authorization" || lower == "proxy-authorization" || lower == "cookie" ||
      lower == "set-cookie" || lower == "x-auth-token") {
    // Keep the scheme ("Bearer") so logs still say how the request authenticated.
    auto space = value.find(' ');
    if (space != std::string_view::npos) return std::string(value.substr(0, space)) + " <redacted>";
    return redact(value);
  }
  return std::string(value);
}

}  // namespace nvdra::log
