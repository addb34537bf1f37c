#include "sim/cluster/node_slices.h"

#include <fmt/format.h>

#include <algorithm>

#include "api/nvidia_devices.h"

namespace nvdra::sim::cluster {

std::vector<std::string> node_slices(const NodeSpec& node) {
  std::vector<std::string> out;
  if (!node.gpu || node.gpus == 0) return out;
  const api::NodeDevices devices =
      api::simulated_node_devices(node.name, *node.gpu, node.gpus, node.clique_id);
  auto add = [&](std::string_view driver, const std::vector<api::SliceContent>& slices) {
    for (size_t i = 0; i < slices.size(); ++i) {
      std::string name = fmt::format("{}-{}-{}", node.name, driver, i);
      std::replace(name.begin(), name.end(), '.', '-');
      out.push_back(api::resource_slice_json(driver, node.name, name, false, 1, slices.size(),
                                             slices[i], ""));
    }
  };
  api::SliceLayout layout;
  layout.dynamic_mig = node.dynamic_mig;
  add(api::kGpuDriver, api::gpu_slices(devices, layout));
  if (!node.clique_id.empty()) add(api::kComputeDomainDriver, api::compute_domain_slices(devices));
  return out;
}

}  // namespace nvdra::sim::cluster
