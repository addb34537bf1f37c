// The NVML backend: libnvidia-ml.so.1 loaded with dlopen, with nvdra's own declarations of the
// C entry points and structs it uses (no NVIDIA headers at build time; layouts as in NVML 12's
// nvml.h). Discovery only reads; MIG creation and destruction go through NVML's GPU-instance and
// compute-instance calls. Optional entry points missing from an old library turn the feature
// off (or answer an error naming it) instead of failing the start.
#include <dlfcn.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "agent/device/backend.h"
#include "agent/device/nvml_api.h"
#include "agent/device/vfio_record.h"
#include "base/atomic_file.h"
#include "base/log.h"

namespace nvdra::agent {
namespace {

using namespace nvml;  // NOLINT: the C API's names read best unqualified here

// GPU-instance profile indexes whose compute instance spans the whole instance (G == C); the
// media-extension variants (1_SLICE_REV1 = 7, 2_SLICE_REV1 = 8) are left out, as NVIDIA does.
constexpr unsigned int kGpuInstanceProfiles[] = {0, 1, 2, 3, 4, 5, 6, 9};
// The compute-instance profile index of a whole GPU instance, by its slice count.
int compute_profile_index(unsigned int slices) {
  switch (slices) {
    case 1:
      return 0;
    case 2:
      return 1;
    case 3:
      return 2;
    case 4:
      return 3;
    case 7:
      return 4;
    case 8:
      return 5;
    case 6:
      return 6;
    default:
      return -1;
  }
}

struct Nvml {
  void* lib = nullptr;
  nvmlReturn_t (*init)(unsigned int) = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*system_driver_version)(char*, unsigned int) = nullptr;
  nvmlReturn_t (*system_cuda_version)(int*) = nullptr;
  nvmlReturn_t (*count)(unsigned int*) = nullptr;
  nvmlReturn_t (*handle_by_index)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*uuid)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*minor)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*brand)(nvmlDevice_t, int*) = nullptr;
  nvmlReturn_t (*architecture)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*compute_capability)(nvmlDevice_t, int*, int*) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*pci)(nvmlDevice_t, nvmlPciInfo_t*) = nullptr;
  nvmlReturn_t (*mig_mode)(nvmlDevice_t, unsigned int*, unsigned int*) = nullptr;
  nvmlReturn_t (*set_mig_mode)(nvmlDevice_t, unsigned int, nvmlReturn_t*) = nullptr;
  nvmlReturn_t (*gi_profile_info)(nvmlDevice_t, unsigned int,
                                  nvmlGpuInstanceProfileInfo_t*) = nullptr;
  nvmlReturn_t (*gi_placements)(nvmlDevice_t, unsigned int, nvmlGpuInstancePlacement_t*,
                                unsigned int*) = nullptr;
  nvmlReturn_t (*max_mig_devices)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*mig_handle)(nvmlDevice_t, unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*mig_gi_id)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*mig_ci_id)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*gi_by_id)(nvmlDevice_t, unsigned int, nvmlGpuInstance_t*) = nullptr;
  nvmlReturn_t (*gi_info)(nvmlGpuInstance_t, nvmlGpuInstanceInfo_t*) = nullptr;
  nvmlReturn_t (*create_gi)(nvmlDevice_t, unsigned int, const nvmlGpuInstancePlacement_t*,
                            nvmlGpuInstance_t*) = nullptr;
  nvmlReturn_t (*ci_profile_info)(nvmlGpuInstance_t, unsigned int, unsigned int,
                                  nvmlComputeInstanceProfileInfo_t*) = nullptr;
  nvmlReturn_t (*create_ci)(nvmlGpuInstance_t, unsigned int, nvmlComputeInstance_t*) = nullptr;
  nvmlReturn_t (*cis)(nvmlGpuInstance_t, unsigned int, nvmlComputeInstance_t*,
                      unsigned int*) = nullptr;
  nvmlReturn_t (*destroy_ci)(nvmlComputeInstance_t) = nullptr;
  nvmlReturn_t (*destroy_gi)(nvmlGpuInstance_t) = nullptr;
  nvmlReturn_t (*fabric)(nvmlDevice_t, nvmlGpuFabricInfo_t*) = nullptr;
  nvmlReturn_t (*addressing_mode)(nvmlDevice_t, nvmlDeviceAddressingMode_t*) = nullptr;
  nvmlReturn_t (*set_persistence)(nvmlDevice_t, unsigned int) = nullptr;
  nvmlReturn_t (*handle_by_pci)(const char*, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*event_set_create)(nvmlEventSet_t*) = nullptr;
  nvmlReturn_t (*register_events)(nvmlDevice_t, unsigned long long, nvmlEventSet_t) = nullptr;
  nvmlReturn_t (*event_wait)(nvmlEventSet_t, nvmlEventData_t*, unsigned int) = nullptr;
  nvmlReturn_t (*event_set_free)(nvmlEventSet_t) = nullptr;

  template <class F>
  bool load(F& f, const char* symbol) {
    f = reinterpret_cast<F>(::dlsym(lib, symbol));
    return f != nullptr;
  }
  std::string error(nvmlReturn_t r) const {
    return error_string ? error_string(r) : fmt::format("NVML error {}", r);
  }
};

std::string architecture_name(unsigned int a) {
  switch (a) {
    case 2:
      return "Kepler";
    case 3:
      return "Maxwell";
    case 4:
      return "Pascal";
    case 5:
      return "Volta";
    case 6:
      return "Turing";
    case 7:
      return "Ampere";
    case 8:
      return "Ada Lovelace";
    case 9:
      return "Hopper";
    case 10:
      return "Blackwell";
    default:
      return "Unknown";
  }
}

// NVIDIA publishes addressingMode only when NVML answers (drivers from 575); "" otherwise.
std::string addressing_mode_name(unsigned int mode) {
  switch (mode) {
    case NVML_DEVICE_ADDRESSING_MODE_HMM:
      return "HMM";
    case NVML_DEVICE_ADDRESSING_MODE_ATS:
      return "ATS";
    default:
      return "None";
  }
}

// nvmlBrandType's names as go-nvlib spells them. NVML_BRAND_NVIDIA_VGAMING is an alias of
// CLOUD_GAMING (11), not a value of its own: an H200 reports 14, "Nvidia".
std::string brand_name(int b) {
  static constexpr std::array<const char*, 17> kNames = {
      "Unknown",   "Quadro",      "Tesla",     "NVS",        "Grid",      "GeForce",
      "Titan",     "NvidiaVApps", "NvidiaVPC", "NvidiaVCS",  "NvidiaVWS", "NvidiaCloudGaming",
      "QuadroRTX", "NvidiaRTX",   "Nvidia",    "GeForceRTX", "TitanRTX"};
  return b >= 0 && b < static_cast<int>(kNames.size()) ? kNames[b] : "Unknown";
}

// A MIG profile's name as NVIDIA's tools spell it: "<slices>g.<memory rounded to eighths of the
// GPU>gb" (go-nvlib's rule), e.g. 1g.10gb on an 80 GB GPU.
std::string mig_profile_name(unsigned int slices, unsigned long long memory_mb,
                             int64_t total_bytes) {
  constexpr double kGiB = 1024.0 * 1024 * 1024;
  if (total_bytes <= 0) return fmt::format("{}g.{}gb", slices, (memory_mb + 1023) / 1024);
  double fraction = static_cast<double>(memory_mb) * 1024 * 1024 / static_cast<double>(total_bytes);
  fraction = std::ceil(fraction * 8) / 8;
  const double total_gb = std::ceil(static_cast<double>(total_bytes) / kGiB);
  return fmt::format("{}g.{}gb", slices, static_cast<long long>(std::llround(fraction * total_gb)));
}

namespace fs = std::filesystem;

// The kernel driver a PCI device is bound to ("nvidia", "vfio-pci"), "" when none.
std::string bound_driver(const fs::path& device) {
  std::error_code ec;
  const auto link = fs::read_symlink(device / "driver", ec);
  return ec ? std::string() : link.filename().string();
}

// The IOMMU group of a PCI device (its iommu_group link), -1 without an IOMMU.
int iommu_group_of(const fs::path& device) {
  std::error_code ec;
  const auto link = fs::read_symlink(device / "iommu_group", ec);
  if (ec) return -1;
  try {
    return std::stoi(link.filename().string());
  } catch (const std::exception&) {
    return -1;
  }
}

int int_file(const fs::path& file, int fallback) {
  auto text = read_file(file.string());
  if (!text) return fallback;
  try {
    return std::stoi(*text, nullptr, 0);
  } catch (const std::exception&) {
    return fallback;
  }
}

// sysfs takes one write per attribute file; its error is the kernel's answer.
Status write_sysfs(const fs::path& file, std::string_view value) {
  std::ofstream out(file);
  out << value;
  out.flush();
  if (!out)
    return unexpected(ErrorCode::kIo,
                      fmt::format("writing \"{}\" to {} failed", value, file.string()));
  return ok();
}

// PIDs other than ours with `node` open (what fuser reports).
std::vector<int> holders(const fs::path& proc_root, const std::string& node) {
  std::vector<int> out;
  std::error_code ec;
  const int self = static_cast<int>(::getpid());
  for (const auto& p : fs::directory_iterator(proc_root, ec)) {
    const std::string name = p.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const int pid = std::stoi(name);
    if (pid == self) continue;
    std::error_code fd_ec;
    for (const auto& fd : fs::directory_iterator(p.path() / "fd", fd_ec)) {
      std::error_code link_ec;
      if (fs::read_symlink(fd.path(), link_ec) == node) {
        out.push_back(pid);
        break;
      }
    }
  }
  return out;
}

class NvmlBackend final : public DeviceBackend {
 public:
  NvmlBackend(Nvml nvml, NvmlOptions options, VfioRecord bound)
      : nvml_(nvml), opt_(std::move(options)), vfio_bound_(std::move(bound)) {}
  ~NvmlBackend() override {
    if (events_ && nvml_.event_set_free) nvml_.event_set_free(events_);
    if (nvml_.shutdown) nvml_.shutdown();
  }

  Result<api::NodeDevices> discover() override {
    std::lock_guard lock(mu_);
    api::NodeDevices out;
    std::array<char, 96> buf{};
    if (nvml_.system_driver_version(buf.data(), buf.size()) == NVML_SUCCESS)
      out.driver_version = buf.data();
    if (nvml_.system_cuda_version) nvml_.system_cuda_version(&out.cuda_driver_version);
    unsigned int count = 0;
    if (auto r = nvml_.count(&count); r != NVML_SUCCESS)
      return unexpected(ErrorCode::kIo, "nvmlDeviceGetCount: " + nvml_.error(r));
    handles_.clear();
    for (unsigned int i = 0; i < count; ++i) {
      nvmlDevice_t d;
      if (auto r = nvml_.handle_by_index(i, &d); r != NVML_SUCCESS)
        return unexpected(ErrorCode::kIo, fmt::format("GPU {}: {}", i, nvml_.error(r)));
      api::GpuInfo g;
      g.index = static_cast<int>(i);
      unsigned int minor = 0;
      if (nvml_.minor(d, &minor) == NVML_SUCCESS) g.minor = static_cast<int>(minor);
      if (nvml_.uuid(d, buf.data(), buf.size()) == NVML_SUCCESS) g.uuid = buf.data();
      if (nvml_.name(d, buf.data(), buf.size()) == NVML_SUCCESS) g.product_name = buf.data();
      int brand = 0;
      if (nvml_.brand && nvml_.brand(d, &brand) == NVML_SUCCESS) g.brand = brand_name(brand);
      unsigned int arch = 0;
      if (nvml_.architecture && nvml_.architecture(d, &arch) == NVML_SUCCESS)
        g.architecture = architecture_name(arch);
      int major = 0, minor_cc = 0;
      if (nvml_.compute_capability(d, &major, &minor_cc) == NVML_SUCCESS)
        g.cuda_compute_capability = fmt::format("{}.{}", major, minor_cc);
      nvmlDeviceAddressingMode_t addressing{nvmlDeviceAddressingMode_v1, 0};
      if (nvml_.addressing_mode && nvml_.addressing_mode(d, &addressing) == NVML_SUCCESS)
        g.addressing_mode = addressing_mode_name(addressing.value);
      nvmlMemory_t mem{};
      if (nvml_.memory(d, &mem) == NVML_SUCCESS) g.memory_bytes = static_cast<int64_t>(mem.total);
      nvmlPciInfo_t pci{};
      if (nvml_.pci(d, &pci) == NVML_SUCCESS) {
        std::string bus = pci.busId;
        std::transform(bus.begin(), bus.end(), bus.begin(), ::tolower);
        // NVML pads the domain to 8 digits; the attribute uses the kernel's 4-digit form.
        if (bus.size() == 16 && bus.starts_with("0000")) bus = bus.substr(4);
        g.pci_bus_id = bus;
        g.pci_device_id = static_cast<int>(pci.pciDeviceId >> 16);
        describe_pci(g);
      }
      unsigned int current = 0, pending = 0;
      const auto mig =
          nvml_.mig_mode ? nvml_.mig_mode(d, &current, &pending) : NVML_ERROR_NOT_SUPPORTED;
      g.mig_capable = mig == NVML_SUCCESS;
      g.mig_enabled = mig == NVML_SUCCESS && current == 1;
      if (g.mig_capable) read_profiles(d, g);
      if (auto clique = fabric_clique(d, g); !clique) {
        return unexpected(clique.error());
      } else {
        g.clique_id = *clique;
      }
      if (g.mig_enabled) read_mig_devices(d, g, out.mig_devices);
      handles_[g.minor] = d;
      out.gpus.push_back(std::move(g));
    }
    // GPUs this backend bound to vfio-pci are gone from NVML; they are still the node's.
    for (const auto& [bus, g] : vfio_bound_) {
      const bool listed = std::any_of(out.gpus.begin(), out.gpus.end(),
                                      [&](const auto& x) { return x.pci_bus_id == bus; });
      if (!listed && bound_driver(pci_device(bus)) == "vfio-pci") out.gpus.push_back(g);
    }
    out.iommufd = fs::exists(fs::path(opt_.dev_root) / "iommu");
    gpus_ = out.gpus;
    return out;
  }

  Result<VfioBinding> bind_vfio(const api::GpuInfo& gpu) override {
    std::lock_guard lock(mu_);
    const fs::path dev = pci_device(gpu.pci_bus_id);
    if (!fs::exists(dev))
      return unexpected(ErrorCode::kNotFound,
                        fmt::format("no PCI device {} under {}", gpu.pci_bus_id, opt_.sys_root));
    const int group = iommu_group_of(dev);
    if (group < 0)
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("GPU {} ({}) has no IOMMU group: passthrough needs the IOMMU "
                                    "on (intel_iommu=on or amd_iommu=on)",
                                    gpu.minor, gpu.pci_bus_id));
    if (bound_driver(dev) != "vfio-pci") {
      if (int vfs = int_file(dev / "sriov_numvfs", 0); vfs > 0)
        return unexpected(ErrorCode::kInvalidArgument,
                          fmt::format("GPU {} has {} SR-IOV virtual functions: passthrough needs 0",
                                      gpu.pci_bus_id, vfs));
      // As fuser would: nothing but us may hold the GPU when it leaves the nvidia driver.
      const std::string node = fmt::format("/dev/nvidia{}", gpu.minor);
      std::vector<int> busy = holders(opt_.proc_root, node);
      const auto give_up = std::chrono::steady_clock::now() + opt_.idle_wait;
      while (!busy.empty() && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        busy = holders(opt_.proc_root, node);
      }
      if (!busy.empty())
        return unexpected(ErrorCode::kIo, fmt::format("GPU {} is in use: process {} holds {}",
                                                      gpu.minor, busy.front(), node));
      if (auto d = handle(gpu.minor); d && nvml_.set_persistence)
        nvml_.set_persistence(*d, NVML_FEATURE_DISABLED);
      release_nvml();  // our own handles must not pin the device
      Status bound = rebind(gpu.pci_bus_id, "vfio-pci", "vfio-pci");
      if (auto r = nvml_.init(0); r != NVML_SUCCESS)
        NVDRA_WARN("nvmlInit after binding {} to vfio-pci: {}", gpu.pci_bus_id, nvml_.error(r));
      if (!bound)
        return unexpected(bound.error().wrap("binding GPU " + gpu.pci_bus_id + " to vfio-pci"));
    }
    api::GpuInfo g = gpu;
    g.vfio_bound = true;
    vfio_bound_[gpu.pci_bus_id] = g;
    if (auto s = save_vfio_locked(); !s)
      return unexpected(s.error().wrap("recording GPU " + gpu.pci_bus_id + " as on vfio-pci"));
    VfioBinding out{group, ""};
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dev / "vfio-dev", ec))
      out.cdev = e.path().filename().string();
    return out;
  }

  Status unbind_vfio(const std::string& pci_bus_id) override {
    std::lock_guard lock(mu_);
    const fs::path dev = pci_device(pci_bus_id);
    const bool on_vfio = fs::exists(dev) && bound_driver(dev) == "vfio-pci";
    if (on_vfio) {
      // An empty override lets the kernel match the device's own driver again.
      if (auto s = rebind(pci_bus_id, "\n", "nvidia"); !s)
        return unexpected(s.error().wrap("giving GPU " + pci_bus_id + " back to nvidia"));
    }
    // Forgotten only once it is back (or gone): a failed give-back stays recorded.
    if (vfio_bound_.erase(pci_bus_id) > 0) {
      if (auto s = save_vfio_locked(); !s)
        NVDRA_WARN("GPU {} is back on nvidia but the VFIO record was not updated: {}", pci_bus_id,
                   s.error().message);
    }
    if (!on_vfio) return ok();
    nvmlDevice_t d = nullptr;
    if (nvml_.handle_by_pci && nvml_.set_persistence &&
        nvml_.handle_by_pci(pci_bus_id.c_str(), &d) == NVML_SUCCESS)
      nvml_.set_persistence(d, NVML_FEATURE_ENABLED);
    return ok();
  }

  bool dynamic_mig() const override { return opt_.dynamic_mig; }

  Status set_mig_mode(int minor, bool enabled) override {
    std::lock_guard lock(mu_);
    auto d = handle(minor);
    if (!d) return unexpected(d.error());
    if (!nvml_.set_mig_mode) return unsupported("nvmlDeviceSetMigMode");
    nvmlReturn_t activation = NVML_SUCCESS;
    if (auto r = nvml_.set_mig_mode(*d, enabled ? 1 : 0, &activation); r != NVML_SUCCESS)
      return unexpected(ErrorCode::kIo,
                        fmt::format("setting MIG mode on GPU {}: {}", minor, nvml_.error(r)));
    if (activation != NVML_SUCCESS)
      return unexpected(ErrorCode::kIo,
                        fmt::format("MIG mode change on GPU {} needs a GPU reset: {}", minor,
                                    nvml_.error(activation)));
    return ok();
  }

  Result<api::MigDeviceInfo> create_mig_device(int minor, const api::MigProfileInfo& profile,
                                               int placement_start) override {
    std::lock_guard lock(mu_);
    auto d = handle(minor);
    if (!d) return unexpected(d.error());
    if (!nvml_.create_gi || !nvml_.create_ci || !nvml_.ci_profile_info || !nvml_.gi_info)
      return unexpected(unsupported("creating MIG devices").error());
    const nvmlGpuInstancePlacement_t placement{static_cast<unsigned int>(placement_start),
                                               static_cast<unsigned int>(profile.memory_slices)};
    nvmlGpuInstance_t gi = nullptr;
    if (auto r =
            nvml_.create_gi(*d, static_cast<unsigned int>(profile.gi_profile_id), &placement, &gi);
        r != NVML_SUCCESS)
      return unexpected(ErrorCode::kIo, nvml_.error(r));
    const int ci_index = compute_profile_index(static_cast<unsigned int>(profile.compute_slices));
    nvmlComputeInstanceProfileInfo_t ci_info{};
    nvmlComputeInstance_t ci = nullptr;
    nvmlReturn_t r =
        ci_index < 0 ? NVML_ERROR_NOT_SUPPORTED
                     : nvml_.ci_profile_info(gi, static_cast<unsigned int>(ci_index), 0, &ci_info);
    if (r == NVML_SUCCESS) r = nvml_.create_ci(gi, ci_info.id, &ci);
    if (r != NVML_SUCCESS) {
      nvml_.destroy_gi(gi);  // no half-made MIG device
      return unexpected(ErrorCode::kIo, "creating the compute instance: " + nvml_.error(r));
    }
    nvmlGpuInstanceInfo_t info{};
    nvml_.gi_info(gi, &info);
    api::GpuInfo g;
    g.minor = minor;
    for (const auto& known : gpus_) {
      if (known.minor == minor) g = known;
    }
    std::vector<api::MigDeviceInfo> devices;
    read_mig_devices(*d, g, devices);
    for (auto& m : devices) {
      if (m.gi_id == static_cast<int>(info.id)) return m;
    }
    return unexpected(ErrorCode::kIo,
                      fmt::format("the new MIG device (GPU instance {}) is not listed", info.id));
  }

  Status destroy_mig_device(const api::MigDeviceInfo& device) override {
    std::lock_guard lock(mu_);
    auto d = handle(device.parent_minor);
    if (!d) return unexpected(d.error());
    if (!nvml_.gi_by_id || !nvml_.cis || !nvml_.destroy_ci || !nvml_.destroy_gi)
      return unsupported("destroying MIG devices");
    nvmlGpuInstance_t gi = nullptr;
    if (nvml_.gi_by_id(*d, static_cast<unsigned int>(device.gi_id), &gi) != NVML_SUCCESS)
      return ok();
    for (unsigned int p = 0; p < 8; ++p) {
      nvmlComputeInstanceProfileInfo_t info{};
      if (nvml_.ci_profile_info(gi, p, 0, &info) != NVML_SUCCESS) continue;
      std::array<nvmlComputeInstance_t, 8> cis{};
      unsigned int n = static_cast<unsigned int>(cis.size());
      if (nvml_.cis(gi, info.id, cis.data(), &n) != NVML_SUCCESS) continue;
      for (unsigned int i = 0; i < n; ++i) {
        if (auto r = nvml_.destroy_ci(cis[i]); r != NVML_SUCCESS)
          return unexpected(ErrorCode::kIo, "destroying a compute instance: " + nvml_.error(r));
      }
    }
    if (auto r = nvml_.destroy_gi(gi); r != NVML_SUCCESS)
      return unexpected(ErrorCode::kIo, "destroying the GPU instance: " + nvml_.error(r));
    return ok();
  }

  // XID events since the last call (NVIDIA's NVMLDeviceHealthCheck), without blocking.
  std::vector<HealthEvent> health_events() override {
    std::lock_guard lock(mu_);
    std::vector<HealthEvent> out;
    if (!opt_.health_events || !nvml_.event_set_create || !nvml_.register_events ||
        !nvml_.event_wait)
      return out;
    if (!events_) {
      if (handles_.empty()) return out;  // NVML released (passthrough): after the next discover
      if (nvml_.event_set_create(&events_) != NVML_SUCCESS) {
        events_ = nullptr;
        return out;
      }
      for (const auto& [minor, d] : handles_) {
        if (auto r = nvml_.register_events(d, nvmlEventTypeXidCriticalError, events_);
            r != NVML_SUCCESS)
          NVDRA_WARN("GPU {}: XID events cannot be watched: {}", minor, nvml_.error(r));
      }
    }
    for (int i = 0; i < 64; ++i) {
      nvmlEventData_t e{};
      const nvmlReturn_t r = nvml_.event_wait(events_, &e, 0);
      if (r == NVML_ERROR_GPU_IS_LOST) {
        for (const auto& [minor, d] : handles_)
          out.push_back({minor, 0, true});
        break;
      }
      if (r != NVML_SUCCESS) break;  // NVML_ERROR_TIMEOUT: nothing more now
      if (!(e.eventType & nvmlEventTypeXidCriticalError)) continue;
      for (const auto& [minor, d] : handles_) {
        if (d == e.device) out.push_back({minor, static_cast<int>(e.eventData), false});
      }
    }
    return out;
  }
  Executor& executor() override { return executor_; }

 private:
  static Status unsupported(std::string_view what) {
    return unexpected(ErrorCode::kInternal,
                      fmt::format("{} is not available in this NVML (libnvidia-ml.so.1)", what));
  }

  fs::path pci_device(const std::string& bus) const {
    return fs::path(opt_.sys_root) / "bus/pci/devices" / bus;
  }

  // What sysfs tells of the GPU: PCIe root, NUMA node, IOMMU group.
  void describe_pci(api::GpuInfo& g) const {
    const fs::path dev = pci_device(g.pci_bus_id);
    std::error_code ec;
    for (const auto& part : fs::read_symlink(dev, ec)) {
      if (part.string().starts_with("pci")) g.pcie_root = part.string();
    }
    g.numa_node = int_file(dev / "numa_node", -1);
    g.iommu_group = iommu_group_of(dev);
    g.vfio_bound = bound_driver(dev) == "vfio-pci";
  }

  // Moves a PCI device to another driver the way the kernel expects it: the override, unbind
  // from the current driver, a probe; then a short wait, as the kernel binds asynchronously.
  Status rebind(const std::string& bus, std::string_view driver_override,
                std::string_view driver) const {
    const fs::path dev = pci_device(bus);
    Status s = write_sysfs(dev / "driver_override", driver_override);
    if (s && !bound_driver(dev).empty()) s = write_sysfs(dev / "driver" / "unbind", bus);
    if (s) s = write_sysfs(fs::path(opt_.sys_root) / "bus/pci/drivers_probe", bus);
    if (!s) return s;
    for (int i = 0; i < 50; ++i) {
      if (bound_driver(dev) == driver) return ok();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return unexpected(ErrorCode::kTimeout,
                      fmt::format("{} did not take the device within 5 s (it has \"{}\")", driver,
                                  bound_driver(dev)));
  }

  // Shuts NVML down (its open device files would keep a GPU from leaving the nvidia driver);
  // handles and the event set are gone until the next discover().
  void release_nvml() {
    if (events_ && nvml_.event_set_free) nvml_.event_set_free(events_);
    events_ = nullptr;
    handles_.clear();
    if (nvml_.shutdown) nvml_.shutdown();
  }

  Result<nvmlDevice_t> handle(int minor) {
    auto it = handles_.find(minor);
    if (it == handles_.end())
      return unexpected(ErrorCode::kNotFound, fmt::format("no GPU with minor {}", minor));
    return it->second;
  }

  void read_profiles(nvmlDevice_t d, api::GpuInfo& g) {
    if (!nvml_.gi_profile_info || !nvml_.gi_placements) return;
    for (unsigned int index : kGpuInstanceProfiles) {
      nvmlGpuInstanceProfileInfo_t info{};
      if (nvml_.gi_profile_info(d, index, &info) != NVML_SUCCESS) continue;
      api::MigProfileInfo p;
      p.name = mig_profile_name(info.sliceCount, info.memorySizeMB, g.memory_bytes);
      p.gi_profile_id = static_cast<int>(info.id);
      p.compute_slices = static_cast<int>(info.sliceCount);
      p.memory_mib = static_cast<int64_t>(info.memorySizeMB);
      p.multiprocessors = static_cast<int>(info.multiprocessorCount);
      p.copy_engines = static_cast<int>(info.copyEngineCount);
      p.decoders = static_cast<int>(info.decoderCount);
      p.encoders = static_cast<int>(info.encoderCount);
      p.jpeg_engines = static_cast<int>(info.jpegCount);
      p.ofa_engines = static_cast<int>(info.ofaCount);
      std::array<nvmlGpuInstancePlacement_t, 16> placements{};
      unsigned int n = static_cast<unsigned int>(placements.size());
      if (nvml_.gi_placements(d, info.id, placements.data(), &n) != NVML_SUCCESS) continue;
      for (unsigned int i = 0; i < n && i < placements.size(); ++i) {
        p.placements.push_back(static_cast<int>(placements[i].start));
        p.memory_slices = static_cast<int>(placements[i].size);
      }
      if (!p.placements.empty()) g.mig_profiles.push_back(std::move(p));
    }
  }

  void read_mig_devices(nvmlDevice_t d, const api::GpuInfo& g,
                        std::vector<api::MigDeviceInfo>& out) {
    if (!nvml_.max_mig_devices || !nvml_.mig_handle || !nvml_.mig_gi_id || !nvml_.gi_by_id ||
        !nvml_.gi_info)
      return;
    unsigned int max = 0;
    if (nvml_.max_mig_devices(d, &max) != NVML_SUCCESS) return;
    std::array<char, 96> buf{};
    for (unsigned int i = 0; i < max; ++i) {
      nvmlDevice_t m;
      if (nvml_.mig_handle(d, i, &m) != NVML_SUCCESS) continue;
      api::MigDeviceInfo info;
      info.parent_minor = g.minor;
      info.parent_uuid = g.uuid;
      if (nvml_.uuid(m, buf.data(), buf.size()) == NVML_SUCCESS) info.uuid = buf.data();
      unsigned int gi_id = 0, ci_id = 0;
      if (nvml_.mig_gi_id(m, &gi_id) != NVML_SUCCESS) continue;
      if (nvml_.mig_ci_id) nvml_.mig_ci_id(m, &ci_id);
      info.gi_id = static_cast<int>(gi_id);
      info.ci_id = static_cast<int>(ci_id);
      nvmlGpuInstance_t gi = nullptr;
      nvmlGpuInstanceInfo_t gi_info{};
      if (nvml_.gi_by_id(d, gi_id, &gi) != NVML_SUCCESS ||
          nvml_.gi_info(gi, &gi_info) != NVML_SUCCESS)
        continue;
      info.placement_start = static_cast<int>(gi_info.placement.start);
      for (const auto& p : g.mig_profiles) {
        if (p.gi_profile_id == static_cast<int>(gi_info.profileId)) info.profile = p;
      }
      if (info.profile.name.empty()) continue;  // a profile nvdra does not publish (+me)
      info.profile.placements.clear();
      out.push_back(std::move(info));
    }
  }

  // "<clusterUUID>.<cliqueId>", "" without an NVLink fabric, an error for a fabric that is not
  // ready when strict (NVIDIA's CrashOnNVLinkFabricErrors).
  Result<std::string> fabric_clique(nvmlDevice_t d, const api::GpuInfo& g) {
    if (!nvml_.fabric) return std::string();
    nvmlGpuFabricInfo_t f{};
    const nvmlReturn_t r = nvml_.fabric(d, &f);
    if (r == NVML_ERROR_NOT_SUPPORTED ||
        (r == NVML_SUCCESS && f.state == NVML_GPU_FABRIC_STATE_NOT_SUPPORTED))
      return std::string();
    const bool zero = std::all_of(std::begin(f.clusterUuid), std::end(f.clusterUuid),
                                  [](unsigned char c) { return c == 0; });
    if (r == NVML_SUCCESS && f.state == NVML_GPU_FABRIC_STATE_COMPLETED &&
        f.status == NVML_SUCCESS && !zero)
      return fmt::format("{}.{}", api::uuid_text(f.clusterUuid), f.cliqueId);
    if (r == NVML_SUCCESS && zero) return std::string();
    if (!opt_.strict_fabric) return std::string();
    if (r != NVML_SUCCESS)
      return unexpected(ErrorCode::kIo,
                        fmt::format("NVLink fabric info of {}: {}", g.uuid, nvml_.error(r)));
    if (f.state != NVML_GPU_FABRIC_STATE_COMPLETED)
      return unexpected(ErrorCode::kIo,
                        fmt::format("NVLink fabric not attached (device {}): state={}, "
                                    "refusing to start",
                                    g.uuid, f.state));
    return unexpected(ErrorCode::kIo,
                      fmt::format("NVLink fabric registration error (device {}): {}, "
                                  "refusing to start",
                                  g.uuid, nvml_.error(f.status)));
  }

  Status save_vfio_locked() {
    if (opt_.vfio_record_path.empty()) return ok();
    return save_vfio_record(opt_.vfio_record_path, vfio_bound_);
  }

  Nvml nvml_;
  NvmlOptions opt_;
  std::mutex mu_;
  nvmlEventSet_t events_ = nullptr;                 // XID events of every GPU; guarded by mu_
  std::map<int, nvmlDevice_t> handles_;             // by minor; guarded by mu_
  std::map<std::string, api::GpuInfo> vfio_bound_;  // GPUs we bound to vfio-pci, by bus ID; mu_
  std::vector<api::GpuInfo> gpus_;                  // guarded by mu_
  ProcessExecutor executor_;
};

}  // namespace

Result<std::unique_ptr<DeviceBackend>> make_nvml_backend(const NvmlOptions& options) {
  const std::string driver_root = options.driver_root == "/" ? std::string() : options.driver_root;
  std::vector<std::string> candidates;
  for (const char* dir : {"/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                          "/lib64", "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu"}) {
    candidates.push_back(driver_root + dir + "/libnvidia-ml.so.1");
  }
  candidates.push_back("libnvidia-ml.so.1");  // the loader's own search path
  Nvml nvml;
  std::string tried;
  for (const auto& c : candidates) {
    if (c.find('/') != std::string::npos && !std::filesystem::exists(c)) continue;
    nvml.lib = ::dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (nvml.lib) break;
    tried += fmt::format(" {}: {};", c, ::dlerror());
  }
  if (!nvml.lib)
    return unexpected(
        ErrorCode::kNotFound,
        fmt::format("cannot load libnvidia-ml.so.1 under driver root {} (is the NVIDIA "
                    "driver installed?){}",
                    driver_root.empty() ? "/" : driver_root, tried));
  bool ok = nvml.load(nvml.init, "nvmlInit_v2") && nvml.load(nvml.shutdown, "nvmlShutdown") &&
            nvml.load(nvml.system_driver_version, "nvmlSystemGetDriverVersion") &&
            nvml.load(nvml.count, "nvmlDeviceGetCount_v2") &&
            nvml.load(nvml.handle_by_index, "nvmlDeviceGetHandleByIndex_v2") &&
            nvml.load(nvml.uuid, "nvmlDeviceGetUUID") &&
            nvml.load(nvml.name, "nvmlDeviceGetName") &&
            nvml.load(nvml.minor, "nvmlDeviceGetMinorNumber") &&
            nvml.load(nvml.compute_capability, "nvmlDeviceGetCudaComputeCapability") &&
            nvml.load(nvml.memory, "nvmlDeviceGetMemoryInfo") &&
            nvml.load(nvml.pci, "nvmlDeviceGetPciInfo_v3");
  if (!ok)
    return unexpected(ErrorCode::kNotFound,
                      "libnvidia-ml.so.1 lacks an NVML entry point nvdra needs");
  nvml.load(nvml.error_string, "nvmlErrorString");
  nvml.load(nvml.system_cuda_version, "nvmlSystemGetCudaDriverVersion_v2");
  nvml.load(nvml.brand, "nvmlDeviceGetBrand");
  nvml.load(nvml.architecture, "nvmlDeviceGetArchitecture");
  nvml.load(nvml.mig_mode, "nvmlDeviceGetMigMode");
  nvml.load(nvml.set_mig_mode, "nvmlDeviceSetMigMode");
  nvml.load(nvml.gi_profile_info, "nvmlDeviceGetGpuInstanceProfileInfo");
  nvml.load(nvml.gi_placements, "nvmlDeviceGetGpuInstancePossiblePlacements_v2");
  nvml.load(nvml.max_mig_devices, "nvmlDeviceGetMaxMigDeviceCount");
  nvml.load(nvml.mig_handle, "nvmlDeviceGetMigDeviceHandleByIndex");
  nvml.load(nvml.mig_gi_id, "nvmlDeviceGetGpuInstanceId");
  nvml.load(nvml.mig_ci_id, "nvmlDeviceGetComputeInstanceId");
  nvml.load(nvml.gi_by_id, "nvmlDeviceGetGpuInstanceById");
  nvml.load(nvml.gi_info, "nvmlGpuInstanceGetInfo");
  nvml.load(nvml.create_gi, "nvmlDeviceCreateGpuInstanceWithPlacement");
  nvml.load(nvml.ci_profile_info, "nvmlGpuInstanceGetComputeInstanceProfileInfo");
  nvml.load(nvml.create_ci, "nvmlGpuInstanceCreateComputeInstance");
  nvml.load(nvml.cis, "nvmlGpuInstanceGetComputeInstances");
  nvml.load(nvml.destroy_ci, "nvmlComputeInstanceDestroy");
  nvml.load(nvml.destroy_gi, "nvmlGpuInstanceDestroy");
  nvml.load(nvml.fabric, "nvmlDeviceGetGpuFabricInfo");
  nvml.load(nvml.addressing_mode, "nvmlDeviceGetAddressingMode");
  nvml.load(nvml.set_persistence, "nvmlDeviceSetPersistenceMode");
  nvml.load(nvml.handle_by_pci, "nvmlDeviceGetHandleByPciBusId_v2");
  nvml.load(nvml.event_set_create, "nvmlEventSetCreate");
  nvml.load(nvml.register_events, "nvmlDeviceRegisterEvents");
  nvml.load(nvml.event_wait, "nvmlEventSetWait_v2");
  nvml.load(nvml.event_set_free, "nvmlEventSetFree");
  if (auto r = nvml.init(0); r != NVML_SUCCESS)
    return unexpected(ErrorCode::kIo, "nvmlInit: " + nvml.error(r));
  VfioRecord bound;
  if (!options.vfio_record_path.empty()) {
    auto record = load_vfio_record(options.vfio_record_path);
    if (!record && record.error().code != ErrorCode::kInvalidArgument)
      return unexpected(record.error().wrap("reading the GPUs bound to vfio-pci"));
    if (record) {
      bound = std::move(*record);
    } else {
      // Corrupt: the bindings are still found on the bus for GPUs NVML lists; say what is lost.
      NVDRA_ERROR("{}; GPUs on vfio-pci that NVML no longer lists must be given back by hand",
                  record.error().message);
    }
  }
  return std::unique_ptr<DeviceBackend>(new NvmlBackend(nvml, options, std::move(bound)));
}

}  // namespace nvdra::agent
