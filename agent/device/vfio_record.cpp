#include "agent/device/vfio_record.h"

#include <fmt/format.h>

#include <filesystem>

#include "base/atomic_file.h"
#include "base/json.h"

namespace nvdra::agent {

// What describes a GPU while NVML cannot see it; MIG profiles are left out (a GPU is passed
// through only outside MIG mode, and NVML lists them again once it is given back).
std::string encode_vfio_record(const VfioRecord& bound) {
  std::string out = R"({"kind":"NvdraVfioBound","gpus":[)";
  bool first = true;
  for (const auto& [bus, g] : bound) {
    out += fmt::format(
        R"({}{{"pciBusID":{},"index":{},"minor":{},"uuid":{},"productName":{},"brand":{},)"
        R"("architecture":{},"cudaComputeCapability":{},"pcieRoot":{},"addressingMode":{},)"
        R"("memoryBytes":{},"multiprocessors":{},"migCapable":{},"cliqueID":{},)"
        R"("pciDeviceID":{},"numaNode":{},"iommuGroup":{}}})",
        first ? "" : ",", json::quote(bus), g.index, g.minor, json::quote(g.uuid),
        json::quote(g.product_name), json::quote(g.brand), json::quote(g.architecture),
        json::quote(g.cuda_compute_capability), json::quote(g.pcie_root),
        json::quote(g.addressing_mode), g.memory_bytes, g.multiprocessors,
        g.mig_capable ? "true" : "false", json::quote(g.clique_id), g.pci_device_id, g.numa_node,
        g.iommu_group);
    first = false;
  }
  return out + "]}\n";
}

Result<VfioRecord> decode_vfio_record(std::string_view text) {
  auto doc = json::parse(text);
  if (!doc) return unexpected(doc.error());
  const json::Value* gpus = json::find(*doc, "gpus");
  if (!gpus || !gpus->IsArray())
    return unexpected(ErrorCode::kInvalidArgument, "VFIO record: gpus is not a list");
  VfioRecord out;
  for (const auto& v : gpus->GetArray()) {
    if (!v.IsObject())
      return unexpected(ErrorCode::kInvalidArgument, "VFIO record: a GPU is not an object");
    auto str = [&](const char* k) { return std::string(json::string_or(v, k)); };
    auto num = [&](const char* k, int64_t def) { return json::get_int(v, k).value_or(def); };
    api::GpuInfo g;
    g.pci_bus_id = str("pciBusID");
    if (g.pci_bus_id.empty())
      return unexpected(ErrorCode::kInvalidArgument, "VFIO record: a GPU has no pciBusID");
    g.index = static_cast<int>(num("index", 0));
    g.minor = static_cast<int>(num("minor", 0));
    g.uuid = str("uuid");
    g.product_name = str("productName");
    g.brand = str("brand");
    g.architecture = str("architecture");
    g.cuda_compute_capability = str("cudaComputeCapability");
    g.pcie_root = str("pcieRoot");
    g.addressing_mode = str("addressingMode");
    g.memory_bytes = num("memoryBytes", 0);
    g.multiprocessors = static_cast<int>(num("multiprocessors", 0));
    g.mig_capable = json::get_bool(v, "migCapable").value_or(false);
    g.clique_id = str("cliqueID");
    g.pci_device_id = static_cast<int>(num("pciDeviceID", 0));
    g.numa_node = static_cast<int>(num("numaNode", -1));
    g.iommu_group = static_cast<int>(num("iommuGroup", -1));
    g.vfio_bound = true;
    out[g.pci_bus_id] = std::move(g);
  }
  return out;
}

Result<VfioRecord> load_vfio_record(const std::string& path) {
  auto text = read_file(path);
  if (!text) {
    if (text.error().code == ErrorCode::kNotFound) return VfioRecord{};
    return unexpected(text.error());
  }
  auto r = decode_vfio_record(*text);
  if (!r) return unexpected(r.error().wrap(path));
  return r;
}

Status save_vfio_record(const std::string& path, const VfioRecord& bound) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  return write_file_atomic(path, encode_vfio_record(bound), AtomicWriteOptions{0600, true});
}

}  // namespace nvdra::agent
