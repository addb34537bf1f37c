// EventRecorder: writes events.k8s.io/v1 Events about objects, so `kubectl describe` and
// `kubectl get events` show what nvdra did and why something failed.
//
// Repeats of the same event (same object, type, reason, action and note) within the series
// window are folded into one Event whose series.count and lastObservedTime grow (one PATCH instead
// of a new object). Each distinct event key has a token bucket (burst 25, one token per 5 min, as
// client-go's spam filter) so a hot loop cannot flood the API server; events over the limit are
// dropped and counted. Keys idle past the series window and the bucket's refill time are
// forgotten, so a long-running process does not keep every event it ever recorded.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "base/asio.h"
#include "base/clock.h"
#include "base/result.h"
#include "base/token_bucket.h"
#include "k8sclient/rest/rest_client.h"

namespace nvdra::k8s {

struct ObjectReference {
  std::string kind;
  std::string api_version;
  std::string namespace_;
  std::string name;
  std::string uid;
  static ObjectReference of(const Object& o) {
    return {o.kind(), o.api_version(), std::string(o.namespace_()), std::string(o.name()),
            std::string(o.uid())};
  }
};

struct EventRecorderOptions {
  std::string reporting_controller = "nvdra.nvidia.com/controller";
  std::string reporting_instance;
  std::chrono::seconds series_window{360};
  int spam_burst = 25;
  double spam_refill_per_second = 1.0 / 300.0;
};

class EventRecorder {
 public:
  EventRecorder(std::shared_ptr<RestClient> client, EventRecorderOptions options,
                const Clock& clock = SystemClock::instance());

  // type: "Normal" or "Warning". The note is truncated to 1 kB as the API requires.
  awaitable<Status> record(const ObjectReference& regarding, std::string_view type,
                           std::string_view reason, std::string_view action, std::string_view note);

  int dropped() const;
  size_t series_count() const;  // event keys remembered (bounded by pruning)

 private:
  struct Series {
    std::string event_name;
    std::string event_namespace;
    int count = 1;
    Clock::steady_point last_seen;     // last event recorded (folding)
    Clock::steady_point last_attempt;  // last record() call, dropped ones too (spam limit)
    std::unique_ptr<TokenBucket> bucket;
  };

  // Forgets keys idle long enough that forgetting changes nothing; at most once per window.
  void prune_locked(Clock::steady_point now);

  std::shared_ptr<RestClient> client_;
  EventRecorderOptions opt_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Series> series_;  // guarded by mu_
  int dropped_ = 0;                                 // guarded by mu_
  Clock::steady_point next_prune_{};                // guarded by mu_
};

}  // namespace nvdra::k8s
