// The opaque device configurations of resource.nvidia.com/v1beta1 (GpuConfig, MigDeviceConfig,
// ComputeDomainChannelConfig, ComputeDomainDaemonConfig, VfioDeviceConfig): strict decoding,
// defaulting and validation with NVIDIA's error texts (anchor-nvidia.md §1.3–§1.5), plus the
// feature gates that switch sharing strategies on. Boost-free: fuzzed on its own.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "base/quantity.h"
#include "base/result.h"

namespace nvdra::agent {

struct FeatureGates {
  bool time_slicing_settings = true;  // nvdra default: on (NVIDIA: off), see compatibility.md
  bool mps_support = true;            // nvdra default: on (NVIDIA: off)
  bool dynamic_mig = false;
  bool passthrough_support = false;
  bool nvml_device_health_check = false;
  bool imex_daemons_with_dns_names = true;
  bool compute_domain_cliques = true;
  bool crash_on_nvlink_fabric_errors = true;
  bool device_metadata = false;

  // "Name=true,Other=false," (a trailing comma is fine, as Helm renders it).
  static Result<FeatureGates> parse(std::string_view text);
  Status validate() const;
  std::string to_string() const;  // every gate, "k=v,…" sorted by name
};

inline constexpr std::string_view kConfigApiVersion = "resource.nvidia.com/v1beta1";

struct TimeSlicingConfig {
  std::optional<std::string> interval;  // Default | Short | Medium | Long
};

struct MpsConfig {
  std::optional<int64_t> default_active_thread_percentage;
  std::optional<Quantity> default_pinned_device_memory_limit;
  std::map<std::string, Quantity> default_per_device_pinned_memory_limit;  // UUID or index
};

struct Sharing {
  std::string strategy;  // TimeSlicing | MPS
  std::optional<TimeSlicingConfig> time_slicing;
  std::optional<MpsConfig> mps;
};

struct GpuConfig {
  std::optional<Sharing> sharing;
};
struct MigDeviceConfig {
  std::optional<Sharing> sharing;  // no timeSlicingConfig here
};
struct VfioDeviceConfig {
  std::string backend_policy;
  bool enable_api_device = false;
};
struct ComputeDomainChannelConfig {
  std::string domain_id;
  std::string allocation_mode;  // "", Single, All
};
struct ComputeDomainDaemonConfig {
  std::string domain_id;
};

using OpaqueConfig = std::variant<GpuConfig, MigDeviceConfig, VfioDeviceConfig,
                                  ComputeDomainChannelConfig, ComputeDomainDaemonConfig>;

std::string_view kind_of(const OpaqueConfig& c);

// Decodes opaque.parameters. Strict: unknown fields are errors ("strict decoding error: unknown
// field \"sharing.foo\""), as on prepare; non-strict drops them (unprepare).
Result<OpaqueConfig> decode_opaque_config(std::string_view json, bool strict);

// Fills defaults the way NVIDIA's Normalize does, given the gates.
void normalize(OpaqueConfig& c, const FeatureGates& gates);
// NVIDIA's Validate plus the prepare-time checks; the message names the bad field.
Status validate(const OpaqueConfig& c, const FeatureGates& gates);

// The time-slice interval as nvidia-smi takes it (Default 0, Short 1, Medium 2, Long 3).
int interval_value(std::string_view interval);

// MPS pinned-memory limits per device UUID, each as "<MiB>M" for
// set_default_device_pinned_mem_limit. `uuids` are the claim's devices.
Result<std::map<std::string, std::string>> mps_pinned_limits(const MpsConfig& mps,
                                                             std::vector<std::string> uuids);

// The defaults NVIDIA prepends before class and claim configs.
GpuConfig default_gpu_config(const FeatureGates& gates);
MigDeviceConfig default_mig_config(const FeatureGates& gates);
VfioDeviceConfig default_vfio_config();  // LegacyOnly, no API device

}  // namespace nvdra::agent
