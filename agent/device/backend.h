// The agent's view of the GPUs of its node. Two implementations: NVML (real hardware, loaded
// with dlopen) and sim (a node description file, for nvdra-sim and tests). Everything the
// prepare pipeline changes on a GPU goes through here or through the backend's executor.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "agent/exec/executor.h"
#include "api/nvidia_devices.h"
#include "base/result.h"

namespace nvdra::agent {

// A health problem of one GPU (all its devices) as NVML reports it.
struct HealthEvent {
  int minor = 0;
  int xid = 0;  // 0 with lost = true: the GPU fell off the bus
  bool lost = false;
};

// A GPU handed to vfio-pci for passthrough.
struct VfioBinding {
  int iommu_group = -1;  // /dev/vfio/<group>
  std::string cdev;      // "vfio3" of /dev/vfio/devices (IOMMUFD); "" when the kernel has none
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  // The GPUs with their current MIG mode and existing MIG devices.
  virtual Result<api::NodeDevices> discover() = 0;
  // Dynamic MIG: MIG devices are created for claims and destroyed on unprepare.
  virtual bool dynamic_mig() const = 0;
  virtual Status set_mig_mode(int minor, bool enabled) = 0;
  virtual Result<api::MigDeviceInfo> create_mig_device(int minor,
                                                       const api::MigProfileInfo& profile,
                                                       int placement_start) = 0;
  // Absent devices are fine (idempotent).
  virtual Status destroy_mig_device(const api::MigDeviceInfo& device) = 0;
  // PassthroughSupport: unbinds an idle GPU from nvidia and binds it to vfio-pci, and back.
  // Both are idempotent; discover() lists a bound GPU with vfio_bound set.
  virtual Result<VfioBinding> bind_vfio(const api::GpuInfo& gpu) = 0;
  virtual Status unbind_vfio(const std::string& pci_bus_id) = 0;
  // Health events since the last call.
  virtual std::vector<HealthEvent> health_events() = 0;
  virtual Executor& executor() = 0;
};

struct NvmlOptions {
  std::string driver_root = "/";  // libnvidia-ml.so.1 is looked up in its library folders
  bool dynamic_mig = false;
  bool strict_fabric = true;   // NVIDIA's CrashOnNVLinkFabricErrors: a fabric not ready is an error
  bool health_events = false;  // NVIDIA's NVMLDeviceHealthCheck: report XID events
  // Where the kernel's views are (tests point them at fake trees): PCI devices, IOMMU groups
  // and driver binding under sys_root, processes under proc_root, device nodes under dev_root.
  std::string sys_root = "/sys", proc_root = "/proc", dev_root = "/dev";
  // How long a GPU may stay open elsewhere before binding it to vfio-pci gives up.
  std::chrono::milliseconds idle_wait{10000};
  // Where the GPUs this agent bound to vfio-pci are recorded (vfio_record.h), so a restarted
  // agent still knows them; "" keeps them in memory only.
  std::string vfio_record_path;
};

// The installed NVML, or a clear error.
Result<std::unique_ptr<DeviceBackend>> make_nvml_backend(const NvmlOptions& options);

}  // namespace nvdra::agent
