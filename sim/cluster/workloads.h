// The workload controllers of kube-controller-manager that nvdra's users rely on: ReplicaSets
// (and Deployments through them), Jobs, DaemonSets, and kubeflow.org/v2beta1 MPIJobs when that CRD
// is installed. Pods carry a controller owner reference, so garbage collection removes them with
// their owner.
#pragma once

#include <map>
#include <set>

#include "sim/cluster/cluster.h"

namespace nvdra::sim::cluster {

// Follows which pods each owner controls; the base of every workload controller.
class WorkloadController : public Controller {
 public:
  void observe(const std::string& storage_key, const std::string& key, const Doc& obj) override;
  void reconcile(std::chrono::steady_clock::time_point now) override;

 protected:
  WorkloadController(Cluster& c, const Kind& kind) : c_(c), kind_(kind) {}
  // Brings one owner (its key, its object) to its desired state.
  virtual void sync(const std::string& key, const Doc& owner) = 0;
  // Other changes that concern owners of this kind (nodes for DaemonSets).
  virtual void observe_other(const std::string&, const std::string&, const Doc&) {}

  // The pods the owner controls, by key (terminating ones included).
  std::vector<Doc> pods_of(const Doc& owner) const;
  // Creates a pod from a pod template; `name` empty = generateName "<owner>-".
  void create_pod(const Doc& owner, const json::Value& tmpl, const std::string& name,
                  const std::map<std::string, std::string>& extra_labels,
                  const std::string& pin_to_node);
  void delete_pod(const Doc& pod);
  // Writes `status` (a JSON object) as the owner's status when it differs.
  void write_status(const Doc& owner, const std::string& status);
  void mark_all_dirty();

  Cluster& c_;
  const Kind& kind_;
  std::set<std::string> dirty_;

 private:
  std::map<std::string, std::set<std::string>> pods_by_owner_;  // owner uid → pod keys
  std::map<std::string, std::string> owner_of_pod_;             // pod key → owner uid
  std::map<std::string, std::string> key_of_owner_;             // owner uid → owner key
};

bool pod_ready(const json::Value& pod);
bool pod_active(const json::Value& pod);  // neither done nor terminating

class ReplicaSetController : public WorkloadController {
 public:
  explicit ReplicaSetController(Cluster& c) : WorkloadController(c, kReplicaSets) {}

 protected:
  void sync(const std::string& key, const Doc& owner) override;
};

class DeploymentController : public WorkloadController {
 public:
  explicit DeploymentController(Cluster& c) : WorkloadController(c, kDeployments) {}

 protected:
  void sync(const std::string& key, const Doc& owner) override;
  void observe_other(const std::string& storage_key, const std::string& key,
                     const Doc& obj) override;
};

class JobController : public WorkloadController {
 public:
  explicit JobController(Cluster& c) : WorkloadController(c, kJobs) {}

 protected:
  void sync(const std::string& key, const Doc& owner) override;
};

class DaemonSetController : public WorkloadController {
 public:
  explicit DaemonSetController(Cluster& c) : WorkloadController(c, kDaemonSets) {}

 protected:
  void sync(const std::string& key, const Doc& owner) override;
  void observe_other(const std::string& storage_key, const std::string& key,
                     const Doc& obj) override;
};

class MpiJobController : public WorkloadController {
 public:
  explicit MpiJobController(Cluster& c) : WorkloadController(c, kMpiJobs) {}

 protected:
  void sync(const std::string& key, const Doc& owner) override;
};

// kube-controller-manager's pod garbage collector, for orphans: a pod bound to a node that no
// longer exists is deleted at once (grace 0) once the node has been gone for `quarantine`
// (kube-controller-manager waits 40 s), so that its claims are released and its owner replaces it.
class PodGarbageCollector : public Controller {
 public:
  explicit PodGarbageCollector(Cluster& c,
                               std::chrono::milliseconds quarantine = std::chrono::seconds(2))
      : c_(c), quarantine_(quarantine) {}
  void observe(const std::string& storage_key, const std::string& key, const Doc& obj) override;
  void reconcile(std::chrono::steady_clock::time_point now) override;

 private:
  Cluster& c_;
  std::chrono::milliseconds quarantine_;
  std::map<std::string, std::chrono::steady_clock::time_point>
      gone_since_;  // node → first seen gone
  bool dirty_ = true;
};

}  // namespace nvdra::sim::cluster
