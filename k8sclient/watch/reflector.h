// Reflector: keeps a local copy of one resource in step with the API server (client-go's
// reflector). It lists (paginated; or a watch-list with sendInitialEvents when the server supports
// it), then watches from the list's resourceVersion, and:
//  - resumes the watch from the last resourceVersion seen (event or bookmark) when a stream ends
//    or drops, so no event is missed or delivered twice;
//  - relists when the server says the resourceVersion is too old (410 Gone / Expired);
//  - backs off between failures (800 ms doubling to 30 s, with jitter; reset after 2 min of
//  health);
//  - asks for randomized watch timeouts in [min, 2*min) as client-go does, to spread reconnects.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/asio.h"
#include "base/cancel.h"
#include "base/clock.h"
#include "base/result.h"
#include "k8sclient/rest/rest_client.h"
#include "k8sclient/watch/watch_decoder.h"

namespace nvdra::k8s {

// The subset of the API a reflector needs (tests provide fakes).
class ListerWatcher {
 public:
  virtual ~ListerWatcher() = default;
  virtual awaitable<Result<ObjectList>> list(ListOptions options) = 0;
  virtual awaitable<Status> watch(ListOptions options, BodyCallback on_body,
                                  Cancellation* cancel) = 0;
};

// A ListerWatcher over a RestClient for one resource and selection.
class RestListerWatcher final : public ListerWatcher {
 public:
  RestListerWatcher(std::shared_ptr<RestClient> client, ResourceRef ref,
                    std::string label_selector = {}, std::string field_selector = {});
  awaitable<Result<ObjectList>> list(ListOptions options) override;
  awaitable<Status> watch(ListOptions options, BodyCallback on_body, Cancellation* cancel) override;

 private:
  std::shared_ptr<RestClient> client_;
  ResourceRef ref_;
  std::string label_selector_, field_selector_;
};

// Where a reflector delivers what it learns.
class ReflectorSink {
 public:
  virtual ~ReflectorSink() = default;
  // The complete current state (after a list or the initial events of a watch-list).
  virtual void replace(std::vector<ObjectPtr> objects, const std::string& resource_version) = 0;
  virtual void added(ObjectPtr obj) = 0;
  virtual void modified(ObjectPtr obj) = 0;
  virtual void deleted(ObjectPtr obj) = 0;
};

struct ReflectorOptions {
  bool use_watch_list = true;  // try sendInitialEvents; fall back to LIST when refused
  int64_t page_size = 500;
  std::chrono::seconds min_watch_timeout{300};
  std::chrono::milliseconds backoff_initial{800};
  std::chrono::milliseconds backoff_cap{30'000};
  std::chrono::seconds backoff_reset_after{120};
  std::string name = "reflector";  // for logs
};

struct ReflectorStats {
  std::atomic<int> lists{0};
  std::atomic<int> watch_lists{0};
  std::atomic<int> watches{0};
  std::atomic<int> relists_after_gone{0};
  std::atomic<int> events{0};
};

class Reflector {
 public:
  Reflector(std::shared_ptr<ListerWatcher> lw, ReflectorSink& sink, ReflectorOptions options = {},
            const Clock& clock = SystemClock::instance());

  // Runs until `cancel` fires.
  awaitable<void> run(Cancellation* cancel);

  const std::string& last_resource_version() const { return last_rv_; }
  const ReflectorStats& stats() const { return stats_; }

 private:
  enum class WatchEnd { kResume, kRelist, kBackoff, kCancelled };
  awaitable<Status> list_and_replace();
  // One watch stream; `initial` = a watch-list whose initial events end in a bookmark.
  awaitable<WatchEnd> watch_once(Cancellation* cancel, bool initial);
  int64_t watch_timeout_seconds();

  std::shared_ptr<ListerWatcher> lw_;
  ReflectorSink& sink_;
  ReflectorOptions opt_;
  const Clock& clock_;
  std::string last_rv_;
  bool watch_list_supported_;
  bool initial_received_ = false;  // the current watch-list delivered its initial state
  ReflectorStats stats_;
};

}  // namespace nvdra::k8s
