// Keeps one driver's ResourceSlices for this node equal to what the agent wants published, the
// way the Kubernetes resourceslice controller does (k8s-protocol.md §2.5): slices matched by
// device names, a pool generation bump when more than one slice changes, obsolete slices
// deleted with UID preconditions, new ones created with the Node as owner. It watches its own
// slices, so a slice deleted by someone else (kubelet wipes them on restart) comes back.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "api/nvidia_devices.h"
#include "base/asio.h"
#include "k8sclient/cache/informer.h"
#include "k8sclient/rest/rest_client.h"

namespace nvdra::agent {

// JSON with object keys sorted and server-set fields (taint timeAdded) dropped, so a slice read
// back from the API server compares equal to the one written.
std::string canonical_json(const json::Value& v);

class SlicePublisher {
 public:
  SlicePublisher(std::shared_ptr<k8s::RestClient> client, std::string driver, std::string node,
                 std::string node_uid);

  void set_desired(std::vector<api::SliceContent> slices);
  awaitable<void> run(Cancellation* cancel);

  size_t published() const { return published_.load(); }
  const std::string& driver() const { return driver_; }

 private:
  awaitable<Status> sync();

  std::shared_ptr<k8s::RestClient> client_;
  std::string driver_, node_, node_uid_;
  std::shared_ptr<k8s::Informer> informer_;
  std::mutex mu_;
  std::vector<api::SliceContent> desired_;  // guarded by mu_
  std::atomic<bool> dirty_{true};
  std::set<std::string> pending_;  // created names the watch has not shown yet; mu_
  std::chrono::steady_clock::time_point pending_since_;  // guarded by mu_
  // Per slice name: the resourceVersion our last write got back and the content it wrote.
  std::map<std::string, std::pair<std::string, std::string>> written_;
  int64_t last_generation_ = 0;  // generations only grow, even when every slice was deleted
  std::atomic<size_t> published_{0};
};

}  // namespace nvdra::agent
