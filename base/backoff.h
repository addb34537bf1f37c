// Exponential backoff with jitter and a cap, shared by the reflector, request retries and the
// leader elector. Pure arithmetic; the caller sleeps.
#pragma once

#include <chrono>
#include <random>

namespace nvdra {

class Backoff {
 public:
  using duration = std::chrono::nanoseconds;
  // initial: first delay; cap: largest delay; factor: growth per step; jitter: +[0, jitter*delay).
  Backoff(duration initial, duration cap, double factor = 2.0, double jitter = 0.0)
      : initial_(initial), cap_(cap), factor_(factor), jitter_(jitter), next_(initial) {}

  // The delay to wait now; the following call returns a longer one (up to the cap).
  duration next() {
    duration d = next_;
    next_ = std::min<duration>(cap_, duration(static_cast<int64_t>(next_.count() * factor_)));
    if (jitter_ > 0) {
      std::uniform_real_distribution<double> dist(0.0, jitter_);
      d += duration(static_cast<int64_t>(d.count() * dist(rng_)));
    }
    return d;
  }
  void reset() { next_ = initial_; }

 private:
  duration initial_, cap_;
  double factor_, jitter_;
  duration next_;
  std::minstd_rand rng_{std::random_device{}()};
};

}  // namespace nvdra
