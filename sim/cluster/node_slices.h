// The ResourceSlices nvdra-sim publishes for a node in --no-agents mode, in the layout NVIDIA's
// kubelet plugins use: pool = node name; gpu.nvidia.com with one slice of full GPUs, or with
// dynamic MIG one slice per GPU holding its counter set, the GPU and every MIG placement
// (the combined layout of a 1.34 API server with DRAPartitionableDevices); and for NVLink clique
// members a compute-domain.nvidia.com slice with channel-0 and daemon-0.
#pragma once

#include <string>
#include <vector>

#include "sim/cluster/topology.h"

namespace nvdra::sim::cluster {

inline constexpr std::string_view kSimDriverVersion = "570.158.1";
inline constexpr std::string_view kSimCudaDriverVersion = "12.8.0";

// ResourceSlice objects (resource.k8s.io/v1 JSON), named "<node>-<driver>-<n>".
std::vector<std::string> node_slices(const NodeSpec& node);

// A stable UUID for GPU `index` of a node (what NVML would report).
std::string gpu_uuid(const NodeSpec& node, int index);

}  // namespace nvdra::sim::cluster
