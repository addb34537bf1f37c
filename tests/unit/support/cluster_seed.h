// What every simulated-cluster test starts from: the namespaces kubelets and pods need, and
// NVIDIA's DeviceClasses from manifests/.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "sim/cluster/cluster.h"
#include "sim/yaml_json.h"

namespace nvdra::testing {

inline void seed_cluster(sim::cluster::ClusterApi& api) {
  for (const char* ns : {"default", "kube-node-lease"}) {
    auto doc = json::parse(std::string(R"({"metadata":{"name":")") + ns + "\"}}");
    ASSERT_TRUE(api.create(sim::cluster::kNamespaces, "", std::move(*doc)));
  }
  std::ifstream in(std::string(NVDRA_MANIFESTS_DIR) + "/base/deviceclasses.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  auto classes = sim::parse_yaml_documents(ss.str());
  ASSERT_TRUE(classes);
  for (auto& d : *classes)
    ASSERT_TRUE(api.create(sim::cluster::kDeviceClasses, "", std::move(d)));
}

}  // namespace nvdra::testing
