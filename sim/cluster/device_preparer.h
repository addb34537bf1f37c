// What a kubelet does with DRA drivers for its pods: before a pod starts, NodePrepareResources on
// every driver its allocated claims use (once per claim and node); when the last pod on the node
// using a claim ends, NodeUnprepareResources. Failures become Warning Events on the pod
// (FailedPrepareDynamicResources / FailedUnprepareDynamicResources) and are retried with backoff,
// as kubelet does. Calls run on worker threads; results come back through poll().
// It also wipes a driver's ResourceSlices 30 s after the driver goes away, and all of the node's
// slices when the kubelet starts.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "sim/cluster/cluster.h"
#include "sim/cluster/dra_plugins.h"
#include "sim/cluster/topology.h"

namespace nvdra::sim::cluster {

class DevicePreparer {
 public:
  using Steady = std::chrono::steady_clock;

  // Node `n`'s kubelet folder is <root>/<n>/var/lib/kubelet: plugins_registry/ and plugins/.
  DevicePreparer(Cluster& c, const std::string& root, const Topology& topology, int workers = 4);
  ~DevicePreparer();

  // Whether the devices of a pending pod are prepared (start it); otherwise preparation is under
  // way or waiting for a retry.
  bool ready(const std::string& pod_key, const Doc& pod, const std::string& node);
  // Whether a terminating pod's devices are released (remove it).
  bool released(const std::string& pod_key, const Doc& pod, const std::string& node);
  // Applies finished calls, scans plugin folders, wipes slices of vanished drivers; returns the
  // pods to look at again.
  std::set<std::string> poll(Steady::time_point now);
  // Kubelet start: the node's ResourceSlices are deleted (drivers republish them).
  void wipe_node_slices(const std::string& node, const std::string& driver);
  // The pod is gone: drop what was kept for it.
  void forget(const std::string& pod_key) { work_.erase(pod_key); }

 private:
  // Keyed by the pod's namespace/name; `pod_uid` tells a pod from a later one of the same name,
  // so that a call still in flight for a deleted pod cannot touch its successor's entry.
  struct Work {
    std::string pod_uid;
    bool in_flight = false;
    int failures = 0;
    Steady::time_point next_try{};
  };
  // The claims a pod uses that have results for some driver: driver → claims.
  std::map<std::string, std::vector<ClaimRef>> claims_by_driver(const Doc& pod,
                                                                bool* complete) const;
  void submit(std::function<std::function<void()>()> job);  // job returns its completion
  // Prepares (or unprepares) the claims of `by_driver` that are not `settled` yet; true when
  // nothing is left to do.
  bool converge(const std::string& pod_key, const Doc& pod, const std::string& node,
                std::map<std::string, std::vector<ClaimRef>> by_driver, bool prepare,
                const std::function<bool(const std::string&, const ClaimRef&)>& settled);

  // A failed call: an Event on the pod and the next try after backoff.
  void failed(Work& w, const Doc& pod, const std::string& node, const std::string& reason,
              const std::string& prefix, const std::vector<std::string>& errors);

  Cluster& c_;
  std::map<std::string, std::unique_ptr<DraPluginRegistry>> registries_;  // by node
  std::map<std::string, Work> work_;                                      // by pod key
  struct Prepared {
    std::string node;
    ClaimRef claim;
    std::set<std::string> drivers;
  };
  std::map<std::string, Prepared> prepared_;  // by "node/claim uid"
  std::string state_file_;                    // <root>/kubelet-dra-state.json
  void load_state();
  void save_state();
  bool is_prepared(const std::string& node, const std::string& uid, const std::string& driver);
  // Claims still prepared on a node although no pod there uses them (the pod vanished while its
  // preparation was in flight): unprepared, as kubelet's reconciler does.
  void release_orphans();
  Steady::time_point next_orphan_sweep_{};
  std::set<std::string> releasing_;  // prepared_ keys being released by the sweep
  Steady::time_point next_scan_{};
  bool scanning_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<std::function<void()>()>> jobs_;  // guarded by mu_
  std::vector<std::function<void()>> done_;                  // guarded by mu_
  bool stopping_ = false;                                    // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace nvdra::sim::cluster
