// The API server's Status object as an nvdra Error, and the predicates callers classify it with
// (apimachinery's IsNotFound, IsConflict, ... set).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "base/json.h"
#include "base/result.h"

namespace nvdra::k8s {

// Builds an Error (code kApi) from a Status body. `http_status` is used when the body has no code;
// `body` may be anything: a non-Status body yields a generic message naming the HTTP status.
Error error_from_response(int http_status, std::string_view body,
                          std::optional<std::chrono::seconds> retry_after = std::nullopt);
Error error_from_status(const json::Value& status, int http_status);

// The reason Kubernetes uses for an HTTP status when the body does not say.
std::string_view reason_for_http_status(int http_status);

// Serializes a Status object (used by servers and tests).
std::string status_json(int code, std::string_view reason, std::string_view message);

bool is_api_error(const Error& e);
bool is_not_found(const Error& e);
bool is_already_exists(const Error& e);
bool is_conflict(const Error& e);  // 409 Conflict (stale resourceVersion, failed precondition)
bool is_gone(const Error& e);      // 410 Gone or Expired: relist
bool is_invalid(const Error& e);
bool is_bad_request(const Error& e);
bool is_unauthorized(const Error& e);
bool is_forbidden(const Error& e);
bool is_too_many_requests(const Error& e);
bool is_server_error(const Error& e);  // any 5xx
// Whether the server asked the client to wait (429, or 5xx with Retry-After), and for how long.
std::optional<std::chrono::seconds> suggests_client_delay(const Error& e);

}  // namespace nvdra::k8s
