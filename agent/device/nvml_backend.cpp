// The NVML backend: libnvidia-ml.so.1 loaded with dlopen, with nvdra's own declarations of the
// few C entry points it calls (no NVIDIA headers at build time). Discovery only reads; MIG
// creation and destruction go through NVML's GPU-instance calls.
#include <dlfcn.h>

#include <fmt/format.h>

#include <array>
#include <filesystem>

#include "agent/device/backend.h"
#include "base/log.h"

namespace nvdra::agent {
namespace {

// ---- nvml.h subset (ABI of NVML 12.x) ----
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
constexpr nvmlReturn_t NVML_SUCCESS = 0;
constexpr nvmlReturn_t NVML_ERROR_NOT_SUPPORTED = 3;
struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlPciInfo_t {
  char busIdLegacy[16];
  unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
  char busId[32];
};

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

std::string brand_name(int b) {
  static constexpr std::array<const char*, 18> kNames = {
      "Unknown",       "Quadro",      "Tesla",     "NVS",       "Grid",       "GeForce",
      "Titan",         "NvidiaVApps", "NvidiaVPC", "NvidiaVCS", "NvidiaVWS",  "NvidiaCloudGaming",
      "NvidiaVGaming", "QuadroRTX",   "NvidiaRTX", "Nvidia",    "GeForceRTX", "TitanRTX"};
  return b >= 0 && b < static_cast<int>(kNames.size()) ? kNames[b] : "Unknown";
}

class NvmlBackend final : public DeviceBackend {
 public:
  NvmlBackend(Nvml nvml, bool dynamic) : nvml_(nvml), dynamic_(dynamic) {}
  ~NvmlBackend() override {
    if (nvml_.shutdown) nvml_.shutdown();
  }

  Result<api::NodeDevices> discover() override {
    api::NodeDevices out;
    std::array<char, 96> buf{};
    if (nvml_.system_driver_version(buf.data(), buf.size()) == NVML_SUCCESS)
      out.driver_version = buf.data();
    if (nvml_.system_cuda_version) nvml_.system_cuda_version(&out.cuda_driver_version);
    unsigned int count = 0;
    if (auto r = nvml_.count(&count); r != NVML_SUCCESS)
      return unexpected(ErrorCode::kIo, "nvmlDeviceGetCount: " + nvml_.error(r));
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
      nvmlMemory_t mem{};
      if (nvml_.memory(d, &mem) == NVML_SUCCESS) g.memory_bytes = static_cast<int64_t>(mem.total);
      nvmlPciInfo_t pci{};
      if (nvml_.pci(d, &pci) == NVML_SUCCESS) {
        std::string bus = pci.busId;
        std::transform(bus.begin(), bus.end(), bus.begin(), ::tolower);
        // NVML pads the domain to 8 digits; the attribute uses the kernel's 4-digit form.
        if (bus.size() == 16 && bus.starts_with("0000")) bus = bus.substr(4);
        g.pci_bus_id = bus;
        std::error_code ec;
        const auto link = std::filesystem::read_symlink("/sys/bus/pci/devices/" + bus, ec);
        for (const auto& part : link) {
          if (part.string().starts_with("pci")) g.pcie_root = part.string();
        }
      }
      unsigned int current = 0, pending = 0;
      const auto mig =
          nvml_.mig_mode ? nvml_.mig_mode(d, &current, &pending) : NVML_ERROR_NOT_SUPPORTED;
      g.mig_capable = mig == NVML_SUCCESS;
      g.mig_enabled = mig == NVML_SUCCESS && current == 1;
      out.gpus.push_back(std::move(g));
    }
    return out;
  }

  bool dynamic_mig() const override { return dynamic_; }
  Status set_mig_mode(int, bool) override { return unsupported("changing MIG mode"); }
  Result<api::MigDeviceInfo> create_mig_device(int, const api::MigProfileInfo&, int) override {
    return unexpected(unsupported("creating MIG devices").error());
  }
  Status destroy_mig_device(const api::MigDeviceInfo&) override {
    return unsupported("destroying MIG devices");
  }
  std::vector<HealthEvent> health_events() override { return {}; }
  Executor& executor() override { return executor_; }

 private:
  static Status unsupported(std::string_view what) {
    return unexpected(ErrorCode::kInternal,
                      fmt::format("{} through NVML is not implemented yet in nvdra-agent", what));
  }
  Nvml nvml_;
  bool dynamic_;
  ProcessExecutor executor_;
};

}  // namespace

Result<std::unique_ptr<DeviceBackend>> make_nvml_backend(const std::string& driver_root,
                                                         bool dynamic_mig) {
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
                    driver_root, tried));
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
  if (auto r = nvml.init(0); r != NVML_SUCCESS)
    return unexpected(ErrorCode::kIo, "nvmlInit: " + nvml.error(r));
  return std::unique_ptr<DeviceBackend>(new NvmlBackend(nvml, dynamic_mig));
}

}  // namespace nvdra::agent
