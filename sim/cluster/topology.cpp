#include "sim/cluster/topology.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "agent/config/opaque_config.h"
#include "sim/yaml_json.h"

namespace nvdra::sim::cluster {
namespace {

using json::Value;

Unexpected<Error> bad(std::string msg) {
  return unexpected(ErrorCode::kInvalidArgument, "topology: " + std::move(msg));
}

Result<int64_t> positive(const Value& v, const char* field, std::string_view where, int64_t def) {
  const Value* f = json::find(v, field);
  if (!f) {
    if (def > 0) return def;
    return bad(fmt::format("{}: {} is required", where, field));
  }
  if (!f->IsInt64() || f->GetInt64() < 1 || f->GetInt64() > 100'000)
    return bad(fmt::format("{}: {} must be a whole number between 1 and 100000", where, field));
  return f->GetInt64();
}

Status common(const Value& v, std::string_view where, NodeSpec& n) {
  const std::string model(json::string_or(v, "gpu", "H100-80GB"));
  n.gpu = api::find_gpu_model(model);
  if (!n.gpu) {
    std::string known;
    for (const auto& id : api::gpu_model_ids())
      known += (known.empty() ? "" : ", ") + id;
    return bad(fmt::format("{}: unknown gpu model {} (known: {})", where, model, known));
  }
  const std::string mig(json::string_or(v, "mig", "none"));
  if (mig != "none" && mig != "dynamic")
    return bad(fmt::format("{}: mig must be none or dynamic", where));
  n.dynamic_mig = mig == "dynamic";
  n.feature_gates = std::string(json::string_or(v, "featureGates"));
  auto gates = agent::FeatureGates::parse(n.feature_gates);
  if (gates && n.dynamic_mig) gates->dynamic_mig = true;  // what the agent runs with there
  Status valid = gates ? gates->validate() : unexpected(gates.error());
  if (!valid) return bad(fmt::format("{}: featureGates: {}", where, valid.error().message));
  if (const Value* labels = json::find(v, "labels")) {
    if (!labels->IsObject()) return bad(fmt::format("{}: labels must be a map", where));
    for (auto m = labels->MemberBegin(); m != labels->MemberEnd(); ++m) {
      if (!m->value.IsString())
        return bad(fmt::format("{}: label {} must be a string", where, m->name.GetString()));
      n.labels[m->name.GetString()] = m->value.GetString();
    }
  }
  if (const Value* taints = json::find(v, "taints")) {
    if (!taints->IsArray()) return bad(fmt::format("{}: taints must be a list", where));
    for (const auto& t : taints->GetArray()) {
      NodeTaint taint{std::string(json::string_or(t, "key")),
                      std::string(json::string_or(t, "value")),
                      std::string(json::string_or(t, "effect", "NoSchedule"))};
      if (taint.key.empty()) return bad(fmt::format("{}: a taint needs a key", where));
      if (taint.effect != "NoSchedule" && taint.effect != "NoExecute" &&
          taint.effect != "PreferNoSchedule")
        return bad(
            fmt::format("{}: taint effect {} is not NoSchedule, PreferNoSchedule or NoExecute",
                        where, taint.effect));
      n.taints.push_back(std::move(taint));
    }
  }
  return ok();
}

void standard_labels(NodeSpec& n) {
  n.labels.emplace("kubernetes.io/hostname", n.name);
  n.labels.emplace("kubernetes.io/os", "linux");
  n.labels.emplace("kubernetes.io/arch",
                   n.gpu && n.gpu->architecture == "Blackwell" ? "arm64" : "amd64");
  if (!n.gpu) return;
  std::string product = n.gpu->product_name;
  std::replace(product.begin(), product.end(), ' ', '-');
  n.labels.emplace("nvidia.com/gpu.present", "true");
  n.labels.emplace("nvidia.com/gpu.product", product);
  n.labels.emplace("nvidia.com/gpu.count", std::to_string(n.gpus));
  if (!n.clique_id.empty()) n.labels.emplace("nvidia.com/gpu.clique", n.clique_id);
}

}  // namespace

Result<Topology> parse_topology(std::string_view yaml) {
  auto doc = parse_json_or_yaml(yaml);
  if (!doc) return bad(doc.error().message);
  if (!doc->IsObject()) return bad("the file must be a map");
  Topology t;
  t.name = std::string(json::string_or(*doc, "name", "nvdra-sim"));
  const std::string cluster_uuid(
      json::string_or(*doc, "clusterUUID", "5c3a1d2e-8f4b-4e6a-9b7c-0d1e2f3a4b5c"));
  std::set<std::string> names;
  auto add = [&](NodeSpec n) -> Status {
    if (!names.insert(n.name).second) return bad("node " + n.name + " appears twice");
    n.ordinal = static_cast<int>(t.nodes.size());
    standard_labels(n);
    t.nodes.push_back(std::move(n));
    return ok();
  };
  int clique = 0;
  if (const Value* racks = json::find(*doc, "racks")) {
    if (!racks->IsArray()) return bad("racks must be a list");
    for (const auto& r : racks->GetArray()) {
      const std::string rack(json::string_or(r, "name"));
      if (rack.empty()) return bad("a rack needs a name");
      auto count = positive(r, "nodes", rack, 0);
      if (!count) return unexpected(count.error());
      auto gpus = positive(r, "gpusPerNode", rack, 4);
      if (!gpus) return unexpected(gpus.error());
      ++clique;
      const int64_t clique_number = json::get_int(r, "cliqueId").value_or(clique);
      for (int64_t i = 0; i < *count; ++i) {
        NodeSpec n;
        n.name = fmt::format("{}-node-{}", rack, i);
        n.rack = rack;
        n.gpus = static_cast<int>(*gpus);
        n.clique_id = fmt::format("{}.{}", cluster_uuid, clique_number);
        if (auto s = common(r, rack, n); !s) return unexpected(s.error());
        n.labels.emplace("topology.nvdra.io/rack", rack);
        if (auto s = add(std::move(n)); !s) return unexpected(s.error());
      }
    }
  }
  if (const Value* groups = json::find(*doc, "nodeGroups")) {
    if (!groups->IsArray()) return bad("nodeGroups must be a list");
    for (const auto& g : groups->GetArray()) {
      const std::string group(json::string_or(g, "name"));
      if (group.empty()) return bad("a node group needs a name");
      auto count = positive(g, "count", group, 1);
      if (!count) return unexpected(count.error());
      auto gpus = positive(g, "gpus", group, 8);
      if (!gpus) return unexpected(gpus.error());
      for (int64_t i = 0; i < *count; ++i) {
        NodeSpec n;
        n.name = fmt::format("{}-{}", group, i);
        n.gpus = static_cast<int>(*gpus);
        if (auto s = common(g, group, n); !s) return unexpected(s.error());
        if (auto s = add(std::move(n)); !s) return unexpected(s.error());
      }
    }
  }
  if (t.nodes.empty()) return bad("no racks or nodeGroups: the cluster would have no nodes");
  // A control-plane node without GPUs, as kind clusters have (NVIDIA's MPI launchers ask for it).
  if (json::get_bool(*doc, "controlPlane").value_or(true)) {
    NodeSpec cp;
    cp.name = "control-plane";
    cp.labels.emplace("node-role.kubernetes.io/control-plane", "");
    if (auto s = add(std::move(cp)); !s) return unexpected(s.error());
  }
  return t;
}

Result<Topology> load_topology(const std::string& path) {
  std::ifstream in(path);
  if (!in) return unexpected(ErrorCode::kNotFound, "topology file " + path + " cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  auto t = parse_topology(ss.str());
  if (!t) return unexpected(t.error().wrap(path));
  return t;
}

}  // namespace nvdra::sim::cluster
