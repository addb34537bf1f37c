// What NodePrepareResources needs from a ResourceClaim: this driver's allocation results and
// opaque configs (class configs first, then the claim's), and which config applies to which
// device (anchor-nvidia.md §3.3). Boost-free.
#pragma once

#include <string>
#include <vector>

#include "agent/config/opaque_config.h"
#include "base/result.h"

namespace nvdra::agent {

struct AllocatedDevice {
  std::string request;  // as in the result ("req" or "req/subrequest")
  std::string pool, device;
  bool admin_access = false;
};

struct ClaimConfig {
  std::vector<std::string> requests;  // empty: every request
  std::string parameters;             // opaque.parameters JSON
  std::string source;                 // FromClass | FromClaim
};

struct ClaimInfo {
  std::string uid, namespace_, name;
  std::vector<AllocatedDevice> devices;  // this driver's results only
  std::vector<ClaimConfig> configs;      // this driver's opaque configs, class before claim
};

// Errors: no allocation, UID mismatch (the claim was replaced), non-opaque config.
Result<ClaimInfo> parse_claim(std::string_view json, std::string_view driver,
                              std::string_view expected_uid);

std::string base_request(std::string_view request);

// The device's config, chosen as NVIDIA does: defaults, then class, then claim configs, the
// last one naming the device's request (or naming none, with a matching kind) wins. `type` is
// the device type ("gpu", "mig", "channel", "daemon"); `defaults` are tried first.
struct ChosenConfig {
  OpaqueConfig config;
  int index = -1;  // position among the claim's configs, -1 for a default
};
Result<ChosenConfig> choose_config(const ClaimInfo& claim, const AllocatedDevice& device,
                                   std::string_view type, const std::vector<OpaqueConfig>& defaults,
                                   const FeatureGates& gates);

}  // namespace nvdra::agent
