// The control plane nvdra-sim runs next to its API server: controllers that follow every change
// in the store (in process, no HTTP) and write back through it, as kube-controller-manager and
// kube-scheduler do through kube-apiserver. One coroutine drives them all: it applies the new
// events to a parsed object cache, tells each controller what changed, then lets each reconcile.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/asio.h"
#include "base/cancel.h"
#include "base/json.h"
#include "sim/resource_types.h"
#include "sim/store.h"

namespace nvdra::sim::cluster {

using Doc = std::shared_ptr<const json::Document>;

// A kind the cluster follows: group/version/resource.
struct Kind {
  std::string group, version, resource;
  std::string storage_key() const { return group + "/" + resource; }
};

inline const Kind kNamespaces{"", "v1", "namespaces"};
inline const Kind kNodes{"", "v1", "nodes"};
inline const Kind kPods{"", "v1", "pods"};
inline const Kind kClaims{"resource.k8s.io", "v1", "resourceclaims"};
inline const Kind kClaimTemplates{"resource.k8s.io", "v1", "resourceclaimtemplates"};
inline const Kind kSlices{"resource.k8s.io", "v1", "resourceslices"};
inline const Kind kDeviceClasses{"resource.k8s.io", "v1", "deviceclasses"};
inline const Kind kReplicaSets{"apps", "v1", "replicasets"};
inline const Kind kDeployments{"apps", "v1", "deployments"};
inline const Kind kDaemonSets{"apps", "v1", "daemonsets"};
inline const Kind kJobs{"batch", "v1", "jobs"};
inline const Kind kMpiJobs{"kubeflow.org", "v2beta1", "mpijobs"};  // when its CRD is installed
inline const Kind kLeases{"coordination.k8s.io", "v1", "leases"};

// "ns/name" (or "name" for cluster-scoped objects), as the store keys them.
std::string object_key(std::string_view ns, std::string_view name);
std::string_view name_of(const json::Value& obj);
std::string_view namespace_of(const json::Value& obj);
std::string_view uid_of(const json::Value& obj);
bool terminating(const json::Value& obj);
// Appends a controller owner reference to `owner` (an object with apiVersion, kind and metadata)
// to obj.metadata.ownerReferences, as the owning controller writes it.
void add_controller_reference(json::Document& obj, const json::Value& owner);
// A new object from a template ({metadata: {labels, annotations}, spec}), as controllers stamp
// pods and claims: `name` (or generateName when `generate`), the template's labels, annotations
// and spec, and a controller reference to `owner`.
json::Document object_from_template(const json::Value& tmpl, const std::string& name, bool generate,
                                    const json::Value& owner);

// Parsed copies of the objects of every followed kind, by storage key and object key.
class ObjectCache {
 public:
  Doc get(const Kind& k, const std::string& key) const;
  const std::map<std::string, Doc>& all(const Kind& k) const;
  void put(const std::string& storage_key, const std::string& key, Doc d);
  void erase(const std::string& storage_key, const std::string& key);

 private:
  std::map<std::string, std::map<std::string, Doc>> objects_;
  static const std::map<std::string, Doc> kEmpty;
};

// Writes straight into the store, as the given kind's storage version.
class ClusterApi {
 public:
  ClusterApi(Store& store, const ResourceRegistry& registry) : store_(store), registry_(registry) {}
  // Null when the kind is not served (a CRD that is not installed).
  std::shared_ptr<const ResourceType> type(const Kind& k) const;
  Result<std::string> create(const Kind& k, const std::string& ns, json::Document obj);
  Result<std::string> modify(const Kind& k, const std::string& ns, const std::string& name,
                             bool status, const Store::Mutator& mutate);
  Result<std::string> remove(const Kind& k, const std::string& ns, const std::string& name,
                             const DeleteRequest& req);
  std::string now() const { return store_.now_rfc3339(); }
  // Records a core/v1 Event about a pod, as `component` (on `host`, "" for the control plane)
  // would: what `kubectl describe pod` lists. Best effort.
  void pod_event(const json::Value& pod, const std::string& type, const std::string& reason,
                 const std::string& message, const std::string& component, const std::string& host);
  Store& store() { return store_; }

 private:
  Store& store_;
  const ResourceRegistry& registry_;
};

class Controller {
 public:
  virtual ~Controller() = default;
  // `obj` is null when the object was deleted.
  virtual void observe(const std::string& storage_key, const std::string& key, const Doc& obj) = 0;
  // Acts on what changed since the last call, and on timers.
  virtual void reconcile(std::chrono::steady_clock::time_point now) = 0;
};

class Cluster {
 public:
  Cluster(Store& store, const ResourceRegistry& registry) : api_(store, registry) {}
  void add(std::unique_ptr<Controller> c) { controllers_.push_back(std::move(c)); }
  ObjectCache& cache() { return cache_; }
  ClusterApi& api() { return api_; }

  // Runs until cancelled. `tick` bounds how long timers (heartbeats, job run times) may wait.
  awaitable<void> run(Cancellation& cancel, std::chrono::milliseconds tick);
  // One round without waiting: apply new events, reconcile. For tests and benchmarks.
  void step();

 private:
  void resync();
  void apply(const StoreEvent& e);

  ClusterApi api_;
  ObjectCache cache_;
  std::vector<std::unique_ptr<Controller>> controllers_;
  int64_t rv_ = -1;  // -1: not synced yet
};

}  // namespace nvdra::sim::cluster
