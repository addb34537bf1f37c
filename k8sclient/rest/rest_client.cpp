#include "k8sclient/rest/rest_client.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "base/backoff.h"
#include "base/log.h"
#include "k8sclient/rest/status.h"

namespace nvdra::k8s {

std::string ResourceRef::path() const {
  std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (!namespace_.empty()) p += "/namespaces/" + url_encode(namespace_);
  p += "/" + resource;
  if (!name.empty()) p += "/" + url_encode(name);
  if (!subresource.empty()) p += "/" + subresource;
  return p;
}

ResourceRef ResourceRef::with_name(std::string n) const {
  ResourceRef r = *this;
  r.name = std::move(n);
  return r;
}
ResourceRef ResourceRef::in_namespace(std::string ns) const {
  ResourceRef r = *this;
  r.namespace_ = std::move(ns);
  return r;
}
ResourceRef ResourceRef::sub(std::string s) const {
  ResourceRef r = *this;
  r.subresource = std::move(s);
  return r;
}

std::string_view content_type(PatchType t) {
  switch (t) {
    case PatchType::kJson:
      return "application/json-patch+json";
    case PatchType::kMerge:
      return "application/merge-patch+json";
    case PatchType::kStrategicMerge:
      return "application/strategic-merge-patch+json";
    case PatchType::kApply:
      return "application/apply-patch+yaml";
  }
  return "application/json";
}

namespace {
void add_param(std::string& q, std::string_view key, std::string_view value) {
  q += q.empty() ? '?' : '&';
  q += key;
  q += '=';
  q += url_encode(value);
}

std::optional<std::chrono::seconds> parse_retry_after(const HttpResponse& r) {
  auto h = r.header("Retry-After");
  if (!h) return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(h->data(), h->data() + h->size(), v);
  if (ec != std::errc() || p != h->data() + h->size() || v < 0) return std::nullopt;
  return std::chrono::seconds(v);
}

awaitable<void> timer_sleep(std::chrono::nanoseconds d) {
  co_await sleep_for(d);
}
}  // namespace

std::string list_query(const ListOptions& o, bool watch) {
  std::string q;
  if (watch) add_param(q, "watch", "true");
  if (!o.label_selector.empty()) add_param(q, "labelSelector", o.label_selector);
  if (!o.field_selector.empty()) add_param(q, "fieldSelector", o.field_selector);
  if (o.limit > 0) add_param(q, "limit", std::to_string(o.limit));
  if (!o.continue_token.empty()) add_param(q, "continue", o.continue_token);
  if (o.resource_version) add_param(q, "resourceVersion", *o.resource_version);
  if (!o.resource_version_match.empty()) {
    add_param(q, "resourceVersionMatch", o.resource_version_match);
  }
  if (o.timeout_seconds) add_param(q, "timeoutSeconds", std::to_string(*o.timeout_seconds));
  if (o.allow_watch_bookmarks) add_param(q, "allowWatchBookmarks", "true");
  if (o.send_initial_events) {
    add_param(q, "sendInitialEvents", *o.send_initial_events ? "true" : "false");
  }
  return q;
}

std::string write_query(const WriteOptions& o, bool apply) {
  std::string q;
  if (!o.field_manager.empty()) add_param(q, "fieldManager", o.field_manager);
  if (o.dry_run) add_param(q, "dryRun", "All");
  if (!o.field_validation.empty()) add_param(q, "fieldValidation", o.field_validation);
  if (apply && o.force) add_param(q, "force", "true");
  return q;
}

RestClient::RestClient(std::shared_ptr<Transport> transport, RestClientOptions options)
    : transport_(std::move(transport)),
      options_(std::move(options)),
      limiter_(options_.qps, options_.burst) {
  if (options_.clock == nullptr) options_.clock = &SystemClock::instance();
  if (!options_.sleep) options_.sleep = timer_sleep;
}

Result<std::shared_ptr<RestClient>> RestClient::create(net::any_io_executor executor,
                                                       const RestConfig& config) {
  if (config.token && !config.endpoint.tls && !config.allow_insecure_token)
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("refusing to send a bearer token to {} over plain http (anyone "
                                  "on the path could read it); use https, or set "
                                  "NVDRA_ALLOW_INSECURE_TOKEN=true where that is intended",
                                  config.server));
  TransportOptions topt;
  topt.endpoint = config.endpoint;
  topt.tls = config.tls;
  auto transport = make_beast_transport(std::move(executor), std::move(topt));
  if (!transport) return unexpected(transport.error());
  RestClientOptions ropt;
  ropt.qps = config.qps;
  ropt.burst = config.burst;
  ropt.user_agent = config.user_agent;
  ropt.path_prefix = config.endpoint.path_prefix;
  ropt.token = config.token;
  return std::make_shared<RestClient>(std::move(*transport), std::move(ropt));
}

HttpRequest RestClient::make_request(const Call& call) {
  HttpRequest req;
  req.method = call.method;
  req.target = options_.path_prefix + call.target;
  req.headers.emplace_back("Accept", "application/json");
  req.headers.emplace_back("User-Agent", options_.user_agent);
  if (options_.token) {
    std::string token = options_.token->token();
    if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + token);
  }
  if (!call.body.empty() || call.method == "POST" || call.method == "PUT" ||
      call.method == "PATCH") {
    req.headers.emplace_back("Content-Type",
                             call.content_type.empty() ? "application/json" : call.content_type);
  }
  req.body = call.body;
  return req;
}

awaitable<void> RestClient::wait_for_limiter() {
  auto delay = limiter_.reserve(options_.clock->now());
  if (delay > std::chrono::nanoseconds::zero()) co_await options_.sleep(delay);
}

awaitable<Result<HttpResponse>> RestClient::execute(const Call& call) {
  Backoff backoff(options_.retry_backoff_initial, options_.retry_backoff_cap, 2.0, 0.1);
  for (int attempt = 0;; ++attempt) {
    co_await wait_for_limiter();
    HttpRequest req = make_request(call);
    auto res = co_await transport_->send(std::move(req));
    if (!res) {
      // Transport failures: repeat only requests that are safe to repeat, a few times.
      if (call.retry_5xx && attempt < 3 &&
          (res.error().code == ErrorCode::kIo || res.error().code == ErrorCode::kTimeout)) {
        auto d = backoff.next();
        NVDRA_V(4, "{} {}: {}; retrying in {} ms", call.method, call.target, res.error().message,
                std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
        co_await options_.sleep(d);
        continue;
      }
      co_return unexpected(res.error());
    }
    for (const auto& [k, v] : res->headers) {
      if (iequals(k, "Warning"))
        NVDRA_WARN("API server warning for {} {}: {}", call.method, call.target, v);
    }
    const int s = res->status;
    if (s >= 200 && s < 300) co_return std::move(*res);
    auto retry_after = parse_retry_after(*res);
    const bool retryable =
        attempt < options_.max_retries && (s == 429 || (s >= 500 && call.retry_5xx));
    if (!retryable) co_return unexpected(error_from_response(s, res->body, retry_after));
    Error e = error_from_response(s, res->body, retry_after);
    std::chrono::nanoseconds delay = backoff.next();
    if (e.retry_after) {
      delay = std::min<std::chrono::nanoseconds>(*e.retry_after, options_.retry_after_cap);
    }
    NVDRA_V(3, "{} {}: {} {}; retrying in {} ms", call.method, call.target, s, e.reason,
            std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
    co_await options_.sleep(delay);
  }
}

awaitable<Result<ObjectPtr>> RestClient::object_call(Call call) {
  auto res = co_await execute(call);
  if (!res) co_return unexpected(res.error());
  auto obj = Object::parse(res->body);
  if (!obj) co_return unexpected(obj.error().wrap(fmt::format("{} {}", call.method, call.target)));
  co_return std::move(*obj);
}

awaitable<Result<ObjectPtr>> RestClient::get(const ResourceRef& ref) {
  Call call{"GET", ref.path(), {}, {}, true};
  co_return co_await object_call(std::move(call));
}

awaitable<Result<ObjectList>> RestClient::list(const ResourceRef& ref, ListOptions options) {
  Call call{"GET", ref.path() + list_query(options, false), {}, {}, true};
  auto res = co_await execute(call);
  if (!res) co_return unexpected(res.error());
  auto list = parse_list(res->body);
  if (!list) co_return unexpected(list.error().wrap("LIST " + ref.path()));
  co_return std::move(*list);
}

awaitable<Result<ObjectList>> RestClient::list_all(const ResourceRef& ref, ListOptions options) {
  if (options.limit <= 0) options.limit = 500;
  ObjectList all;
  bool restarted = false;
  for (;;) {
    auto page = co_await list(ref, options);
    if (!page) {
      // An expired continue token: start over once from a fresh consistent read.
      if (is_gone(page.error()) && !options.continue_token.empty() && !restarted) {
        restarted = true;
        options.continue_token.clear();
        options.resource_version.reset();
        options.resource_version_match.clear();
        all = ObjectList();
        continue;
      }
      co_return unexpected(page.error());
    }
    if (all.kind.empty()) {
      all.kind = page->kind;
      all.api_version = page->api_version;
      all.resource_version = page->resource_version;
    }
    for (auto& item : page->items)
      all.items.push_back(std::move(item));
    if (page->continue_token.empty()) break;
    options.continue_token = page->continue_token;
    // Later pages must not repeat resourceVersion (the token carries it).
    options.resource_version.reset();
    options.resource_version_match.clear();
  }
  co_return all;
}

awaitable<Result<ObjectPtr>> RestClient::create(const ResourceRef& ref, std::string body,
                                                WriteOptions options) {
  Call call{"POST", ref.path() + write_query(options), std::move(body), {}, options.named};
  co_return co_await object_call(std::move(call));
}

awaitable<Result<ObjectPtr>> RestClient::update(const ResourceRef& ref, std::string body,
                                                WriteOptions options) {
  // A PUT carries the resourceVersion it read, so a repeat after success fails with 409 instead of
  // writing twice: safe to retry.
  Call call{"PUT", ref.path() + write_query(options), std::move(body), {}, true};
  co_return co_await object_call(std::move(call));
}

awaitable<Result<ObjectPtr>> RestClient::update_status(const ResourceRef& ref, std::string body,
                                                       WriteOptions options) {
  ResourceRef status = ref.sub("status");
  co_return co_await update(status, std::move(body), std::move(options));
}

awaitable<Result<ObjectPtr>> RestClient::patch(const ResourceRef& ref, PatchType type,
                                               std::string body, WriteOptions options) {
  const bool apply = type == PatchType::kApply;
  Call call{"PATCH", ref.path() + write_query(options, apply), std::move(body),
            std::string(content_type(type)), apply};
  co_return co_await object_call(std::move(call));
}

namespace {
std::string delete_body(const DeleteOptions& o) {
  std::string b = R"({"kind":"DeleteOptions","apiVersion":"v1")";
  if (!o.propagation_policy.empty()) {
    b += R"(,"propagationPolicy":)" + json::quote(o.propagation_policy);
  }
  if (o.grace_period_seconds)
    b += fmt::format(R"(,"gracePeriodSeconds":{})", *o.grace_period_seconds);
  if (o.precondition_uid || o.precondition_resource_version) {
    b += R"(,"preconditions":{)";
    bool first = true;
    if (o.precondition_uid) {
      b += R"("uid":)" + json::quote(*o.precondition_uid);
      first = false;
    }
    if (o.precondition_resource_version) {
      if (!first) b += ',';
      b += R"("resourceVersion":)" + json::quote(*o.precondition_resource_version);
    }
    b += '}';
  }
  if (o.dry_run) b += R"(,"dryRun":["All"])";
  b += '}';
  return b;
}
}  // namespace

awaitable<Result<ObjectPtr>> RestClient::remove(const ResourceRef& ref, DeleteOptions options) {
  Call call{"DELETE", ref.path(), delete_body(options), {}, true};
  auto res = co_await execute(call);
  if (!res) co_return unexpected(res.error());
  auto obj = Object::parse(res->body);
  if (obj && (*obj)->kind() != "Status") co_return std::move(*obj);
  co_return ObjectPtr();
}

awaitable<Status> RestClient::remove_collection(const ResourceRef& ref, ListOptions selection,
                                                DeleteOptions options) {
  Call call{"DELETE", ref.path() + list_query(selection, false), delete_body(options), {}, true};
  auto res = co_await execute(call);
  if (!res) co_return unexpected(res.error());
  co_return ok();
}

awaitable<Status> RestClient::watch(const ResourceRef& ref, ListOptions options,
                                    BodyCallback on_body, Cancellation* cancel) {
  co_await wait_for_limiter();
  Call call{"GET", ref.path() + list_query(options, true), {}, {}, false};
  // A watch is quiet between events; allow the whole server-side timeout plus slack per read.
  // Clamped to a day first: a caller's INT64_MAX must not overflow into a negative timeout.
  const int64_t server_timeout =
      std::clamp<int64_t>(options.timeout_seconds.value_or(600), 0, 86400);
  auto idle = std::chrono::seconds(server_timeout + 30);
  HttpRequest req = make_request(call);
  auto idle_ms = std::chrono::duration_cast<std::chrono::milliseconds>(idle);
  auto res = co_await transport_->stream(std::move(req), std::move(on_body), idle_ms, cancel);
  if (!res) co_return unexpected(res.error());
  if (res->status < 200 || res->status >= 300) {
    co_return unexpected(error_from_response(res->status, res->body, parse_retry_after(*res)));
  }
  co_return ok();
}

awaitable<Result<HttpResponse>> RestClient::raw(std::string method, std::string target,
                                                std::string body, std::string content_type) {
  const bool safe = method == "GET" || method == "PUT" || method == "DELETE";
  Call call{std::move(method), std::move(target), std::move(body), std::move(content_type), safe};
  co_return co_await execute(call);
}

}  // namespace nvdra::k8s
