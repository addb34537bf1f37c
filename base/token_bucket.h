// Token bucket arithmetic (rate r per second, capacity b), the shape of client-go's QPS/burst
// limiter and of the workqueue's overall limiter. Pure: callers pass the time and sleep for the
// delay returned. Thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>

namespace nvdra {

class TokenBucket {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::nanoseconds;

  TokenBucket(double rate_per_second, int burst) : rate_(rate_per_second), burst_(burst) {
    tokens_ = burst_;
  }

  // Takes one token, possibly on credit: returns how long the caller must wait before going
  // ahead (zero when a token was free). Reservations queue in order.
  duration reserve(time_point now) {
    std::lock_guard lock(mu_);
    if (rate_ <= 0) return duration::zero();  // unlimited
    refill_locked(now);
    tokens_ -= 1.0;
    if (tokens_ >= 0) return duration::zero();
    return std::chrono::duration_cast<duration>(std::chrono::duration<double>(-tokens_ / rate_));
  }

  // Takes a token only if one is free now (no borrowing): for callers that drop work instead of
  // waiting.
  bool try_take(time_point now) {
    std::lock_guard lock(mu_);
    if (rate_ <= 0) return true;
    refill_locked(now);
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

  double rate() const { return rate_; }
  int burst() const { return burst_; }

 private:
  void refill_locked(time_point now) {
    if (!last_) {
      last_ = now;
      return;
    }
    double elapsed = std::chrono::duration<double>(now - *last_).count();
    if (elapsed > 0) {
      tokens_ = std::min<double>(burst_, tokens_ + elapsed * rate_);
      last_ = now;
    }
  }

  std::mutex mu_;
  double rate_;
  int burst_;
  double tokens_;                   // guarded by mu_; negative = reservations on credit
  std::optional<time_point> last_;  // guarded by mu_
};

}  // namespace nvdra
