// What a ComputeDomain turns into, as pure functions (no I/O): its spec read from the object, the
// objects the controller creates for it (workload and daemon ResourceClaimTemplates, the IMEX
// DaemonSet) and its status derived from the daemon pods. The reconciler (controller.h) decides
// when to write them.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/json.h"
#include "base/result.h"
#include "controller/placement/placement.h"

namespace nvdra::controller {

// NVIDIA's names (anchor §4.1): label on every object of a domain, its finalizer, the target label.
inline constexpr std::string_view kDomainLabel = "resource.nvidia.com/computeDomain";
inline constexpr std::string_view kTargetLabel = "resource.nvidia.com/computeDomainTarget";
inline constexpr std::string_view kFinalizer = "resource.nvidia.com/computeDomain";
inline constexpr std::string_view kDriver = "compute-domain.nvidia.com";
inline constexpr std::string_view kChannelClass = "compute-domain-default-channel.nvidia.com";
inline constexpr std::string_view kDaemonClass = "compute-domain-daemon.nvidia.com";
inline constexpr int kMaxNodesPerImexDomain = 18;

struct DomainSpec {
  std::string ns, name, uid, resource_version;
  int64_t generation = 0;
  std::string creation_timestamp;
  int num_nodes = 0;
  std::string template_name;
  std::string allocation_mode;  // "Single", "All" or "" (unset)
  placement::Policy policy = placement::Policy::kPreferSingleClique;
  int gpus_per_node = 1;
  std::vector<std::string> finalizers;
  // Why the spec cannot be acted on (for a condition and an Event); empty when it can. The CRD
  // schema rejects most such specs before they get here.
  std::string invalid;
};

// Reads a ComputeDomain; fails only on an object without name and UID.
Result<DomainSpec> parse_domain(const json::Value& cd);

// Where the controller puts the per-domain objects and what the daemon pods run.
struct DaemonSettings {
  std::string ns = "nvdra-system";
  std::string image = "nvdra:latest";
  std::string service_account = "nvdra-compute-domain-daemon";
  std::vector<std::string> command = {"nvdra-agent", "compute-domain-daemon"};
  int verbosity = 0;
  std::string feature_gates;
  std::vector<std::string> pull_secrets;  // the pods' imagePullSecrets
};

// computedomain-daemon-<uid>: the daemon ResourceClaimTemplate's and the DaemonSet's name.
std::string daemon_object_name(const std::string& uid);

// The workload ResourceClaimTemplate: one channel request narrowed to `cliques` (none: any node).
std::string workload_template_json(const DomainSpec& d, const std::vector<std::string>& cliques);
std::string daemon_template_json(const DomainSpec& d, const DaemonSettings& s);
std::string daemon_set_json(const DomainSpec& d, const DaemonSettings& s);
// The CEL selector the channel request gets for `cliques`.
std::string clique_selector(const std::vector<std::string>& cliques);

// One row of status.nodes.
struct NodeStatus {
  std::string name, ip, clique;
  int index = -1;
  bool ready = false;
  bool operator==(const NodeStatus&) const = default;
};

// A daemon pod as the status needs it.
struct DaemonPod {
  std::string node, ip;
  bool ready = false;
};

std::vector<NodeStatus> parse_status_nodes(const json::Value& cd);

// status.nodes from the domain's daemon pods: one row per node with a pod that has an IP. A node
// keeps the index it had in `previous` (same clique); new nodes take the lowest free index of
// their clique (0 … kMaxNodesPerImexDomain-1; -1 without a clique, or when the clique is full).
std::vector<NodeStatus> derive_nodes(const std::vector<DaemonPod>& pods,
                                     const std::map<std::string, std::string>& clique_of_node,
                                     const std::vector<NodeStatus>& previous);

// NVIDIA's global status: NotReady while fewer than numNodes rows exist or any row is NotReady.
bool domain_ready(const DomainSpec& d, const std::vector<NodeStatus>& nodes);

struct Condition {
  std::string type, status, reason, message;
};

// The placement part of the status.
struct PlacementStatus {
  std::vector<std::string> cliques;
  std::string reason;
};
std::optional<PlacementStatus> parse_placement_status(const json::Value& cd);

// The whole status object; conditions keep their lastTransitionTime while their status holds.
std::string status_json(const json::Value& cd, const DomainSpec& d,
                        const std::vector<NodeStatus>& nodes,
                        const std::optional<PlacementStatus>& placement,
                        const std::vector<Condition>& conditions, const std::string& now);

// The merge patch that makes the stored status (CURRENT, may be null) exactly WANTED.
std::string status_patch(const json::Value* current, const json::Value& wanted);

}  // namespace nvdra::controller
