#include "controller/compute_domain.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace nvdra::controller {
namespace {

using json::Value;

std::string labels_json(const DomainSpec& d, std::string_view target) {
  return fmt::format(R"({{{}:{},{}:{}}})", json::quote(kDomainLabel), json::quote(d.uid),
                     json::quote(kTargetLabel), json::quote(target));
}

// An exec probe running the daemon's `check` subcommand.
std::string check_probe(const DaemonSettings& s, int period, int failures) {
  std::vector<std::string> argv = s.command;
  argv.push_back("check");
  return fmt::format(
      R"({{"exec":{{"command":{}}},"periodSeconds":{},"timeoutSeconds":10,"failureThreshold":{}}})",
      json::quote_array(argv), period, failures);
}

std::string field_env(std::string_view name, std::string_view path) {
  return fmt::format(R"({{"name":"{}","valueFrom":{{"fieldRef":{{"fieldPath":"{}"}}}}}})", name,
                     path);
}

// ,"imagePullSecrets":[...] or nothing.
std::string pull_secrets_json(const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string refs;
  for (const auto& n : names)
    refs += fmt::format(R"({}{{"name":{}}})", refs.empty() ? "" : ",", json::quote(n));
  return fmt::format(R"(,"imagePullSecrets":[{}])", refs);
}
}  // namespace

Result<DomainSpec> parse_domain(const Value& cd) {
  DomainSpec d;
  const Value* meta = json::find(cd, "metadata");
  if (!meta) return unexpected(ErrorCode::kInvalidArgument, "object has no metadata");
  d.ns = json::string_or(*meta, "namespace");
  d.name = json::string_or(*meta, "name");
  d.uid = json::string_or(*meta, "uid");
  d.resource_version = json::string_or(*meta, "resourceVersion");
  d.generation = json::get_int(*meta, "generation").value_or(0);
  d.creation_timestamp = json::string_or(*meta, "creationTimestamp");
  if (d.name.empty() || d.uid.empty())
    return unexpected(ErrorCode::kInvalidArgument, "object has no name or UID");
  if (const Value* f = json::find(*meta, "finalizers"); f && f->IsArray()) {
    for (const auto& v : f->GetArray())
      if (v.IsString()) d.finalizers.emplace_back(v.GetString(), v.GetStringLength());
  }
  auto invalid = [&d](std::string why) {
    d.invalid = std::move(why);
    return d;
  };
  const Value* spec = json::find(cd, "spec");
  if (!spec || !spec->IsObject()) return invalid("spec: Required value");
  if (const Value* n = json::find(*spec, "numNodes")) {
    if (!n->IsInt64() || n->GetInt64() < 0 || n->GetInt64() > 100000)
      return invalid("spec.numNodes: must be a whole number of nodes, 0 or more");
    d.num_nodes = static_cast<int>(n->GetInt64());
  }
  const Value* tmpl = json::find_path(*spec, {"channel", "resourceClaimTemplate"});
  d.template_name = tmpl ? std::string(json::string_or(*tmpl, "name")) : "";
  if (d.template_name.empty())
    return invalid("spec.channel.resourceClaimTemplate.name: Required value");
  if (const Value* ch = json::find(*spec, "channel")) {
    d.allocation_mode = json::string_or(*ch, "allocationMode");
    if (!d.allocation_mode.empty() && d.allocation_mode != "Single" && d.allocation_mode != "All")
      return invalid(
          fmt::format("spec.channel.allocationMode: Unsupported value: \"{}\": "
                      "supported values: \"All\", \"Single\"",
                      d.allocation_mode));
  }
  if (const Value* p = json::find(*spec, "placement"); p && p->IsObject()) {
    const std::string_view policy = json::string_or(*p, "policy", "PreferSingleClique");
    if (policy == "PreferSingleClique") {
      d.policy = placement::Policy::kPreferSingleClique;
    } else if (policy == "SingleClique") {
      d.policy = placement::Policy::kSingleClique;
    } else if (policy == "None") {
      d.policy = placement::Policy::kNone;
    } else {
      return invalid(
          fmt::format("spec.placement.policy: Unsupported value: \"{}\": supported "
                      "values: \"PreferSingleClique\", \"SingleClique\", \"None\"",
                      policy));
    }
    if (auto g = json::get_int(*p, "gpusPerNode")) {
      if (*g < 1 || *g > 1024) return invalid("spec.placement.gpusPerNode: must be 1 or more");
      d.gpus_per_node = static_cast<int>(*g);
    }
  }
  return d;
}

std::string daemon_object_name(const std::string& uid) {
  return "computedomain-daemon-" + uid;
}

std::string clique_selector(const std::vector<std::string>& cliques) {
  // Guarded: reading an attribute a device lacks (nodes without a fabric) is a CEL error, which
  // would fail the whole allocation rather than skip the device.
  const std::string domain = fmt::format(R"(device.attributes["{}"])", kDriver);
  const std::string guard = fmt::format(R"("cliqueID" in {} && )", domain);
  if (cliques.size() == 1)
    return fmt::format("{}{}.cliqueID == {}", guard, domain, json::quote(cliques.front()));
  return fmt::format("{}{}.cliqueID in {}", guard, domain, json::quote_array(cliques));
}

std::string workload_template_json(const DomainSpec& d, const std::vector<std::string>& cliques) {
  std::string selectors;
  if (!cliques.empty())
    selectors = fmt::format(R"(,"selectors":[{{"cel":{{"expression":{}}}}}])",
                            json::quote(clique_selector(cliques)));
  std::string mode;
  if (!d.allocation_mode.empty())
    mode = fmt::format(R"(,"allocationMode":{})", json::quote(d.allocation_mode));
  // Same namespace as the domain, so it can be owned by it (garbage-collected with it).
  return fmt::format(
      R"({{"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaimTemplate","metadata":{{"name":{},)"
      R"("namespace":{},"labels":{},"ownerReferences":[{{"apiVersion":"resource.nvidia.com/v1beta1",)"
      R"("kind":"ComputeDomain","name":{},"uid":{},"controller":true,"blockOwnerDeletion":true}}]}},)"
      R"("spec":{{"spec":{{"devices":{{"requests":[{{"name":"channel","exactly":{{"deviceClassName":{})"
      R"({}}}}}],"config":[{{"requests":["channel"],"opaque":{{"driver":{},"parameters":{{)"
      R"("apiVersion":"resource.nvidia.com/v1beta1","kind":"ComputeDomainChannelConfig",)"
      R"("domainID":{}{}}}}}}}]}}}}}}}})",
      json::quote(d.template_name), json::quote(d.ns), labels_json(d, "Workload"),
      json::quote(d.name), json::quote(d.uid), json::quote(kChannelClass), selectors,
      json::quote(kDriver), json::quote(d.uid), mode);
}

std::string daemon_template_json(const DomainSpec& d, const DaemonSettings& s) {
  return fmt::format(
      R"({{"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaimTemplate","metadata":{{"name":{},)"
      R"("namespace":{},"labels":{}}},"spec":{{"spec":{{"devices":{{"requests":[{{"name":"daemon",)"
      R"("exactly":{{"deviceClassName":{}}}}}],"config":[{{"requests":["daemon"],"opaque":{{)"
      R"("driver":{},"parameters":{{"apiVersion":"resource.nvidia.com/v1beta1",)"
      R"("kind":"ComputeDomainDaemonConfig","domainID":{}}}}}}}]}}}}}}}})",
      json::quote(daemon_object_name(d.uid)), json::quote(s.ns), labels_json(d, "Daemon"),
      json::quote(kDaemonClass), json::quote(kDriver), json::quote(d.uid));
}

std::string daemon_set_json(const DomainSpec& d, const DaemonSettings& s) {
  const std::string name = daemon_object_name(d.uid);
  const std::string label = fmt::format("{{{}:{}}}", json::quote(kDomainLabel), json::quote(d.uid));
  std::vector<std::string> argv = s.command;
  for (const std::string& a :
       {std::string("--compute-domain"), d.uid, std::string("-v"), std::to_string(s.verbosity)})
    argv.push_back(a);
  const std::string env = fmt::format(
      R"([{},{},{},{},{},{{"name":"MAX_NODES_PER_IMEX_DOMAIN","value":"{}"}},)"
      R"({{"name":"NVIDIA_VISIBLE_DEVICES","value":"void"}},{{"name":"FEATURE_GATES","value":{}}}])",
      field_env("NODE_NAME", "spec.nodeName"), field_env("POD_IP", "status.podIP"),
      field_env("POD_NAME", "metadata.name"), field_env("POD_NAMESPACE", "metadata.namespace"),
      field_env("POD_UID", "metadata.uid"), kMaxNodesPerImexDomain, json::quote(s.feature_gates));
  // Tolerates every taint: a daemon is never evicted from under its workloads (as upstream).
  return fmt::format(
      R"({{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{{"name":{0},"namespace":{1},)"
      R"("labels":{2}}},"spec":{{"selector":{{"matchLabels":{2}}},"template":{{"metadata":{{)"
      R"("labels":{2}}},"spec":{{"serviceAccountName":{3},"nodeSelector":{2},"tolerations":[)"
      R"({{"operator":"Exists","effect":"NoSchedule"}},{{"operator":"Exists","effect":"NoExecute"}},)"
      R"({{"operator":"Exists","effect":"PreferNoSchedule"}}],"containers":[{{)"
      R"("name":"compute-domain-daemon","image":{4},"command":{5},"env":{6},)"
      R"("resources":{{"claims":[{{"name":"compute-domain-daemon"}}]}},)"
      // As root whatever the image's user: the daemon writes the IMEX configuration into the
      // domain folder the claim mounts and maps its peers in the pod's /etc/hosts, files root
      // owns, so no capability is needed; its devices come from the claim's CDI spec.
      R"("securityContext":{{"runAsUser":0,"runAsGroup":0,"allowPrivilegeEscalation":false,)"
      R"("capabilities":{{"drop":["ALL"]}},"seccompProfile":{{"type":"RuntimeDefault"}}}},)"
      R"("startupProbe":{7},"readinessProbe":{8},"livenessProbe":{9}}}],)"
      R"("resourceClaims":[{{"name":"compute-domain-daemon","resourceClaimTemplateName":{0}}}]{10}}}}}}}}})",
      json::quote(name), json::quote(s.ns), label, json::quote(s.service_account),
      json::quote(s.image), json::quote_array(argv), env, check_probe(s, 1, 1200),
      check_probe(s, 10, 1), check_probe(s, 60, 20), pull_secrets_json(s.pull_secrets));
}

std::vector<NodeStatus> parse_status_nodes(const Value& cd) {
  std::vector<NodeStatus> out;
  const Value* nodes = json::find_path(cd, {"status", "nodes"});
  if (!nodes || !nodes->IsArray()) return out;
  for (const auto& n : nodes->GetArray()) {
    if (!n.IsObject()) continue;
    out.push_back({std::string(json::string_or(n, "name")),
                   std::string(json::string_or(n, "ipAddress")),
                   std::string(json::string_or(n, "cliqueID")),
                   static_cast<int>(json::get_int(n, "index").value_or(-1)),
                   json::string_or(n, "status") == "Ready"});
  }
  return out;
}

std::vector<NodeStatus> derive_nodes(const std::vector<DaemonPod>& pods,
                                     const std::map<std::string, std::string>& clique_of_node,
                                     const std::vector<NodeStatus>& previous) {
  std::map<std::string, NodeStatus> rows;  // by node name: sorted output
  for (const auto& p : pods) {
    if (p.node.empty() || p.ip.empty()) continue;
    auto c = clique_of_node.find(p.node);
    NodeStatus& r = rows[p.node];
    r.name = p.node;
    r.ip = p.ip;
    r.clique = c == clique_of_node.end() ? "" : c->second;
    r.ready = r.ready || p.ready;  // a replacement pod beside a terminating one
  }
  // Indices: kept from the previous status where still valid, else the lowest free one.
  std::map<std::string, std::set<int>> taken;  // clique → indices
  std::map<std::string, int> kept;
  for (const auto& prev : previous) {
    auto r = rows.find(prev.name);
    if (r == rows.end() || r->second.clique.empty() || prev.clique != r->second.clique) continue;
    if (prev.index < 0 || prev.index >= kMaxNodesPerImexDomain) continue;
    if (!taken[prev.clique].insert(prev.index).second) continue;
    kept[prev.name] = prev.index;
  }
  std::vector<NodeStatus> out;
  for (auto& [name, r] : rows) {
    if (r.clique.empty()) {
      r.index = -1;
    } else if (auto k = kept.find(name); k != kept.end()) {
      r.index = k->second;
    } else {
      auto& used = taken[r.clique];
      r.index = -1;
      for (int i = 0; i < kMaxNodesPerImexDomain; ++i) {
        if (used.insert(i).second) {
          r.index = i;
          break;
        }
      }
    }
    out.push_back(r);
  }
  return out;
}

bool domain_ready(const DomainSpec& d, const std::vector<NodeStatus>& nodes) {
  if (static_cast<int>(nodes.size()) < d.num_nodes) return false;
  return std::all_of(nodes.begin(), nodes.end(), [](const NodeStatus& n) { return n.ready; });
}

std::optional<PlacementStatus> parse_placement_status(const Value& cd) {
  const Value* p = json::find_path(cd, {"status", "placement"});
  if (!p || !p->IsObject()) return std::nullopt;
  PlacementStatus out;
  out.reason = json::string_or(*p, "reason");
  if (const Value* c = json::find(*p, "cliques"); c && c->IsArray()) {
    for (const auto& v : c->GetArray())
      if (v.IsString()) out.cliques.emplace_back(v.GetString(), v.GetStringLength());
  }
  return out;
}

std::string status_json(const Value& cd, const DomainSpec& d, const std::vector<NodeStatus>& nodes,
                        const std::optional<PlacementStatus>& placement,
                        const std::vector<Condition>& conditions, const std::string& now) {
  // Conditions are edited on a copy of the current ones so transition times carry over.
  json::Document doc;
  doc.SetObject();
  auto& a = doc.GetAllocator();
  Value& st = json::ensure_object(doc, "status", a);
  if (const Value* old = json::find_path(cd, {"status", "conditions"}); old && old->IsArray())
    st.AddMember("conditions", Value(*old, a), a);
  json::ensure_array(st, "conditions", a);
  for (const auto& c : conditions)
    json::set_condition(doc, c.type, c.status, c.reason, c.message, now);
  Value& conds = doc["status"]["conditions"];
  for (auto& c : conds.GetArray())
    json::set_int(c, "observedGeneration", d.generation, a);
  std::string rows;
  for (const auto& n : nodes) {
    rows += fmt::format(R"({}{{"name":{},"ipAddress":{},"cliqueID":{},"index":{},"status":"{}"}})",
                        rows.empty() ? "" : ",", json::quote(n.name), json::quote(n.ip),
                        json::quote(n.clique), n.index, n.ready ? "Ready" : "NotReady");
  }
  std::string place;
  if (placement)
    place = fmt::format(R"(,"placement":{{"cliques":{},"reason":{}}})",
                        json::quote_array(placement->cliques), json::quote(placement->reason));
  // No rows: no `nodes` field at all, as NVIDIA's controller writes it (its tests check that).
  const std::string node_rows = rows.empty() ? "" : fmt::format(R"(,"nodes":[{}])", rows);
  return fmt::format(R"({{"status":{}{}{},"conditions":{}}})",
                     json::quote(domain_ready(d, nodes) ? "Ready" : "NotReady"), node_rows, place,
                     json::write(conds));
}

std::string status_patch(const Value* current, const Value& wanted) {
  json::Document patch;
  patch.SetObject();
  auto& a = patch.GetAllocator();
  Value status(wanted, a);
  // A merge patch keeps what it does not name: fields the new status drops are nulled.
  if (current && current->IsObject() && status.IsObject())
    for (const auto& m : current->GetObject())
      if (!status.HasMember(m.name)) status.AddMember(Value(m.name, a), Value(), a);
  patch.AddMember("status", status, a);
  return json::write(patch);
}

}  // namespace nvdra::controller
