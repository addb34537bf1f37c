// A stand-in libnvidia-ml.so.1 for the NVML backend's tests: two H100-like GPUs on an NVLink
// fabric, MIG capable, with two MIG profiles and a working GPU/compute-instance lifecycle. It
// implements nvdra's declarations of the C API (agent/device/nvml_api.h), so it tests the
// backend's use of NVML, not NVIDIA's ABI.
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "agent/device/nvml_api.h"

using namespace nvdra::agent::nvml;

namespace {

struct Gpu {
  unsigned int mig_mode = 0;
  std::map<unsigned int, std::pair<unsigned int, unsigned int>>
      instances;  // gi id → profile, start
};
Gpu gpus[2];
struct Profile {
  unsigned int index, id, slices, size;
  unsigned long long mb;
};
constexpr Profile kProfiles[] = {{0, 19, 1, 1, 9856}, {4, 0, 7, 8, 80896}};

int gpu_of(nvmlDevice_t d) {
  return static_cast<int>(reinterpret_cast<uintptr_t>(d)) - 1;
}
nvmlDevice_t device(int i) {
  return reinterpret_cast<nvmlDevice_t>(static_cast<uintptr_t>(i + 1));
}
// A MIG device handle encodes GPU and GPU-instance id; GPU-instance handles the same.
nvmlDevice_t mig_device(int gpu, unsigned int gi) {
  return reinterpret_cast<nvmlDevice_t>(static_cast<uintptr_t>(0x1000 + gpu * 0x100 + gi));
}
void copy(char* out, unsigned int len, const std::string& s) {
  std::strncpy(out, s.c_str(), len);
  out[len - 1] = 0;
}

}  // namespace

extern "C" {
nvmlReturn_t nvmlInit_v2(unsigned int) {
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlShutdown() {
  return NVML_SUCCESS;
}
const char* nvmlErrorString(nvmlReturn_t r) {
  return r == 2 ? "Insufficient Resources" : "mock error";
}
nvmlReturn_t nvmlSystemGetDriverVersion(char* v, unsigned int len) {
  copy(v, len, "570.158.01");
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int* v) {
  *v = 12080;
  return NVML_SUCCESS;
}
// NVDRA_MOCK_NVML_HIDE_GPU0=1: GPU 0 is on vfio-pci, and NVML no longer sees it.
bool gpu0_hidden() {
  return std::getenv("NVDRA_MOCK_NVML_HIDE_GPU0") != nullptr;
}
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* n) {
  *n = gpu0_hidden() ? 1 : 2;
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t* d) {
  if (gpu0_hidden()) ++i;
  if (i >= 2) return 2;
  *d = device(static_cast<int>(i));
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char* out, unsigned int len) {
  const auto v = reinterpret_cast<uintptr_t>(d);
  copy(out, len,
       v >= 0x1000 ? "MIG-mock-" + std::to_string(v) : "GPU-mock-" + std::to_string(gpu_of(d)));
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t, char* out, unsigned int len) {
  copy(out, len, "NVIDIA H100 80GB HBM3");
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t d, unsigned int* m) {
  *m = static_cast<unsigned int>(gpu_of(d)) + 4;  // minors differ from indexes on purpose
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetBrand(nvmlDevice_t d, int* b) {
  *b = gpu_of(d) == 0 ? 14 : 2;  // NVML_BRAND_NVIDIA (what an H200 reports), NVML_BRAND_TESLA
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t, unsigned int* a) {
  *a = 9;  // Hopper
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t, int* major, int* minor) {
  *major = 9;
  *minor = 0;
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t, nvmlMemory_t* m) {
  m->total = 85520809984ull;  // 81559 MiB
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t* p) {
  std::memset(p, 0, sizeof *p);
  copy(p->busId, sizeof p->busId, gpu_of(d) == 0 ? "00000000:1A:00.0" : "00000000:3B:00.0");
  return NVML_SUCCESS;
}
// GPU 0 answers with a version it knows, GPU 1 as a GPU without the feature.
nvmlReturn_t nvmlDeviceGetAddressingMode(nvmlDevice_t d, nvmlDeviceAddressingMode_t* m) {
  if (m->version != nvmlDeviceAddressingMode_v1) return 25;  // NVML_ERROR_ARGUMENT_VERSION_MISMATCH
  if (gpu_of(d) != 0) return NVML_ERROR_NOT_SUPPORTED;
  m->value = NVML_DEVICE_ADDRESSING_MODE_HMM;
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int* current, unsigned int* pending) {
  *current = *pending = gpus[gpu_of(d)].mig_mode;
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceSetMigMode(nvmlDevice_t d, unsigned int mode, nvmlReturn_t* activation) {
  gpus[gpu_of(d)].mig_mode = mode;
  *activation = NVML_SUCCESS;
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfo(nvmlDevice_t, unsigned int index,
                                                 nvmlGpuInstanceProfileInfo_t* info) {
  for (const auto& p : kProfiles) {
    if (p.index != index) continue;
    std::memset(info, 0, sizeof *info);
    info->id = p.id;
    info->sliceCount = p.slices;
    info->multiprocessorCount = p.slices * 16;
    info->copyEngineCount = p.slices;
    info->memorySizeMB = p.mb;
    return NVML_SUCCESS;
  }
  return NVML_ERROR_NOT_SUPPORTED;
}
nvmlReturn_t nvmlDeviceGetGpuInstancePossiblePlacements_v2(nvmlDevice_t, unsigned int id,
                                                           nvmlGpuInstancePlacement_t* out,
                                                           unsigned int* n) {
  for (const auto& p : kProfiles) {
    if (p.id != id) continue;
    const unsigned int count = p.slices == 1 ? 7 : 1;
    for (unsigned int i = 0; i < count && i < *n; ++i)
      out[i] = {i, p.size};
    *n = count;
    return NVML_SUCCESS;
  }
  return NVML_ERROR_NOT_SUPPORTED;
}
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t, unsigned int* n) {
  *n = 7;
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned int i,
                                                 nvmlDevice_t* out) {
  auto& g = gpus[gpu_of(d)];
  auto it = g.instances.begin();
  for (unsigned int k = 0; k < i && it != g.instances.end(); ++k)
    ++it;
  if (it == g.instances.end()) return 6;  // NOT_FOUND
  *out = mig_device(gpu_of(d), it->first);
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t m, unsigned int* id) {
  *id = static_cast<unsigned int>((reinterpret_cast<uintptr_t>(m) - 0x1000) % 0x100);
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t, unsigned int* id) {
  *id = 0;
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetGpuInstanceById(nvmlDevice_t d, unsigned int id, nvmlGpuInstance_t* gi) {
  if (!gpus[gpu_of(d)].instances.contains(id)) return 6;
  *gi = reinterpret_cast<nvmlGpuInstance_t>(mig_device(gpu_of(d), id));
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlGpuInstanceGetInfo(nvmlGpuInstance_t gi, nvmlGpuInstanceInfo_t* info) {
  const auto v = reinterpret_cast<uintptr_t>(gi) - 0x1000;
  const int gpu = static_cast<int>(v / 0x100);
  const unsigned int id = static_cast<unsigned int>(v % 0x100);
  const auto& inst = gpus[gpu].instances.at(id);
  *info = {device(gpu), id, inst.first, {inst.second, 1}};
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceCreateGpuInstanceWithPlacement(nvmlDevice_t d, unsigned int profile,
                                                      const nvmlGpuInstancePlacement_t* p,
                                                      nvmlGpuInstance_t* gi) {
  auto& g = gpus[gpu_of(d)];
  if (g.mig_mode != 1) return NVML_ERROR_NOT_SUPPORTED;
  for (const auto& [id, inst] : g.instances) {
    if (inst.second == p->start) return 2;  // Insufficient Resources
  }
  unsigned int id = 1;
  while (g.instances.contains(id))
    ++id;
  g.instances[id] = {profile, p->start};
  *gi = reinterpret_cast<nvmlGpuInstance_t>(mig_device(gpu_of(d), id));
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlGpuInstanceGetComputeInstanceProfileInfo(nvmlGpuInstance_t, unsigned int index,
                                                          unsigned int,
                                                          nvmlComputeInstanceProfileInfo_t* info) {
  std::memset(info, 0, sizeof *info);
  info->id = index;
  return index <= 4 ? NVML_SUCCESS : NVML_ERROR_NOT_SUPPORTED;
}
nvmlReturn_t nvmlGpuInstanceCreateComputeInstance(nvmlGpuInstance_t gi, unsigned int,
                                                  nvmlComputeInstance_t* ci) {
  *ci = reinterpret_cast<nvmlComputeInstance_t>(gi);
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlGpuInstanceGetComputeInstances(nvmlGpuInstance_t gi, unsigned int profile,
                                                nvmlComputeInstance_t* out, unsigned int* n) {
  *n = profile == 0 ? 1 : 0;
  if (*n) out[0] = reinterpret_cast<nvmlComputeInstance_t>(gi);
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlComputeInstanceDestroy(nvmlComputeInstance_t) {
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlGpuInstanceDestroy(nvmlGpuInstance_t gi) {
  const auto v = reinterpret_cast<uintptr_t>(gi) - 0x1000;
  gpus[v / 0x100].instances.erase(static_cast<unsigned int>(v % 0x100));
  return NVML_SUCCESS;
}
// XID events: a test sets NVDRA_MOCK_NVML_XID=<gpu index>:<xid> before the first wait.
nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set) {
  *set = reinterpret_cast<nvmlEventSet_t>(static_cast<uintptr_t>(1));
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t, unsigned long long, nvmlEventSet_t) {
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t, nvmlEventData_t* e, unsigned int) {
  static bool delivered = false;
  const char* xid = std::getenv("NVDRA_MOCK_NVML_XID");
  if (!xid || delivered) return NVML_ERROR_TIMEOUT;
  delivered = true;
  std::memset(e, 0, sizeof *e);
  e->device = device(std::atoi(xid));
  e->eventType = nvmlEventTypeXidCriticalError;
  e->eventData = static_cast<unsigned long long>(std::atoi(std::strchr(xid, ':') + 1));
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t) {
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetGpuFabricInfo(nvmlDevice_t, nvmlGpuFabricInfo_t* f) {
  const unsigned char uuid[16] = {0x5c, 0x3a, 0x1d, 0x2e, 0x8f, 0x4b, 0x4e, 0x6a,
                                  0x9b, 0x7c, 0x0d, 0x1e, 0x2f, 0x3a, 0x4b, 0x5c};
  std::memcpy(f->clusterUuid, uuid, 16);
  f->status = NVML_SUCCESS;
  f->cliqueId = 7;
  f->state = NVML_GPU_FABRIC_STATE_COMPLETED;
  return NVML_SUCCESS;
}
}
