// Time as an injected dependency: code that waits, expires or backs off reads a Clock, so tests
// drive it with FakeClock instead of sleeping on wall time.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>

namespace nvdra {

class Clock {
 public:
  using steady_point = std::chrono::steady_clock::time_point;
  using system_point = std::chrono::system_clock::time_point;
  virtual ~Clock() = default;
  // For intervals and deadlines.
  virtual steady_point now() const = 0;
  // For timestamps shown to users or written into objects.
  virtual system_point system_now() const = 0;
};

class SystemClock final : public Clock {
 public:
  steady_point now() const override { return std::chrono::steady_clock::now(); }
  system_point system_now() const override { return std::chrono::system_clock::now(); }
  static SystemClock& instance() {
    static SystemClock clock;
    return clock;
  }
};

// A clock that moves only when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  FakeClock()
      : steady_(std::chrono::steady_clock::time_point(std::chrono::hours(1000))),
        system_(std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000))) {}
  steady_point now() const override {
    std::lock_guard lock(mu_);
    return steady_;
  }
  system_point system_now() const override {
    std::lock_guard lock(mu_);
    return system_;
  }
  void advance(std::chrono::nanoseconds d) {
    std::lock_guard lock(mu_);
    steady_ += d;
    system_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  }

 private:
  mutable std::mutex mu_;
  steady_point steady_;  // guarded by mu_
  system_point system_;  // guarded by mu_
};

}  // namespace nvdra
