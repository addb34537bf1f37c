// A simulated cluster's shape, read from a topology file (examples/topologies/*.yaml):
//
//   name: demo
//   clusterUUID: 7f3c…            # optional; the NVLink fabric's cluster UUID
//   racks:                        # NVLink cliques: every node of a rack shares one cliqueID
//   - {name: nvl72-a, nodes: 18, gpusPerNode: 4, gpu: GB200}
//   nodeGroups:                   # plain GPU nodes
//   - {name: dgx-h100, count: 2, gpus: 8, gpu: H100-80GB, mig: dynamic,
//      labels: {pool: train}, taints: [{key: dedicated, value: ml, effect: NoSchedule}]}
#pragma once

#include <map>
#include <string>
#include <vector>

#include "api/gpu_models.h"
#include "base/result.h"

namespace nvdra::sim::cluster {

struct NodeTaint {
  std::string key, value, effect;
};

struct NodeSpec {
  std::string name;
  int ordinal = 0;  // position in the cluster: addresses and device identities derive from it
  const api::GpuModel* gpu = nullptr;
  int gpus = 0;
  bool dynamic_mig = false;
  std::string rack;
  std::string clique_id;  // "<clusterUUID>.<cliqueID>" for rack members, else ""
  std::map<std::string, std::string> labels;
  std::vector<NodeTaint> taints;
  std::string feature_gates;  // the node agent's --feature-gates ("" = its defaults)
};

struct Topology {
  std::string name;
  std::vector<NodeSpec> nodes;
};

Result<Topology> parse_topology(std::string_view yaml);
Result<Topology> load_topology(const std::string& path);

}  // namespace nvdra::sim::cluster
