// Metrics for one process: a prometheus-cpp registry that is passed to whoever records metrics
// (never a global), plus the liveness/readiness checks served next to it.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace nvdra::metrics {

using Labels = std::map<std::string, std::string>;
using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;
template <class T>
using Family = prometheus::Family<T>;

class Registry {
 public:
  Registry();

  // Families are created once per name; asking again returns the same family.
  Family<Counter>& counter(const std::string& name, const std::string& help);
  Family<Gauge>& gauge(const std::string& name, const std::string& help);
  Family<Histogram>& histogram(const std::string& name, const std::string& help);

  // Latency buckets in seconds (1 ms .. 60 s), the default for operation durations.
  static const Histogram::BucketBoundaries& latency_buckets();
  // NVIDIA's buckets for nvidia_dra_request_duration_seconds, so its dashboards read ours.
  static const Histogram::BucketBoundaries& nvidia_request_buckets();

  // Text exposition format 0.0.4.
  std::string serialize() const;
  std::shared_ptr<prometheus::Registry> raw() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::mutex mu_;
  std::map<std::string, Family<Counter>*> counters_;      // guarded by mu_
  std::map<std::string, Family<Gauge>*> gauges_;          // guarded by mu_
  std::map<std::string, Family<Histogram>*> histograms_;  // guarded by mu_
};

// Named checks behind /healthz (liveness) and /readyz (readiness). A check returns an empty string
// when healthy, else the reason. Thread-safe.
class HealthChecks {
 public:
  using Check = std::function<std::string()>;
  void add_liveness(std::string name, Check check);
  void add_readiness(std::string name, Check check);

  struct Report {
    bool ok = true;
    std::string text;  // "[+]name ok" / "[-]name failed: reason" lines, as kube-apiserver prints
  };
  Report liveness() const;
  Report readiness() const;

 private:
  static Report run(const std::vector<std::pair<std::string, Check>>& checks);
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, Check>> live_, ready_;  // guarded by mu_
};

}  // namespace nvdra::metrics
