#include "k8sclient/rest/status.h"

#include <fmt/format.h>

namespace nvdra::k8s {

std::string_view reason_for_http_status(int s) {
  switch (s) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 406:
      return "NotAcceptable";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 413:
      return "RequestEntityTooLarge";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return s >= 500 ? "InternalError" : "Unknown";
  }
}

Error error_from_status(const json::Value& status, int http_status) {
  Error e;
  e.code = ErrorCode::kApi;
  e.http_status = static_cast<int>(json::get_int(status, "code").value_or(http_status));
  if (e.http_status == 0) e.http_status = http_status;
  e.reason = std::string(json::string_or(status, "reason"));
  if (e.reason.empty()) e.reason = std::string(reason_for_http_status(e.http_status));
  e.message = std::string(json::string_or(status, "message"));
  if (e.message.empty()) e.message = fmt::format("the server answered {}", e.http_status);
  if (const json::Value* d = json::find(status, "details"); d != nullptr && d->IsObject()) {
    e.details_name = json::string_or(*d, "name");
    e.details_group = json::string_or(*d, "group");
    e.details_kind = json::string_or(*d, "kind");
    e.details_uid = json::string_or(*d, "uid");
    if (auto ra = json::get_int(*d, "retryAfterSeconds"); ra && *ra > 0) {
      e.retry_after = std::chrono::seconds(*ra);
    }
    if (const json::Value* causes = json::find(*d, "causes"); causes && causes->IsArray()) {
      for (const auto& c : causes->GetArray()) {
        e.causes.push_back(ErrorCause{std::string(json::string_or(c, "reason")),
                                      std::string(json::string_or(c, "message")),
                                      std::string(json::string_or(c, "field"))});
      }
    }
  }
  return e;
}

Error error_from_response(int http_status, std::string_view body,
                          std::optional<std::chrono::seconds> retry_after) {
  Error e;
  auto doc = json::parse(body);
  if (doc && doc->IsObject() && json::string_or(*doc, "kind") == "Status") {
    e = error_from_status(*doc, http_status);
    // The HTTP status is what the server actually did; a body code disagreeing is ignored.
    e.http_status = http_status;
  } else {
    e.code = ErrorCode::kApi;
    e.http_status = http_status;
    e.reason = std::string(reason_for_http_status(http_status));
    std::string snippet(body.substr(0, 200));
    e.message = snippet.empty() ? fmt::format("the server answered {}", http_status)
                                : fmt::format("the server answered {}: {}", http_status, snippet);
  }
  if (retry_after) e.retry_after = retry_after;
  return e;
}

std::string status_json(int code, std::string_view reason, std::string_view message) {
  std::string out = R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":")";
  out += (code >= 200 && code < 300) ? "Success" : "Failure";
  out += R"(","message":)";
  json::append_quoted(out, message);
  out += R"(,"reason":)";
  json::append_quoted(out, reason);
  out += fmt::format(R"(,"code":{}}})", code);
  return out;
}

bool is_api_error(const Error& e) {
  return e.code == ErrorCode::kApi;
}
bool is_not_found(const Error& e) {
  return is_api_error(e) && e.http_status == 404;
}
bool is_already_exists(const Error& e) {
  return is_api_error(e) && e.http_status == 409 && e.reason == "AlreadyExists";
}
bool is_conflict(const Error& e) {
  return is_api_error(e) && e.http_status == 409 && e.reason != "AlreadyExists";
}
bool is_gone(const Error& e) {
  return is_api_error(e) && (e.http_status == 410 || e.reason == "Expired" || e.reason == "Gone");
}
bool is_invalid(const Error& e) {
  return is_api_error(e) && e.http_status == 422;
}
bool is_bad_request(const Error& e) {
  return is_api_error(e) && e.http_status == 400;
}
bool is_unauthorized(const Error& e) {
  return is_api_error(e) && e.http_status == 401;
}
bool is_forbidden(const Error& e) {
  return is_api_error(e) && e.http_status == 403;
}
bool is_too_many_requests(const Error& e) {
  return is_api_error(e) && e.http_status == 429;
}
bool is_server_error(const Error& e) {
  return is_api_error(e) && e.http_status >= 500;
}

std::optional<std::chrono::seconds> suggests_client_delay(const Error& e) {
  if (!is_api_error(e)) return std::nullopt;
  if (e.http_status == 429 || e.http_status >= 500) return e.retry_after;
  return std::nullopt;
}

}  // namespace nvdra::k8s
