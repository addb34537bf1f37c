// Shared pieces of the agent tests: a ClusterAccess holding claims in memory, claim JSON, and a
// temporary node root with a simulated node description.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "agent/prepare/driver_state.h"
#include "base/json.h"

namespace nvdra::agent::testing {

class FakeCluster final : public ClusterAccess {
 public:
  Result<std::string> get_claim(const std::string& ns, const std::string& name) override {
    std::lock_guard lock(mu);
    auto it = claims.find(ns + "/" + name);
    if (it == claims.end())
      return unexpected(ErrorCode::kNotFound, "resourceclaims \"" + name + "\" not found");
    return it->second;
  }
  Result<std::string> get_compute_domain(const std::string& uid) override {
    std::lock_guard lock(mu);
    auto it = domains.find(uid);
    if (it == domains.end()) return unexpected(ErrorCode::kNotFound, "no such ComputeDomain");
    return it->second;
  }
  Status set_node_label(const std::string& key, const std::string& value) override {
    std::lock_guard lock(mu);
    auto it = labels.find(key);
    if (it != labels.end() && it->second != value)
      return unexpected(ErrorCode::kInvalidArgument,
                        "label already exists for a different ComputeDomain");
    labels[key] = value;
    return ok();
  }
  Status remove_node_label(const std::string& key, const std::string& value) override {
    std::lock_guard lock(mu);
    if (auto it = labels.find(key); it != labels.end() && it->second == value) labels.erase(it);
    return ok();
  }
  void warning_event(const std::string&, const std::string&, const std::string&, const std::string&,
                     const std::string& reason, const std::string&) override {
    std::lock_guard lock(mu);
    events.push_back(reason);
  }

  std::mutex mu;
  std::map<std::string, std::string> claims, domains, labels;
  std::vector<std::string> events;
};

struct Result_ {
  std::string request, device;
};

// A ResourceClaim with an allocation: results (request, device) for `driver` on pool "node-a",
// and opaque configs (JSON parameters) for `driver`, naming the first result's request.
inline std::string claim_json(const std::string& uid, const std::string& name,
                              const std::vector<Result_>& results,
                              const std::vector<std::string>& configs = {},
                              const std::string& driver = "gpu.nvidia.com",
                              const std::string& ns = "ns") {
  std::string r, c;
  for (const auto& x : results)
    r += fmt::format(R"({}{{"request":"{}","driver":"{}","pool":"node-a","device":"{}"}})",
                     r.empty() ? "" : ",", x.request, driver, x.device);
  for (const auto& p : configs)
    c += fmt::format(
        R"({}{{"source":"FromClaim","requests":["{}"],"opaque":{{"driver":"{}","parameters":{}}}}})",
        c.empty() ? "" : ",", results.front().request, driver, p);
  return fmt::format(
      R"({{"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaim","metadata":{{"namespace":"{}","name":"{}","uid":"{}"}},)"
      R"("status":{{"allocation":{{"devices":{{"results":[{}],"config":[{}]}}}}}}}})",
      ns, name, uid, r, c);
}

inline std::string temp_root(const std::string& tag) {
  static std::atomic<int> n{0};
  // Short: unix socket paths under it must stay below 108 bytes.
  auto p = std::filesystem::path("/tmp") / fmt::format("nva-{}-{}-{}", tag, ::getpid(), n++);
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

inline std::string write_node(const std::string& root, const std::string& yaml) {
  const std::string path = root + "/node.yaml";
  std::ofstream(path) << yaml;
  return path;
}

inline size_t count_files(const std::string& dir) {
  std::error_code ec;
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir, ec))
    ++n;
  return n;
}

}  // namespace nvdra::agent::testing
