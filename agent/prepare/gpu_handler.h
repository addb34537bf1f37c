// gpu.nvidia.com: full GPUs, MIG devices (created on demand with dynamic MIG), time-slicing and
// MPS sharing, GPUs passed through to VMs (vfio-pci), and the CDI edits that hand them to
// containers (anchor-nvidia.md §2.2, §3.3–§3.8).
#pragma once

#include <string>

#include "agent/config/opaque_config.h"
#include "agent/device/backend.h"
#include "agent/prepare/driver_state.h"

namespace nvdra::agent {

struct GpuHandlerOptions {
  std::string plugin_dir;  // <kubelet plugins>/gpu.nvidia.com (MPS folders live below it)
  std::string dev_root;    // the host's /dev
  std::string tool_dir;    // where nvidia-smi and nvidia-cuda-mps-control are; "" = PATH
  FeatureGates gates;
  std::string proc_root = "/proc";  // the kernel driver's capability files (MIG access devices)
};

// The MPS control daemon ID of a claim: "<claimUID>-<5 hex of a hash of its sorted UUIDs>".
std::string mps_daemon_id(const std::string& claim_uid, std::vector<std::string> uuids);

// Where a dynamic MIG device can go: the GPU must have the profile and the placement must not
// overlap an existing MIG device. Returns the profile to create.
Result<api::MigProfileInfo> plan_mig_device(const api::NodeDevices& node,
                                            const api::MigDeviceName& wanted);

class GpuHandler final : public DeviceHandler {
 public:
  GpuHandler(DeviceBackend& backend, GpuHandlerOptions options);
  std::string_view driver() const override { return api::kGpuDriver; }
  std::string_view cdi_kind() const override { return "k8s.gpu.nvidia.com/claim"; }
  Status prepare(const ClaimInfo& claim, PreparedClaim& entry, CdiSpec& spec,
                 const std::function<Status()>& save) override;
  Status unprepare(const std::string& uid, const PreparedClaim& entry) override;
  void sweep_orphans(const Checkpoint& checkpoint) override;
  void recover(const std::string& uid, PreparedClaim& entry) override;
  // With PassthroughSupport gpu-<minor> and gpu-vfio-<minor> are one GPU.
  std::vector<std::string> aliases(std::string_view device) const override;

 private:
  Status run(std::vector<std::string> argv, std::vector<std::string> env = {},
             std::string stdin_data = {});
  std::string tool(const char* name) const;
  std::string mps_root(const std::string& id) const;
  Result<CdiEdits> start_mps(const std::string& id, const std::vector<std::string>& uuids,
                             const std::vector<std::string>& full_gpu_uuids, const MpsConfig& mps);
  Status stop_mps(const std::string& id);
  Status destroy_created_mig(const CreatedMig& m);
  std::vector<CdiDeviceNode> mig_capability_nodes(int minor, int gi, int ci) const;

  DeviceBackend& backend_;
  GpuHandlerOptions opt_;
};

}  // namespace nvdra::agent
