// The simulated device backend: GPUs from a node description written by nvdra-sim up
//
//   nodeName: dgx-h100-0
//   gpu: H100-80GB          # a model of api/gpu_models
//   gpus: 8
//   mig: none | dynamic | static
//   migDevices: [{gpu: 0, profile: 1g.10gb, placement: 0}]   # static MIG layout
//   cliqueID: "<clusterUUID>.<cliqueId>"
//
// MIG state lives in <root>/var/lib/nvdra-sim-gpu/state.json so it survives agent restarts, as
// a real GPU's does. Fault hooks are files under <root>/faults/:
//   xid-<minor>          contains an XID number: that GPU reports it (once per file change)
//   lost-<minor>         the GPU fell off the bus
//   mig-create-fails     every MIG creation fails with "Insufficient Resources"
//   gpu-busy-<minor>     a process holds that GPU: binding it to vfio-pci fails
// GPUs bound to vfio-pci (passthrough) are kept in the same state file; binding one creates
// <root>/dev/vfio/<iommu group>.
// Tools run by the sim executor are logged to <root>/var/log/nvdra-sim-tools.log; MPS control
// daemons are emulated (pipe folder with a control file).
// With driver files (nvdra-agent --sim-root, the real test cluster) the backend also makes what a
// loaded kernel driver provides under <root> (SimDriverFiles): real device nodes for its GPUs and
// MIG devices, /proc/devices and the MIG capabilities.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "agent/device/backend.h"
#include "agent/device/sim_driver_files.h"

namespace nvdra::agent {

class SimExecutor final : public Executor {
 public:
  explicit SimExecutor(std::string root) : root_(std::move(root)) {}
  Result<CommandResult> run(const Command& command) override;

 private:
  std::string root_;
  std::mutex mu_;
};

class SimBackend final : public DeviceBackend {
 public:
  static Result<std::unique_ptr<SimBackend>> load(const std::string& node_config,
                                                  const std::string& root,
                                                  bool driver_files = false);

  Result<api::NodeDevices> discover() override;
  bool dynamic_mig() const override { return dynamic_; }
  Status set_mig_mode(int minor, bool enabled) override;
  Result<api::MigDeviceInfo> create_mig_device(int minor, const api::MigProfileInfo& profile,
                                               int placement_start) override;
  Status destroy_mig_device(const api::MigDeviceInfo& device) override;
  Result<VfioBinding> bind_vfio(const api::GpuInfo& gpu) override;
  Status unbind_vfio(const std::string& pci_bus_id) override;
  std::vector<HealthEvent> health_events() override;
  Executor& executor() override { return executor_; }

 private:
  SimBackend(std::string root) : root_(std::move(root)), executor_(root_) {}
  Status load_state();
  Status save_state();

  std::string root_;
  std::optional<SimDriverFiles> driver_files_;
  SimExecutor executor_;
  std::string node_;
  api::NodeDevices base_;  // GPUs as the model describes them
  bool dynamic_ = false;
  std::mutex mu_;
  std::set<int> mig_enabled_;                       // guarded by mu_
  std::vector<api::MigDeviceInfo> mig_devices_;     // guarded by mu_
  std::set<int> vfio_bound_;                        // minors; guarded by mu_
  std::map<std::string, std::string> seen_faults_;  // fault file → content already reported
};

}  // namespace nvdra::agent
