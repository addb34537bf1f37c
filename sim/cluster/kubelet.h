// Simulated kubelets, one per topology node: they register their Node (capacity, labels, taints,
// Ready) and renew its Lease; run the pods bound to them (Pending → Running and Ready; pods that
// do not restart complete after their run time, sim.nvdra.io/run-seconds, default 3 s); and end
// terminating pods, confirming the deletion once the pod is stopped. With a root folder they talk
// to the nodes' DRA drivers over gRPC (sim/cluster/device_preparer.h) before starting and after
// stopping pods; in --no-agents mode they publish the node's ResourceSlices themselves instead and
// prepare nothing.
#pragma once

#include <chrono>
#include <map>
#include <set>

#include "sim/cluster/cluster.h"
#include "sim/cluster/containers.h"
#include "sim/cluster/device_preparer.h"
#include "sim/cluster/topology.h"

namespace nvdra::sim::cluster {

inline constexpr std::string_view kRunSecondsAnnotation = "sim.nvdra.io/run-seconds";

struct KubeletOptions {
  bool publish_slices = true;  // --no-agents: the kubelets publish the devices themselves
  // Each node's kubelet folder is <root>/<node>/var/lib/kubelet (plugins_registry/, plugins/),
  // so that an agent started with --root <root>/<node> finds the usual paths. Empty: no DRA
  // drivers, pods start without preparing devices.
  std::string root;
  std::chrono::seconds lease_renew{40};
  std::chrono::milliseconds default_run_time{3000};
  // With both: containers whose command is an nvdra program run for real (containers.h).
  std::string bin_dir;
  KubeconfigFor kubeconfig_for;
};

class Kubelets : public Controller {
 public:
  Kubelets(Cluster& c, Topology topology, KubeletOptions options);
  // The node's machine goes away (decommissioned, or dead for good): its containers are killed,
  // its kubelet stops, and its Node and node Lease are deleted, as the cloud node controller
  // does. Its pods are left for the pod garbage collector. False for an unknown node.
  bool remove_machine(const std::string& node);
  void observe(const std::string& storage_key, const std::string& key, const Doc& obj) override;
  void reconcile(std::chrono::steady_clock::time_point now) override;

 private:
  void register_node(const NodeSpec& n);
  void renew_lease(const NodeSpec& n);
  void sync_pod(const std::string& key, std::chrono::steady_clock::time_point now);
  void start_pod(const Doc& pod, const NodeSpec& node, std::chrono::steady_clock::time_point now);
  // Runs the pod's real containers, if it has any; false when they could not start.
  bool start_containers(const Doc& pod, const NodeSpec& node,
                        std::chrono::steady_clock::time_point now, bool* ready);
  void set_ready(const std::string& key, bool ready);
  void finish_pod(const Doc& pod);

  Cluster& c_;
  Topology topology_;
  KubeletOptions options_;
  std::unique_ptr<DevicePreparer> devices_;                      // with a root folder
  std::unique_ptr<ContainerRunner> containers_;                  // with a root folder and bin_dir
  std::map<std::string, const NodeSpec*, std::less<>> by_name_;  // nodes still there
  std::set<std::string> removed_;                                // machines removed
  bool registered_ = false;
  std::set<std::string> dirty_pods_;
  std::map<std::string, std::chrono::steady_clock::time_point>
      finish_at_;  // pods that will complete
  std::map<std::string, std::chrono::steady_clock::time_point> lease_due_;  // node → next renewal
};

}  // namespace nvdra::sim::cluster
