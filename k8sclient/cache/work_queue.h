// WorkQueue: keys of objects to reconcile (client-go's rate-limiting workqueue).
//
// Promises:
//  - a key is queued at most once however often it is added (de-duplication);
//  - a key is never handed to two workers at once: a key added while it is being processed is
//    marked dirty and queued again when done() is called ("dirty while processing");
//  - add_rate_limited() delays a key by max(per-item exponential backoff 5 ms * 2^n capped at
//    1000 s, an overall token bucket of 10/s with burst 100); forget() resets the per-item count;
//  - add_after() queues a key once its delay has passed;
//  - shut_down() wakes every waiter; get() then drains what is queued and returns nullopt.
// Time comes from the Clock, so tests step a FakeClock and call try_get().
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/asio.h"
#include "base/clock.h"
#include "base/token_bucket.h"

namespace nvdra::k8s {

struct RateLimiterOptions {
  std::chrono::nanoseconds item_base{std::chrono::milliseconds(5)};
  std::chrono::nanoseconds item_max{std::chrono::seconds(1000)};
  double overall_qps = 10;
  int overall_burst = 100;
};

class WorkQueue {
 public:
  using duration = std::chrono::nanoseconds;
  explicit WorkQueue(const Clock& clock = SystemClock::instance(), RateLimiterOptions rl = {});

  void add(const std::string& key);
  void add_after(const std::string& key, duration delay);
  void add_rate_limited(const std::string& key);
  // How long add_rate_limited would wait now (advances the limiter).
  duration when(const std::string& key);
  void forget(const std::string& key);
  int num_requeues(const std::string& key) const;

  // Next ready key without waiting; moves due delayed keys first.
  std::optional<std::string> try_get();
  // Waits for a key; nullopt once shut down and drained.
  awaitable<std::optional<std::string>> get();
  void done(const std::string& key);

  void shut_down();
  // Shuts down, then waits until every key handed out has been marked done (client-go's
  // ShutDownWithDrain): a graceful stop lets in-flight reconciles finish.
  awaitable<void> shut_down_with_drain(
      std::chrono::milliseconds poll = std::chrono::milliseconds(10));
  bool shutting_down() const;
  size_t processing_len() const;
  size_t len() const;          // queued and ready
  size_t waiting_len() const;  // delayed
  // Time the oldest ready key has waited (for the queue-latency metric).
  std::optional<duration> oldest_wait() const;

 private:
  struct Delayed {
    Clock::steady_point ready_at;
    std::string key;
    bool operator>(const Delayed& o) const { return ready_at > o.ready_at; }
  };
  void add_locked(const std::string& key);
  void promote_locked(Clock::steady_point now);
  void wake_waiters_locked();

  const Clock& clock_;
  RateLimiterOptions rl_;
  TokenBucket overall_;
  mutable std::mutex mu_;
  std::deque<std::string> queue_;                               // guarded by mu_
  std::unordered_map<std::string, Clock::steady_point> dirty_;  // guarded by mu_ (key -> added)
  std::unordered_set<std::string> processing_;                  // guarded by mu_
  std::priority_queue<Delayed, std::vector<Delayed>, std::greater<>> delayed_;  // guarded by mu_
  std::unordered_map<std::string, Clock::steady_point> delayed_at_;  // earliest per key; mu_
  std::unordered_map<std::string, int> failures_;                    // guarded by mu_
  std::vector<std::shared_ptr<net::steady_timer>> waiters_;          // guarded by mu_
  bool shutting_down_ = false;                                       // guarded by mu_
};

}  // namespace nvdra::k8s
