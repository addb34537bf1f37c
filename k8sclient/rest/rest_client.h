// RestClient: the Kubernetes verbs over a Transport.
//
// Every request goes through the client-side QPS/burst limiter. Non-2xx answers become an Error
// with code kApi carrying the Status (see status.h predicates). Requests that are safe to repeat
// (GET, PUT, DELETE, server-side apply; any request answered 429, which APF rejects before
// processing) are retried on 429 and 5xx, sleeping Retry-After when the server sends one and a
// capped exponential backoff otherwise, at most kMaxRetries times (client-go: 10).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/asio.h"
#include "base/clock.h"
#include "base/result.h"
#include "base/token_bucket.h"
#include "k8sclient/config/config.h"
#include "k8sclient/object.h"
#include "k8sclient/transport/transport.h"

namespace nvdra::k8s {

// Names a collection, an object or a subresource.
struct ResourceRef {
  std::string group;  // "" for the core group
  std::string version = "v1";
  std::string resource;    // plural, e.g. "resourceclaims"
  std::string namespace_;  // "" = cluster-scoped, or all namespaces for lists
  std::string name;
  std::string subresource;  // e.g. "status"

  // The URL path below the server's prefix.
  std::string path() const;
  std::string group_version() const { return group.empty() ? version : group + "/" + version; }
  ResourceRef with_name(std::string n) const;
  ResourceRef in_namespace(std::string ns) const;
  ResourceRef sub(std::string subresource) const;
};

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;
  std::string continue_token;
  std::optional<std::string> resource_version;
  std::string resource_version_match;  // NotOlderThan | Exact
  std::optional<int64_t> timeout_seconds;
  bool allow_watch_bookmarks = false;
  std::optional<bool> send_initial_events;
};

struct WriteOptions {
  std::string field_manager;
  bool dry_run = false;
  std::string field_validation;  // Strict | Warn | Ignore
  bool force = false;            // server-side apply only
  // create only: the body names the object (no generateName), so a repeat after the server
  // acted is refused with 409 AlreadyExists instead of making a second object. 5xx answers and
  // transport failures are then retried like those of idempotent requests.
  bool named = false;
};

struct DeleteOptions {
  std::string propagation_policy;  // Orphan | Background | Foreground
  std::optional<std::string> precondition_uid;
  std::optional<std::string> precondition_resource_version;
  std::optional<int64_t> grace_period_seconds;
  bool dry_run = false;
};

enum class PatchType { kJson, kMerge, kStrategicMerge, kApply };
std::string_view content_type(PatchType t);

// Query string ("?a=b&c=d", or "") for the given options.
std::string list_query(const ListOptions& o, bool watch);
std::string write_query(const WriteOptions& o, bool apply = false);

using SleepFn = std::function<awaitable<void>(std::chrono::nanoseconds)>;

struct RestClientOptions {
  double qps = 5;
  int burst = 10;
  std::string user_agent = "nvdra";
  std::string path_prefix;
  std::shared_ptr<TokenSource> token;
  const Clock* clock = nullptr;  // default: SystemClock
  SleepFn sleep;                 // default: a steady_timer; tests record instead
  int max_retries = 10;
  std::chrono::milliseconds retry_backoff_initial{100};
  std::chrono::milliseconds retry_backoff_cap{10'000};
  std::chrono::seconds retry_after_cap{60};
};

// Note for callers and implementers: g++ 12 destroys default-argument temporaries of coroutine
// calls twice, so coroutine functions here take options by value and have no default arguments;
// the short overloads are plain functions that pass default options along.
class RestClient {
 public:
  static constexpr int kMaxRetries = 10;
  RestClient(std::shared_ptr<Transport> transport, RestClientOptions options);

  // Builds the transport from a RestConfig.
  static Result<std::shared_ptr<RestClient>> create(net::any_io_executor executor,
                                                    const RestConfig& config);

  awaitable<Result<ObjectPtr>> get(const ResourceRef& ref);
  // One page.
  awaitable<Result<ObjectList>> list(const ResourceRef& ref, ListOptions options);
  // Every page (limit defaults to 500), restarting once when the continue token expires (410).
  awaitable<Result<ObjectList>> list_all(const ResourceRef& ref, ListOptions options);
  awaitable<Result<ObjectList>> list_all(const ResourceRef& ref) { return list_all(ref, {}); }
  awaitable<Result<ObjectPtr>> create(const ResourceRef& ref, std::string body,
                                      WriteOptions options);
  awaitable<Result<ObjectPtr>> create(const ResourceRef& ref, std::string body) {
    return create(ref, std::move(body), WriteOptions{});
  }
  // PUT; the body must carry metadata.resourceVersion for optimistic concurrency.
  awaitable<Result<ObjectPtr>> update(const ResourceRef& ref, std::string body,
                                      WriteOptions options);
  awaitable<Result<ObjectPtr>> update(const ResourceRef& ref, std::string body) {
    return update(ref, std::move(body), WriteOptions{});
  }
  awaitable<Result<ObjectPtr>> update_status(const ResourceRef& ref, std::string body,
                                             WriteOptions options);
  awaitable<Result<ObjectPtr>> update_status(const ResourceRef& ref, std::string body) {
    return update_status(ref, std::move(body), WriteOptions{});
  }
  awaitable<Result<ObjectPtr>> patch(const ResourceRef& ref, PatchType type, std::string body,
                                     WriteOptions options);
  awaitable<Result<ObjectPtr>> patch(const ResourceRef& ref, PatchType type, std::string body) {
    return patch(ref, type, std::move(body), WriteOptions{});
  }
  // Returns the object when the server answers with it (finalizers pending), else null.
  awaitable<Result<ObjectPtr>> remove(const ResourceRef& ref, DeleteOptions options);
  awaitable<Result<ObjectPtr>> remove(const ResourceRef& ref) {
    return remove(ref, DeleteOptions{});
  }
  awaitable<Status> remove_collection(const ResourceRef& ref, ListOptions selection,
                                      DeleteOptions options);

  // Opens a watch and streams its body bytes to `on_body` (see WatchDecoder). A non-2xx answer is
  // returned as an Error before any byte is streamed.
  awaitable<Status> watch(const ResourceRef& ref, ListOptions options, BodyCallback on_body,
                          Cancellation* cancel);

  // A raw request with auth, limiter and retries (discovery, /version, tests).
  awaitable<Result<HttpResponse>> raw(std::string method, std::string target, std::string body,
                                      std::string content_type);
  awaitable<Result<HttpResponse>> raw(std::string method, std::string target) {
    return raw(std::move(method), std::move(target), std::string(), std::string());
  }

  Transport& transport() { return *transport_; }
  const Clock& clock() const { return *options_.clock; }

 private:
  struct Call {
    std::string method;
    std::string target;  // without prefix
    std::string body;
    std::string content_type;
    bool retry_5xx = false;  // safe to repeat after the server may have acted
  };
  awaitable<Result<HttpResponse>> execute(const Call& call);
  awaitable<Result<ObjectPtr>> object_call(Call call);
  HttpRequest make_request(const Call& call);
  awaitable<void> wait_for_limiter();

  std::shared_ptr<Transport> transport_;
  RestClientOptions options_;
  TokenBucket limiter_;
};

}  // namespace nvdra::k8s
