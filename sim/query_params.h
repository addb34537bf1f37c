// The integer query parameters of list and watch requests, read as kube-apiserver reads them: a
// value that is not an integer is a 400 (atoll used to read "abc" as 0), and what is computed
// from them cannot overflow.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/result.h"
#include "net/http_server.h"

namespace nvdra::sim {

// An integer query parameter; nullopt when absent or empty.
Result<std::optional<int64_t>> int_param(const httpd::Request& req, std::string_view name);

// resourceVersion to read from: a non-negative integer, 0 when absent or empty.
Result<int64_t> resource_version_param(const httpd::Request& req);

// How long a watch runs for its timeoutSeconds: absent, zero or negative is the default
// (30 minutes); at most a year, so that now() + the timeout cannot overflow the clock
// (timeoutSeconds near INT64_MAX did).
std::chrono::seconds watch_timeout(std::optional<int64_t> timeout_seconds);

}  // namespace nvdra::sim
