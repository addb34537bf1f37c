// What a node's GPUs look like to the driver (discovered through NVML or simulated) and the
// ResourceSlice content NVIDIA's kubelet plugins publish for them: device names, attributes,
// capacities and, for dynamic MIG, counter sets (../shared/docs/anchor-nvidia.md §2.2–§2.3,
// k8s-protocol.md §1.7–§1.8). Pure functions over value types: the agent publishes these
// slices and nvdra-sim --no-agents publishes the same ones.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/gpu_models.h"

namespace nvdra::api {

inline constexpr std::string_view kGpuDriver = "gpu.nvidia.com";
inline constexpr std::string_view kComputeDomainDriver = "compute-domain.nvidia.com";

// One MIG GPU-instance profile as NVML describes it, with its possible placements.
struct MigProfileInfo {
  std::string name;  // "1g.10gb"
  int gi_profile_id = 0;
  int compute_slices = 1;
  int memory_slices = 1;  // the placement size in memory slices
  int64_t memory_mib = 0;
  int multiprocessors = 0, copy_engines = 0, decoders = 0, encoders = 0, jpeg_engines = 0,
      ofa_engines = 0;
  std::vector<int> placements;  // start memory slice of each placement
};

struct GpuInfo {
  int index = 0;  // NVML index
  int minor = 0;  // /dev/nvidia<minor>
  std::string uuid, product_name, brand, architecture;
  std::string cuda_compute_capability;  // "9.0"
  std::string pci_bus_id;               // "0000:0f:00.0"
  std::string pcie_root;                // "pci0000:00"; empty when unknown
  std::string addressing_mode;          // "HMM", "ATS", "None" or empty
  int64_t memory_bytes = 0;             // 0: NVML did not say
  int multiprocessors = 0;
  bool mig_capable = false;
  bool mig_enabled = false;
  std::vector<MigProfileInfo> mig_profiles;
  std::string clique_id;  // "<clusterUUID>.<cliqueId>" or "" (no NVLink fabric)
  // Passthrough (PassthroughSupport): what the PCI bus says of the GPU.
  int pci_device_id = 0;    // 0x2330; 0 when unknown
  int numa_node = -1;       // -1 when the platform has none
  int iommu_group = -1;     // -1: no IOMMU group, so no passthrough
  bool vfio_bound = false;  // handed to a passthrough claim: bound to vfio-pci, not to nvidia
};

// A MIG device that exists on the GPU (static MIG, or created for a claim).
struct MigDeviceInfo {
  std::string uuid;  // "MIG-…"
  int parent_minor = 0;
  std::string parent_uuid;
  MigProfileInfo profile;  // placements unused
  int placement_start = 0;
  int gi_id = 0, ci_id = 0;
};

struct NodeDevices {
  std::string driver_version;   // as NVML prints it: "570.158.01"
  int cuda_driver_version = 0;  // as NVML reports it: 12080
  std::vector<GpuInfo> gpus;
  std::vector<MigDeviceInfo> mig_devices;
  bool iommufd = false;  // the host offers /dev/iommu (VFIO's IOMMUFD backend)

  const GpuInfo* gpu_by_minor(int minor) const;
  // The node's clique: every GPU's clique ID when they agree, else "".
  std::string clique_id() const;
};

// ---- names and attribute values ----
std::string gpu_device_name(int minor);
std::string mig_device_name(int parent_minor, std::string_view profile, int gi_profile_id,
                            int placement_start);
struct MigDeviceName {
  int parent_minor = 0;
  std::string profile_token;  // "1g10gb"
  int gi_profile_id = 0, placement_start = 0;
};
std::optional<MigDeviceName> parse_mig_device_name(std::string_view name);
// "gpu-vfio-<minor>": the GPU handed whole to a VM (PassthroughSupport).
std::string vfio_device_name(int minor);
// The minor of a "gpu-<minor>" or "gpu-vfio-<minor>" name; nullopt for other names.
std::optional<int> gpu_minor_of(std::string_view name);
// 16 bytes as a UUID's text (8-4-4-4-12, lowercase hex).
std::string uuid_text(std::span<const unsigned char, 16> bytes);
// A VFIO device's uuid attribute: UUIDv5 (SHA-1, DNS namespace) of its PCI address.
std::string vfio_uuid(std::string_view pci_bus_id);
// "570.158.01" → "570.158.1" (a semantic version without leading zeros).
std::string semver_driver_version(std::string_view nvml_version);
// 12080 → "12.8.0".
std::string cuda_version_string(int nvml_cuda_version);

// ---- what a simulated node has (nvdra-sim topologies and the agent's sim backend) ----
// A stable UUID for GPU `index` of `node`, as NVML would report one.
std::string simulated_gpu_uuid(std::string_view node, int index);
MigProfileInfo simulated_mig_profile(const GpuModel& model, const MigProfile& p);
NodeDevices simulated_node_devices(std::string_view node, const GpuModel& model, int gpus,
                                   std::string_view clique_id);

// ---- ResourceSlice content ----
struct DeviceTaint {
  std::string key, value, effect;  // effect: NoSchedule | NoExecute | None
  bool operator==(const DeviceTaint&) const = default;
};

struct SliceLayout {
  bool dynamic_mig = false;
  // API servers from 1.35 refuse a slice holding both devices and sharedCounters: the counter
  // sets then go into a slice of their own.
  bool separate_counter_slice = false;
  // Publish `index` and `minor` on full GPUs (older NVIDIA releases did; NVIDIA's gpu-test6
  // demo selects on `index`). See docs/compatibility.md.
  bool index_attributes = true;
  // PassthroughSupport: each whole GPU with an IOMMU group is published twice, as gpu-<minor>
  // and as gpu-vfio-<minor>. `hidden` names the siblings of prepared devices, left out until
  // those are unprepared (a GPU serves one or the other).
  bool passthrough = false;
  std::set<std::string> hidden;
  std::map<std::string, std::vector<DeviceTaint>> taints;  // by device name
  size_t max_devices_per_slice = 128;                      // 64 with counters or taints
};

// The spec content of one slice: JSON array items, ready to embed.
struct SliceContent {
  std::vector<std::string> device_names;
  std::string devices;          // "{…},{…}" (may be empty)
  std::string shared_counters;  // "{…}" counter sets (may be empty)
};

std::vector<SliceContent> gpu_slices(const NodeDevices& node, const SliceLayout& layout);
// compute-domain.nvidia.com: channel-0 and daemon-0 (with the node's cliqueID).
std::vector<SliceContent> compute_domain_slices(const NodeDevices& node);

// A whole ResourceSlice object. `name_or_prefix` is a name, or a generateName prefix when
// `generate` is true.
std::string resource_slice_json(std::string_view driver, std::string_view node,
                                std::string_view name_or_prefix, bool generate, int64_t generation,
                                size_t slice_count, const SliceContent& content,
                                std::string_view owner_node_uid);

// Device type of a published device name: "gpu", "mig", "vfio", "channel", "daemon" or
// "unknown".
std::string_view device_type_of(std::string_view device_name);

}  // namespace nvdra::api
