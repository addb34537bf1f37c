// The ResourceSlices nvdra-sim publishes for a node in --no-agents mode: exactly what nvdra-agent
// publishes for the same simulated node (api/nvidia_devices), in the layout of the simulated API
// server (1.34: counter sets travel with the devices of their GPU).
#pragma once

#include <string>
#include <vector>

#include "sim/cluster/topology.h"

namespace nvdra::sim::cluster {

// ResourceSlice objects (resource.k8s.io/v1 JSON), named "<node>-<driver>-<n>".
std::vector<std::string> node_slices(const NodeSpec& node);

}  // namespace nvdra::sim::cluster
