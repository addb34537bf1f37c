// The resourceclaim controller of kube-controller-manager: creates each pod's claims from its
// ResourceClaimTemplates (generated names, the pod-claim-name annotation, a controller owner
// reference, pod.status.resourceClaimStatuses), drops reservedFor entries of pods that are gone or
// done, deallocates claims nobody reserves, and deletes generated claims whose pod is done.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "sim/cluster/cluster.h"

namespace nvdra::sim::cluster {

inline constexpr std::string_view kDeleteProtection = "resource.kubernetes.io/delete-protection";
inline constexpr std::string_view kPodClaimNameAnnotation = "resource.kubernetes.io/pod-claim-name";

// Whether a pod has finished (its devices may be released).
bool pod_done(const json::Value& pod);

// A pod's claims in the order of pod.spec.resourceClaims, as "ns/name" keys; a generated claim not
// yet recorded in pod.status.resourceClaimStatuses is "?<pod claim name>".
std::vector<std::string> pod_claim_keys(const json::Value& pod);

class ClaimController : public Controller {
 public:
  explicit ClaimController(Cluster& c) : c_(c) {}
  void observe(const std::string& storage_key, const std::string& key, const Doc& obj) override;
  void reconcile(std::chrono::steady_clock::time_point now) override;

 private:
  void sync_pod(const std::string& key);
  void sync_claim(const std::string& key);

  Cluster& c_;
  std::set<std::string> dirty_pods_, dirty_claims_;
  // Pods waiting for a template; retried when templates change.
  std::set<std::string> waiting_pods_;
  // Generated claims by owner pod uid, and the reverse, so that pods find their claims quickly.
  std::map<std::string, std::set<std::string>> claims_of_pod_;
  std::map<std::string, std::string> pod_of_claim_;
  // Which pods (by uid) each claim is reserved for, and the reverse.
  std::map<std::string, std::vector<std::string>> reserved_for_;
  std::map<std::string, std::set<std::string>> reserving_;
  std::map<std::string, std::string> uid_of_pod_;  // pod key → uid, to index a deleted pod
  std::string gone_uid(const std::string& pod_key) const;
};

}  // namespace nvdra::sim::cluster
