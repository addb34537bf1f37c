#include "metrics/registry.h"

#include <prometheus/text_serializer.h>

namespace nvdra::metrics {

Registry::Registry() : registry_(std::make_shared<prometheus::Registry>()) {}

Family<Counter>& Registry::counter(const std::string& name, const std::string& help) {
  std::lock_guard lock(mu_);
  auto& f = counters_[name];
  if (f == nullptr) f = &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
  return *f;
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help) {
  std::lock_guard lock(mu_);
  auto& f = gauges_[name];
  if (f == nullptr) f = &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
  return *f;
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help) {
  std::lock_guard lock(mu_);
  auto& f = histograms_[name];
  if (f == nullptr) f = &prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
  return *f;
}

const Histogram::BucketBoundaries& Registry::latency_buckets() {
  static const Histogram::BucketBoundaries kBuckets{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return kBuckets;
}

const Histogram::BucketBoundaries& Registry::nvidia_request_buckets() {
  // prometheus.ExponentialBuckets(0.05, 2, 9): 50 ms doubling to 12.8 s.
  static const Histogram::BucketBoundaries kBuckets = [] {
    Histogram::BucketBoundaries b;
    for (double v = 0.05; b.size() < 9; v *= 2)
      b.push_back(v);
    return b;
  }();
  return kBuckets;
}

std::string Registry::serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

void HealthChecks::add_liveness(std::string name, Check check) {
  std::lock_guard lock(mu_);
  live_.emplace_back(std::move(name), std::move(check));
}

void HealthChecks::add_readiness(std::string name, Check check) {
  std::lock_guard lock(mu_);
  ready_.emplace_back(std::move(name), std::move(check));
}

HealthChecks::Report HealthChecks::run(const std::vector<std::pair<std::string, Check>>& checks) {
  Report r;
  for (const auto& [name, check] : checks) {
    std::string why = check();
    if (why.empty()) {
      r.text += "[+]" + name + " ok\n";
    } else {
      r.ok = false;
      r.text += "[-]" + name + " failed: " + why + "\n";
    }
  }
  r.text += r.ok ? "ok\n" : "check failed\n";
  return r;
}

HealthChecks::Report HealthChecks::liveness() const {
  std::lock_guard lock(mu_);
  return run(live_);
}

HealthChecks::Report HealthChecks::readiness() const {
  std::lock_guard lock(mu_);
  return run(ready_);
}

}  // namespace nvdra::metrics
