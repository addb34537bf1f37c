// kube-scheduler for nvdra-sim: places pending pods on nodes (node selector, required node
// affinity, taints and tolerations, Ready nodes, pod capacity) and allocates their ResourceClaims
// from the published ResourceSlices with the structured allocator, then writes what
// kube-scheduler writes: the claim's delete-protection finalizer, status.allocation and
// reservedFor, then the binding. Pods that do not fit stay Pending with PodScheduled=False and a
// message that says why.
#pragma once

#include <deque>
#include <map>
#include <set>

#include "sim/cluster/cluster.h"
#include "sim/dra/allocator.h"

namespace nvdra::sim::cluster {

// Why `node` cannot run a pod (or a pod template) with this spec: unschedulable or not Ready,
// node selector, required node affinity, untolerated NoSchedule/NoExecute taints. "" = it can.
std::string node_misfit(const json::Value& pod, const json::Value& node, const dra::NodeInfo& info);
dra::NodeInfo node_info(const std::string& name, const json::Value& node);

struct SchedulerStats {
  uint64_t scheduled = 0;
  uint64_t attempts = 0;
  std::vector<double> allocation_seconds;  // per scheduled pod: the allocator's time
};

struct SchedulerOptions {
  // How long a pod may wait for the resourceclaim controller before it is marked as waiting.
  std::chrono::milliseconds claim_grace{2000};
};

class Scheduler : public Controller {
 public:
  explicit Scheduler(Cluster& c, SchedulerOptions options = {}) : c_(c), options_(options) {}
  void observe(const std::string& storage_key, const std::string& key, const Doc& obj) override;
  void reconcile(std::chrono::steady_clock::time_point now) override;
  const SchedulerStats& stats() const { return stats_; }

 private:
  struct NodeState {
    dra::NodeInfo info;
    Doc obj;
    int64_t max_pods = 110;  // status.allocatable.pods, read once per node change
  };
  enum class Outcome { kScheduled, kUnschedulable, kLater };
  // Tries one pod; records why on the pod when it cannot be placed.
  Outcome schedule(const std::string& key, const Doc& pod);
  void unschedulable(const Doc& pod, const std::string& message);
  std::string misfit(const json::Value& pod, const NodeState& node) const;

  Cluster& c_;
  SchedulerOptions options_;
  dra::Inventory inventory_;
  std::map<std::string, dra::DeviceClass, std::less<>> classes_;
  std::set<dra::DeviceId> allocated_;
  std::map<std::string, std::vector<dra::DeviceId>> claim_devices_;  // claim key → its devices
  std::vector<NodeState> nodes_;
  bool nodes_dirty_ = true;
  std::map<std::string, int, std::less<>> pods_on_node_;  // bound pods not done, per node
  std::map<std::string, std::string> node_of_pod_;
  std::deque<std::string> pending_;           // pods in arrival order
  std::set<std::string> queued_;              // what pending_ holds
  std::map<std::string, uint64_t> tried_at_;  // pod → capacity generation of its last failure
  uint64_t capacity_generation_ = 0;          // bumped by anything that may free room
  size_t next_node_ = 0;                      // rotating start: consecutive pods spread out
  // Claims written in this round: the cache shows them only after the round, so pods sharing
  // them wait for the next one.
  std::set<std::string> claims_written_;
  using Steady = std::chrono::steady_clock;
  std::map<std::string, Steady::time_point> waiting_since_;  // pods whose claims do not exist yet
  SchedulerStats stats_;
};

}  // namespace nvdra::sim::cluster
