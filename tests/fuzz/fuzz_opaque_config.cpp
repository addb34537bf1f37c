// Opaque device configurations and claims from kubelet's API reads: any bytes decode (strictly
// and not), default and validate to a value or an error, never a crash; the same bytes as a
// ResourceClaim choose a config for each of its devices the same way.
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/config/opaque_config.h"
#include "agent/prepare/claim.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nvdra::agent;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  FeatureGates gates;
  for (bool strict : {true, false}) {
    auto c = decode_opaque_config(text, strict);
    if (!c) continue;
    normalize(*c, gates);
    (void)validate(*c, gates);
    if (const auto* g = std::get_if<GpuConfig>(&*c); g && g->sharing && g->sharing->mps)
      (void)mps_pinned_limits(*g->sharing->mps, {"GPU-a", "GPU-b"});
  }
  auto claim = parse_claim(text, "gpu.nvidia.com", "");
  if (claim) {
    const std::vector<OpaqueConfig> defaults = {default_gpu_config(gates),
                                                default_mig_config(gates)};
    for (const auto& d : claim->devices)
      (void)choose_config(*claim, d, "gpu", defaults, gates);
  }
  return 0;
}
