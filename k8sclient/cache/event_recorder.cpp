#include "k8sclient/cache/event_recorder.h"

#include <fmt/format.h>

#include "base/log.h"
#include "k8sclient/cache/leader_election.h"  // format_micro_time
#include "k8sclient/rest/status.h"

namespace nvdra::k8s {

namespace {
ResourceRef events_ref(const std::string& ns) {
  ResourceRef r;
  r.group = "events.k8s.io";
  r.version = "v1";
  r.resource = "events";
  r.namespace_ = ns;
  return r;
}

std::string truncate(std::string_view s, size_t n) {
  if (s.size() <= n) return std::string(s);
  // Do not cut a UTF-8 sequence in half.
  size_t cut = n;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
    --cut;
  return std::string(s.substr(0, cut));
}
}  // namespace

EventRecorder::EventRecorder(std::shared_ptr<RestClient> client, EventRecorderOptions options,
                             const Clock& clock)
    : client_(std::move(client)), opt_(std::move(options)), clock_(clock) {}

int EventRecorder::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

size_t EventRecorder::series_count() const {
  std::lock_guard lock(mu_);
  return series_.size();
}

void EventRecorder::prune_locked(Clock::steady_point now) {
  if (now < next_prune_) return;
  // A key idle this long would start a new Event (past the window) with a full bucket (refilled),
  // exactly as a forgotten one does.
  auto idle = std::chrono::duration_cast<Clock::steady_point::duration>(opt_.series_window);
  if (opt_.spam_refill_per_second > 0)
    idle = std::max(
        idle, std::chrono::duration_cast<Clock::steady_point::duration>(
                  std::chrono::duration<double>(opt_.spam_burst / opt_.spam_refill_per_second)));
  std::erase_if(series_, [&](const auto& kv) { return now - kv.second.last_attempt > idle; });
  next_prune_ = now + opt_.series_window;
}

awaitable<Status> EventRecorder::record(const ObjectReference& regarding, std::string_view type,
                                        std::string_view reason, std::string_view action,
                                        std::string_view note_in) {
  const std::string note = truncate(note_in, 1024);
  const std::string key =
      fmt::format("{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}", regarding.kind,
                  regarding.namespace_, regarding.name, regarding.uid, type, reason, action, note);
  const auto now = clock_.now();
  const auto now_sys = clock_.system_now();
  std::string patch_name, patch_ns;
  int count = 0;
  {
    std::lock_guard lock(mu_);
    prune_locked(now);
    auto& s = series_[key];
    s.last_attempt = now;
    if (!s.bucket)
      s.bucket = std::make_unique<TokenBucket>(opt_.spam_refill_per_second, opt_.spam_burst);
    if (!s.bucket->try_take(now)) {
      ++dropped_;
      co_return ok();  // over the spam limit: dropped on purpose
    }
    if (!s.event_name.empty() && now - s.last_seen < opt_.series_window) {
      s.count++;
      s.last_seen = now;
      patch_name = s.event_name;
      patch_ns = s.event_namespace;
      count = s.count;
    } else {
      s.count = 1;
      s.last_seen = now;
      s.event_namespace = regarding.namespace_.empty() ? "default" : regarding.namespace_;
      s.event_name = fmt::format(
          "{}.{:x}", regarding.name.empty() ? "event" : regarding.name,
          std::chrono::duration_cast<std::chrono::nanoseconds>(now_sys.time_since_epoch()).count());
    }
  }
  if (!patch_name.empty()) {
    std::string patch = fmt::format(R"({{"series":{{"count":{},"lastObservedTime":{}}}}})", count,
                                    json::quote(format_micro_time(now_sys)));
    ResourceRef ref = events_ref(patch_ns).with_name(patch_name);
    auto r = co_await client_->patch(ref, PatchType::kMerge, std::move(patch));
    if (r || !is_not_found(r.error())) {
      if (!r) co_return unexpected(r.error());
      co_return ok();
    }
    // The event expired on the server: start a new one below.
    std::lock_guard lock(mu_);
    series_[key].event_name.clear();
    co_return co_await record(regarding, type, reason, action, note);
  }
  std::string ns = regarding.namespace_.empty() ? "default" : regarding.namespace_;
  std::string name;
  {
    std::lock_guard lock(mu_);
    name = series_[key].event_name;
  }
  std::string body = R"({"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":)" +
                     json::quote(name) + ",\"namespace\":" + json::quote(ns) + "}";
  body += ",\"eventTime\":" + json::quote(format_micro_time(now_sys));
  body += ",\"reportingController\":" + json::quote(opt_.reporting_controller);
  body += ",\"reportingInstance\":" + json::quote(truncate(opt_.reporting_instance, 128));
  body += ",\"action\":" + json::quote(truncate(action, 128));
  body += ",\"reason\":" + json::quote(truncate(reason, 128));
  body += ",\"type\":" + json::quote(type);
  body += ",\"note\":" + json::quote(note);
  body += ",\"regarding\":{\"kind\":" + json::quote(regarding.kind) +
          ",\"apiVersion\":" + json::quote(regarding.api_version) +
          ",\"namespace\":" + json::quote(regarding.namespace_) +
          ",\"name\":" + json::quote(regarding.name) + ",\"uid\":" + json::quote(regarding.uid) +
          "}}";
  ResourceRef ref = events_ref(ns);
  // The name is ours: a create repeated after a server error cannot record the event twice.
  WriteOptions named;
  named.named = true;
  auto r = co_await client_->create(ref, std::move(body), named);
  if (!r && is_already_exists(r.error())) co_return ok();  // an earlier attempt got through
  if (!r) {
    NVDRA_V(2, "event {} on {}/{} not recorded: {}", reason, regarding.namespace_, regarding.name,
            r.error().to_string());
    co_return unexpected(r.error());
  }
  co_return ok();
}

}  // namespace nvdra::k8s
