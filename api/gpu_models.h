// The NVIDIA GPU models nvdra knows without hardware: what NVML would report (product name,
// architecture, compute capability, memory) and their MIG geometry (profiles, GPU-instance
// profile IDs, placements in memory slices). Used by the simulated device backend and by
// nvdra-sim's topologies. Figures: ../shared/docs/anchors.md §4.3; the H200's MIG profiles as
// NVML 580.159.04 reported them on a real H200 (docs/hardware.md).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nvdra::api {

// A MIG profile's engines as NVML reports them (nvmlGpuInstanceProfileInfo_t).
struct MigEngines {
  int multiprocessors = 0, copy_engines = 0, decoders = 0, encoders = 0, jpeg_engines = 0,
      ofa_engines = 0;
};

struct MigProfile {
  std::string name;        // "1g.10gb"
  int gi_profile_id = 0;   // NVML GPU-instance profile ID (19 = 1g, 15 = 1g double memory, …)
  int compute_slices = 1;  // of 7
  int memory_slices = 1;   // of 8
  int64_t memory_mib = 0;
  std::vector<int> placements;  // start memory slice of each possible placement
  // Read off real hardware; without it the engines are derived from the compute slices.
  std::optional<MigEngines> measured;
};

struct GpuModel {
  std::string id;                  // "H100-80GB" (topology files use this)
  std::string product_name;        // "NVIDIA H100 80GB HBM3"
  std::string architecture;        // "Hopper"
  std::string brand;               // "Nvidia"
  std::string compute_capability;  // "9.0"
  int64_t memory_mib = 0;
  int multiprocessors = 0;
  std::vector<MigProfile> mig_profiles;  // empty: no MIG
  int pci_device_id = 0;                 // 0x2330 (vendor 0x10de)
};

// nullptr when unknown. Known: A100-40GB, A100-80GB, H100-80GB, H200-141GB, GB200.
const GpuModel* find_gpu_model(std::string_view id);
std::vector<std::string> gpu_model_ids();

// "1g.10gb" → "1g10gb", as NVIDIA's device names spell profiles.
std::string profile_token(std::string_view profile);

}  // namespace nvdra::api
