#include "sim/cluster/topology.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "base/json.h"
#include "sim/cluster/node_slices.h"

namespace nvdra::sim::cluster {
namespace {

std::string error_of(std::string_view yaml) {
  auto t = parse_topology(yaml);
  EXPECT_FALSE(t.has_value()) << yaml;
  return t ? "" : t.error().message;
}

TEST(Topology, ShippedExamplesLoad) {
  const std::map<std::string, size_t> nodes = {{"demo", 12}, {"nvl72-2racks", 37}, {"mixed", 27}};
  for (const auto& [name, count] : nodes) {
    auto t =
        load_topology(std::string(NVDRA_SOURCE_DIR) + "/examples/topologies/" + name + ".yaml");
    ASSERT_TRUE(t) << name << ": " << t.error().message;
    EXPECT_EQ(t->nodes.size(), count) << name;
    for (const auto& n : t->nodes) {
      for (const auto& s : node_slices(n))
        EXPECT_TRUE(json::parse(s)) << n.name;
    }
  }
}

TEST(Topology, RacksAreCliquesWithLabels) {
  auto t = parse_topology(R"(
clusterUUID: 11111111-2222-3333-4444-555555555555
racks:
- {name: a, nodes: 2, gpusPerNode: 4, gpu: GB200}
- {name: b, nodes: 1, gpu: GB200, cliqueId: 7}
nodeGroups:
- {name: g, count: 1, gpus: 8, gpu: H200-141GB, labels: {pool: x}, taints: [{key: k, value: v, effect: NoExecute}], featureGates: PassthroughSupport=true}
)");
  ASSERT_TRUE(t) << t.error().message;
  ASSERT_EQ(t->nodes.size(), 5u);  // with the control-plane node
  EXPECT_EQ(t->nodes[0].name, "a-node-0");
  EXPECT_EQ(t->nodes[0].clique_id, "11111111-2222-3333-4444-555555555555.1");
  EXPECT_EQ(t->nodes[2].clique_id, "11111111-2222-3333-4444-555555555555.7");
  EXPECT_EQ(t->nodes[0].labels.at("nvidia.com/gpu.clique"), t->nodes[0].clique_id);
  EXPECT_EQ(t->nodes[0].labels.at("kubernetes.io/arch"), "arm64");
  EXPECT_EQ(t->nodes[3].labels.at("pool"), "x");
  EXPECT_EQ(t->nodes[3].labels.at("nvidia.com/gpu.product"), "NVIDIA-H200");
  ASSERT_EQ(t->nodes[3].taints.size(), 1u);
  EXPECT_EQ(t->nodes[3].taints[0].effect, "NoExecute");
  EXPECT_EQ(t->nodes[3].feature_gates, "PassthroughSupport=true");
  EXPECT_EQ(t->nodes[0].feature_gates, "");
  EXPECT_TRUE(t->nodes[3].clique_id.empty());
  EXPECT_EQ(t->nodes[4].name, "control-plane");
  EXPECT_EQ(t->nodes[4].gpus, 0);
  EXPECT_TRUE(node_slices(t->nodes[4]).empty());
}

TEST(Topology, BadInputIsACleanErrorNamingTheProblem) {
  EXPECT_NE(error_of("racks: [{name: a, nodes: 2, gpu: V100}]")
                .find("unknown gpu model V100 (known: A100-40GB"),
            std::string::npos);
  EXPECT_NE(error_of("nodeGroups: [{name: g, count: 0}]").find("g: count must be a whole number"),
            std::string::npos);
  EXPECT_NE(error_of("racks: [{name: a}]").find("a: nodes is required"), std::string::npos);
  EXPECT_NE(error_of("racks: [{name: x, nodes: 1}]\nnodeGroups: [{name: x-node, count: 1}]")
                .find("node x-node-0 appears twice"),
            std::string::npos);
  EXPECT_NE(error_of("nodeGroups: [{name: g, taints: [{key: k, effect: Sometimes}]}]")
                .find("taint effect Sometimes"),
            std::string::npos);
  EXPECT_NE(error_of("nodeGroups: [{name: g, mig: static}]").find("mig must be none or dynamic"),
            std::string::npos);
  EXPECT_NE(error_of("nodeGroups: [{name: g, featureGates: Warp=true}]")
                .find("g: featureGates: unrecognized feature gate: Warp"),
            std::string::npos);
  EXPECT_NE(error_of("nodeGroups: [{name: g, mig: dynamic, featureGates: PassthroughSupport=true}]")
                .find("DynamicMIG is currently mutually exclusive with PassthroughSupport"),
            std::string::npos);
  EXPECT_NE(error_of("name: empty").find("no racks or nodeGroups"), std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("must be a map"), std::string::npos);
  auto missing = load_topology("/nonexistent/topology.yaml");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("cannot be read"), std::string::npos);
}

TEST(Topology, DynamicMigPublishesEveryPlacementWithCounters) {
  auto t = parse_topology(
      "controlPlane: false\nnodeGroups: [{name: m, gpus: 1, gpu: A100-40GB, mig: dynamic}]");
  ASSERT_TRUE(t);
  auto slices = node_slices(t->nodes[0]);
  ASSERT_EQ(slices.size(), 1u);
  auto d = json::parse(slices[0]);
  ASSERT_TRUE(d);
  const json::Value* devices = json::find_path(*d, {"spec", "devices"});
  // The GPU plus 7 + 4 + 3 + 2 + 1 + 1 MIG placements of the A100 geometry.
  EXPECT_EQ(devices->Size(), 19u);
  EXPECT_STREQ((*devices)[0]["name"].GetString(), "gpu-0");  // sorted by name, as NVIDIA's
  bool found = false;
  for (const auto& dev : devices->GetArray())
    found = found || std::string_view(dev["name"].GetString()) == "gpu-0-mig-1g5gb-19-0";
  EXPECT_TRUE(found);
  EXPECT_TRUE(json::find_path(*d, {"spec", "sharedCounters"}));
}

}  // namespace
}  // namespace nvdra::sim::cluster
