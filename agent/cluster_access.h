// ClusterAccess over the Kubernetes REST client: the blocking calls kubelet's gRPC threads make
// (claims, ComputeDomains, this node's labels, Events), run on the agent's io_context.
#pragma once

#include <memory>

#include "agent/prepare/driver_state.h"
#include "k8sclient/cache/event_recorder.h"
#include "k8sclient/rest/rest_client.h"

namespace nvdra::agent {

class RestClusterAccess final : public ClusterAccess {
 public:
  RestClusterAccess(net::any_io_executor executor, std::shared_ptr<k8s::RestClient> client,
                    std::string node_name);

  Result<std::string> get_claim(const std::string& ns, const std::string& name) override;
  Result<std::string> get_compute_domain(const std::string& uid) override;
  Status set_node_label(const std::string& key, const std::string& value) override;
  Status remove_node_label(const std::string& key, const std::string& value) override;
  void warning_event(const std::string& kind, const std::string& ns, const std::string& name,
                     const std::string& uid, const std::string& reason,
                     const std::string& message) override;

 private:
  template <class T>
  T wait(awaitable<T> a);
  awaitable<Status> edit_label(std::string key, std::string value, bool remove);
  awaitable<void> record_event(k8s::ObjectReference ref, std::string reason, std::string message);

  net::any_io_executor executor_;
  std::shared_ptr<k8s::RestClient> client_;
  std::string node_;
  k8s::EventRecorder events_;
};

}  // namespace nvdra::agent
