// compute-domain.nvidia.com: IMEX channel claims (node label for the ComputeDomain, readiness
// gate, channel device nodes) and daemon claims (the domain's IMEX config folder and identity),
// as anchor-nvidia.md §3.10 describes.
#pragma once

#include <string>

#include "agent/config/opaque_config.h"
#include "agent/prepare/driver_state.h"

namespace nvdra::agent {

inline constexpr std::string_view kComputeDomainLabel = "resource.nvidia.com/computeDomain";
inline constexpr int kImexChannelCount = 2048;

struct CdHandlerOptions {
  std::string plugin_dir;  // <kubelet plugins>/compute-domain.nvidia.com
  std::string dev_root;    // the host's /dev
  std::string proc_devices = "/proc/devices";
  std::string node_name;
  std::string clique_id;  // "" on nodes without an NVLink fabric
  FeatureGates gates;
  // The driver's namespace: the controller's daemon claims come from there. A daemon claim must
  // be in it or in its ComputeDomain's namespace, so no other namespace gets a domain's identity.
  std::string driver_namespace = "nvdra-system";
};

class CdHandler final : public DeviceHandler {
 public:
  CdHandler(ClusterAccess& cluster, CdHandlerOptions options);
  std::string_view driver() const override { return api::kComputeDomainDriver; }
  std::string_view cdi_kind() const override { return "k8s.compute-domain.nvidia.com/claim"; }
  Status prepare(const ClaimInfo& claim, PreparedClaim& entry, CdiSpec& spec,
                 const std::function<Status()>& save) override;
  Status unprepare(const std::string& uid, const PreparedClaim& entry) override;
  void sweep_orphans(const Checkpoint& checkpoint) override;
  // The domain of a lost channel claim is unknown (its node label is left to the controller's
  // cleanup); a daemon claim's domain is its folder's name.
  void recover(const std::string& uid, PreparedClaim& entry) override;
  // Channel and daemon prepares are idempotent: a claim waiting for its node to be Ready resumes.
  bool resumable(const PreparedClaim& entry) const override {
    return !entry.compute_domain.empty();
  }

 private:
  Result<CdiEdits> channel_nodes(bool all);
  // Removes the channel nodes nvdra created (recorded in created_channels_file()); nodes that
  // were there before (the NVIDIA driver's) stay.
  void remove_channel_nodes();
  std::string created_channels_file() const;
  std::string domain_dir(const std::string& uid) const;

  ClusterAccess& cluster_;
  CdHandlerOptions opt_;
};

}  // namespace nvdra::agent
