#include "k8sclient/watch/reflector.h"

#include <fmt/format.h>

#include <random>

#include "base/backoff.h"
#include "base/log.h"
#include "k8sclient/rest/status.h"

namespace nvdra::k8s {

RestListerWatcher::RestListerWatcher(std::shared_ptr<RestClient> client, ResourceRef ref,
                                     std::string label_selector, std::string field_selector)
    : client_(std::move(client)),
      ref_(std::move(ref)),
      label_selector_(std::move(label_selector)),
      field_selector_(std::move(field_selector)) {}

awaitable<Result<ObjectList>> RestListerWatcher::list(ListOptions options) {
  options.label_selector = label_selector_;
  options.field_selector = field_selector_;
  co_return co_await client_->list_all(ref_, std::move(options));
}

awaitable<Status> RestListerWatcher::watch(ListOptions options, BodyCallback on_body,
                                           Cancellation* cancel) {
  options.label_selector = label_selector_;
  options.field_selector = field_selector_;
  co_return co_await client_->watch(ref_, std::move(options), std::move(on_body), cancel);
}

Reflector::Reflector(std::shared_ptr<ListerWatcher> lw, ReflectorSink& sink,
                     ReflectorOptions options, const Clock& clock)
    : lw_(std::move(lw)),
      sink_(sink),
      opt_(std::move(options)),
      clock_(clock),
      watch_list_supported_(opt_.use_watch_list) {}

int64_t Reflector::watch_timeout_seconds() {
  static thread_local std::minstd_rand rng{std::random_device{}()};
  const int64_t min = opt_.min_watch_timeout.count();
  std::uniform_int_distribution<int64_t> dist(min, 2 * min - 1);
  return min > 0 ? dist(rng) : 1;
}

awaitable<Status> Reflector::list_and_replace() {
  ListOptions o;
  o.limit = opt_.page_size;
  stats_.lists++;
  auto list = co_await lw_->list(o);
  if (!list) co_return unexpected(list.error());
  last_rv_ = list->resource_version;
  sink_.replace(std::move(list->items), last_rv_);
  co_return ok();
}

awaitable<Reflector::WatchEnd> Reflector::watch_once(Cancellation* cancel, bool initial) {
  ListOptions o;
  o.allow_watch_bookmarks = true;
  o.timeout_seconds = watch_timeout_seconds();
  if (initial) {
    o.send_initial_events = true;
    o.resource_version_match = "NotOlderThan";
    o.resource_version = "";
  } else {
    o.resource_version = last_rv_;
  }
  WatchDecoder decoder;
  std::vector<ObjectPtr> initial_objects;
  bool initial_done = !initial;
  std::optional<Error> stream_error;  // an ERROR event or a malformed stream
  bool gone = false;

  auto on_body = [&](std::string_view bytes) -> bool {
    decoder.push(bytes);
    while (auto ev = decoder.next()) {
      if (!*ev) {
        stream_error = ev->error();
        return false;
      }
      WatchEvent& e = **ev;
      stats_.events++;
      switch (e.type) {
        case EventType::kError:
          gone = is_gone(e.error);
          stream_error = e.error;
          return false;
        case EventType::kBookmark: {
          last_rv_ = e.object->resource_version();
          if (!initial_done) {
            auto doc = e.object->doc();
            const json::Value* v = doc ? json::find_path(*doc, {"metadata", "annotations",
                                                                "k8s.io/initial-events-end"})
                                       : nullptr;
            if (v && v->IsString() && std::string_view(v->GetString()) == "true") {
              initial_done = true;
              initial_received_ = true;
              sink_.replace(std::move(initial_objects), last_rv_);
              initial_objects.clear();
            }
          }
          break;
        }
        case EventType::kAdded:
          last_rv_ = e.object->resource_version();
          if (!initial_done) {
            initial_objects.push_back(std::move(e.object));
          } else {
            sink_.added(std::move(e.object));
          }
          break;
        case EventType::kModified:
          last_rv_ = e.object->resource_version();
          sink_.modified(std::move(e.object));
          break;
        case EventType::kDeleted:
          last_rv_ = e.object->resource_version();
          sink_.deleted(std::move(e.object));
          break;
      }
    }
    return true;
  };

  if (initial) {
    stats_.watch_lists++;
  } else {
    stats_.watches++;
  }
  BodyCallback callback = on_body;
  auto st = co_await lw_->watch(o, std::move(callback), cancel);
  if (cancel && cancel->cancelled()) co_return WatchEnd::kCancelled;
  if (!st) {
    const Error& err = st.error();
    if (initial &&
        (is_invalid(err) || is_bad_request(err) || is_forbidden(err) || is_not_found(err))) {
      // The server does not do watch-list (gate off, older server): LIST from now on.
      NVDRA_V(2, "{}: watch-list refused ({}); using list+watch", opt_.name, err.to_string());
      watch_list_supported_ = false;
      co_return WatchEnd::kRelist;
    }
    if (is_gone(err)) co_return WatchEnd::kRelist;
    NVDRA_V(2, "{}: watch failed: {}", opt_.name, err.to_string());
    co_return WatchEnd::kBackoff;
  }
  if (stream_error) {
    if (gone) {
      NVDRA_V(2, "{}: resourceVersion {} is too old; relisting", opt_.name, last_rv_);
      co_return WatchEnd::kRelist;
    }
    NVDRA_WARN("{}: watch stream error: {}", opt_.name, stream_error->to_string());
    co_return WatchEnd::kBackoff;
  }
  if (!initial_done) co_return WatchEnd::kBackoff;  // the stream ended before the initial state
  co_return WatchEnd::kResume;
}

awaitable<void> Reflector::run(Cancellation* cancel) {
  Backoff backoff(opt_.backoff_initial, opt_.backoff_cap, 2.0, 1.0);
  bool need_list = true;
  auto healthy_since = clock_.now();
  while (!(cancel && cancel->cancelled())) {
    if (need_list) {
      if (watch_list_supported_) {
        initial_received_ = false;
        auto end = co_await watch_once(cancel, /*initial=*/true);
        if (end == WatchEnd::kCancelled) break;
        if (end == WatchEnd::kRelist && !watch_list_supported_) continue;  // fall back to LIST
        // Once the initial state arrived, the stream is an ordinary watch: a later failure
        // resumes from the last resourceVersion instead of listing again.
        if (initial_received_ && end != WatchEnd::kRelist) need_list = false;
        if (end == WatchEnd::kResume) continue;
        if (end == WatchEnd::kRelist) {
          stats_.relists_after_gone++;
          continue;
        }
        if (!co_await sleep_for(backoff.next(), cancel)) break;
        continue;
      }
      auto st = co_await list_and_replace();
      if (!st) {
        NVDRA_WARN("{}: list failed: {}", opt_.name, st.error().to_string());
        if (!co_await sleep_for(backoff.next(), cancel)) break;
        continue;
      }
      need_list = false;
      healthy_since = clock_.now();
    }
    auto end = co_await watch_once(cancel, /*initial=*/false);
    switch (end) {
      case WatchEnd::kCancelled:
        co_return;
      case WatchEnd::kResume:
        if (clock_.now() - healthy_since >= opt_.backoff_reset_after) backoff.reset();
        break;
      case WatchEnd::kRelist:
        stats_.relists_after_gone++;
        need_list = true;
        break;
      case WatchEnd::kBackoff:
        if (!co_await sleep_for(backoff.next(), cancel)) co_return;
        healthy_since = clock_.now();
        break;
    }
  }
}

}  // namespace nvdra::k8s
