// The ComputeDomain controller: informers on ComputeDomains, the objects it creates for them
// (ResourceClaimTemplates, DaemonSets), the daemon pods, labelled Nodes, ResourceSlices and
// ResourceClaims; a work queue of domain keys; and the reconcile that brings one domain to its
// desired state:
//  - living domain: finalizer, placement onto NVLink cliques, daemon ResourceClaimTemplate and
//    IMEX DaemonSet (driver namespace), workload ResourceClaimTemplate (domain namespace, channel
//    request narrowed to the chosen cliques), then the status;
//  - deleted domain: the owned objects and node labels removed, then the finalizer.
// The controller is the only writer of ComputeDomain status. Events about a domain's pods or
// objects queue its key with a short delay, so a burst of changes becomes one status write.
// An orphan sweep at start and every sweep period removes objects and labels of vanished domains.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/asio.h"
#include "base/cancel.h"
#include "controller/compute_domain.h"
#include "controller/placement/placement.h"
#include "k8sclient/cache/event_recorder.h"
#include "k8sclient/cache/informer.h"
#include "k8sclient/cache/work_queue.h"
#include "k8sclient/rest/rest_client.h"
#include "metrics/registry.h"

namespace nvdra::controller {

struct ControllerOptions {
  DaemonSettings daemon;
  int workers = 4;
  // How long a domain waits in the queue after an event about its pods or objects, so that a
  // burst of such events becomes one reconcile and one status write.
  std::chrono::milliseconds coalesce{200};
  std::chrono::seconds sweep_period{600};
  std::string identity;  // reporting instance of Events
  k8s::ReflectorOptions reflector;
};

class Controller {
 public:
  Controller(std::shared_ptr<k8s::RestClient> client, ControllerOptions options,
             metrics::Registry& registry);
  ~Controller();

  // Runs until `cancel` fires, then lets in-flight reconciles finish.
  awaitable<void> run(Cancellation* cancel);
  bool synced() const { return synced_.load(); }

 private:
  struct Domain;  // what the controller keeps about one domain between reconciles
  enum class Outcome { kDone, kRequeue, kRetryLater };

  void add_informer_handlers();
  bool all_synced() const;
  void enqueue_domain_uid(std::string_view uid, bool coalesce);
  void enqueue_waiting();

  // Runs `task` as a child of run(), which returns only after every child has ended.
  void spawn_child(net::any_io_executor ex, awaitable<void> task);
  awaitable<void> child(awaitable<void> task);
  awaitable<void> worker(Cancellation* cancel);
  awaitable<void> housekeeping(Cancellation* cancel);
  awaitable<Outcome> reconcile(std::string key);
  awaitable<Outcome> reconcile_live(k8s::ObjectPtr obj, DomainSpec d);
  awaitable<Outcome> finalize(DomainSpec d);
  awaitable<void> sweep_orphans();

  // The placement decision for a domain whose workload template is still to be created.
  std::optional<PlacementStatus> decide_placement(const DomainSpec& d, std::vector<Condition>& c);
  void refresh_inventory_locked();
  std::map<std::string, std::string> clique_of_node();
  std::vector<DaemonPod> daemon_pods(const std::string& uid) const;

  // Writes: create-if-absent, delete-if-present, finalizer and label edits.
  awaitable<Status> ensure_created(k8s::ResourceRef ref, std::string body);
  awaitable<Status> delete_object(k8s::ResourceRef ref, std::string uid);
  awaitable<Status> unlabel_node(std::string node, std::string uid);
  awaitable<Status> set_finalizers(DomainSpec d, std::vector<std::string> finalizers);
  awaitable<Status> write_status(DomainSpec d, std::string patch);  // status_patch()
  awaitable<void> event(DomainSpec d, std::string type, std::string reason, std::string note);

  std::shared_ptr<k8s::RestClient> client_;
  ControllerOptions opt_;
  k8s::EventRecorder events_;
  k8s::WorkQueue queue_;
  std::shared_ptr<k8s::Informer> domains_, templates_, daemon_sets_, pods_, nodes_, slices_,
      claims_;
  std::atomic<bool> synced_{false};
  std::atomic<int> children_{0};
  std::atomic<bool> inventory_dirty_{true};
  std::atomic<bool> sweep_requested_{false};

  mutable std::mutex mu_;
  placement::Placer placer_;                              // guarded by mu_
  std::map<std::string, std::string> node_clique_;        // guarded by mu_
  std::map<std::string, std::unique_ptr<Domain>> state_;  // by uid; guarded by mu_

  struct Metrics;
  std::unique_ptr<Metrics> m_;
};

}  // namespace nvdra::controller
