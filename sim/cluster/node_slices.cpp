#include "sim/cluster/node_slices.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>

#include "base/json.h"

namespace nvdra::sim::cluster {
namespace {

std::string slice_json(const NodeSpec& node, std::string_view driver, int n, int count,
                       const std::string& devices, const std::string& counters) {
  std::string name = fmt::format("{}-{}-{}", node.name, driver, n);
  std::replace(name.begin(), name.end(), '.', '-');
  return fmt::format(
      R"({{"apiVersion":"resource.k8s.io/v1","kind":"ResourceSlice","metadata":{{"name":{}}},)"
      R"("spec":{{"driver":{},"nodeName":{},"pool":{{"name":{},"generation":1,"resourceSliceCount":{}}},)"
      R"("devices":[{}]{}}}}})",
      json::quote(name), json::quote(driver), json::quote(node.name), json::quote(node.name), count,
      devices, counters.empty() ? "" : R"(,"sharedCounters":[)" + counters + "]");
}

std::string gpu_attributes(const NodeSpec& node, int i) {
  const api::GpuModel& m = *node.gpu;
  return fmt::format(
      R"("type":{{"string":"gpu"}},"uuid":{{"string":{}}},"index":{{"int":{}}},"minor":{{"int":{}}},)"
      R"("productName":{{"string":{}}},"brand":{{"string":{}}},"architecture":{{"string":{}}},)"
      R"("cudaComputeCapability":{{"version":"{}.0"}},"driverVersion":{{"version":"{}"}},)"
      R"("cudaDriverVersion":{{"version":"{}"}},"resource.kubernetes.io/pciBusID":{{"string":"0000:{:02x}:00.0"}},)"
      R"("resource.kubernetes.io/pcieRoot":{{"string":"pci0000:{:02x}"}})",
      json::quote(gpu_uuid(node, i)), i, i, json::quote(m.product_name), json::quote(m.brand),
      json::quote(m.architecture), m.compute_capability, kSimDriverVersion, kSimCudaDriverVersion,
      0x10 + i * 0x10, i / 4 * 0x40);
}

std::string memory_slices(int start, int count) {
  std::string out;
  for (int s = start; s < start + count; ++s)
    out += fmt::format(R"({}"memory-slice-{}":{{"value":"1"}})", out.empty() ? "" : ",", s);
  return out;
}

}  // namespace

std::string gpu_uuid(const NodeSpec& node, int index) {
  const size_t h = std::hash<std::string>{}(node.name);
  return fmt::format("GPU-{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", static_cast<uint32_t>(h),
                     node.ordinal & 0xffff, index & 0xfff, (h >> 32) & 0xfff,
                     (static_cast<uint64_t>(node.ordinal) << 8) | index);
}

std::vector<std::string> node_slices(const NodeSpec& node) {
  std::vector<std::string> out;
  if (!node.gpu || node.gpus == 0) return out;
  const api::GpuModel& m = *node.gpu;
  if (!node.dynamic_mig || m.mig_profiles.empty()) {
    std::string devices;
    for (int i = 0; i < node.gpus; ++i) {
      devices += fmt::format(
          R"({}{{"name":"gpu-{}","attributes":{{{}}},"capacity":{{"memory":{{"value":"{}Mi"}}}}}})",
          devices.empty() ? "" : ",", i, gpu_attributes(node, i), m.memory_mib);
    }
    out.push_back(slice_json(node, "gpu.nvidia.com", 0, 1, devices, ""));
  } else {
    for (int i = 0; i < node.gpus; ++i) {
      const std::string set = fmt::format("gpu-{}-counter-set", i);
      const std::string counters = fmt::format(
          R"({{"name":"{}","counters":{{"multiprocessors":{{"value":"{}"}},"memory":{{"value":"{}Mi"}},{}}}}})",
          set, m.multiprocessors, m.memory_mib, memory_slices(0, 8));
      std::string devices = fmt::format(
          R"({{"name":"gpu-{0}","attributes":{{{1}}},"capacity":{{"memory":{{"value":"{2}Mi"}}}},)"
          R"("consumesCounters":[{{"counterSet":"{3}","counters":{{"multiprocessors":{{"value":"{4}"}},"memory":{{"value":"{2}Mi"}},{5}}}}}]}})",
          i, gpu_attributes(node, i), m.memory_mib, set, m.multiprocessors, memory_slices(0, 8));
      for (const auto& p : m.mig_profiles) {
        const int sms = m.multiprocessors * p.compute_slices / 7;
        for (int start : p.placements) {
          devices += fmt::format(
              R"(,{{"name":"gpu-{0}-mig-{1}-{2}-{3}","attributes":{{"type":{{"string":"mig"}},"profile":{{"string":"{4}"}},)"
              R"("parentUUID":{{"string":{5}}},"index":{{"int":{0}}},"productName":{{"string":{6}}},"architecture":{{"string":{7}}},)"
              R"("cudaComputeCapability":{{"version":"{8}.0"}},"driverVersion":{{"version":"{9}"}}}},)"
              R"("capacity":{{"memory":{{"value":"{10}Mi"}},"multiprocessors":{{"value":"{11}"}}}},)"
              R"("consumesCounters":[{{"counterSet":"{12}","counters":{{"multiprocessors":{{"value":"{11}"}},"memory":{{"value":"{10}Mi"}},{13}}}}}]}})",
              i, api::profile_token(p.name), p.gi_profile_id, start, p.name,
              json::quote(gpu_uuid(node, i)), json::quote(m.product_name),
              json::quote(m.architecture), m.compute_capability, kSimDriverVersion, p.memory_mib,
              sms, set, memory_slices(start, p.memory_slices));
        }
      }
      out.push_back(slice_json(node, "gpu.nvidia.com", i, node.gpus, devices, counters));
    }
  }
  if (!node.clique_id.empty()) {
    const std::string attrs =
        fmt::format(R"("id":{{"int":0}},"cliqueID":{{"string":{}}})", json::quote(node.clique_id));
    out.push_back(slice_json(
        node, "compute-domain.nvidia.com", 0, 1,
        fmt::format(R"({{"name":"channel-0","attributes":{{"type":{{"string":"channel"}},{0}}}}},)"
                    R"({{"name":"daemon-0","attributes":{{"type":{{"string":"daemon"}},{0}}}}})",
                    attrs),
        ""));
  }
  return out;
}

}  // namespace nvdra::sim::cluster
