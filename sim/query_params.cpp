#include "sim/query_params.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "base/json.h"
#include "sim/store.h"  // api_error

namespace nvdra::sim {

Result<std::optional<int64_t>> int_param(const httpd::Request& req, std::string_view name) {
  auto v = req.query_param(name);
  if (!v || v->empty()) return std::optional<int64_t>();
  int64_t n = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || p != v->data() + v->size()) {
    return unexpected(
        api_error(400, "BadRequest",
                  fmt::format("{}: invalid value {}: not an integer", name, json::quote(*v))));
  }
  return std::optional<int64_t>(n);
}

Result<int64_t> resource_version_param(const httpd::Request& req) {
  auto v = req.query_param("resourceVersion");
  if (!v || v->empty()) return int64_t{0};
  int64_t n = -1;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || p != v->data() + v->size() || n < 0) {
    return unexpected(
        api_error(400, "BadRequest",
                  fmt::format("resourceVersion: Invalid value: {}: must be a non-negative integer",
                              json::quote(*v))));
  }
  return n;
}

std::chrono::seconds watch_timeout(std::optional<int64_t> timeout_seconds) {
  constexpr int64_t kDefault = 1800, kYear = 365LL * 24 * 3600;
  if (!timeout_seconds || *timeout_seconds <= 0) return std::chrono::seconds(kDefault);
  return std::chrono::seconds(std::min(*timeout_seconds, kYear));
}

}  // namespace nvdra::sim
