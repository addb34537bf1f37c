// nvdra's declarations of the part of NVML's C API (nvml.h, NVML 12.x) that the NVML backend
// uses, so no NVIDIA header is needed at build time. The test NVML library implements the same.
#pragma once

namespace nvdra::agent::nvml {

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
using nvmlGpuInstance_t = struct nvmlGpuInstance_st*;
using nvmlComputeInstance_t = struct nvmlComputeInstance_st*;
struct nvmlGpuInstancePlacement_t {
  unsigned int start, size;
};
struct nvmlGpuInstanceProfileInfo_t {
  unsigned int id, isP2pSupported, sliceCount, instanceCount, multiprocessorCount, copyEngineCount,
      decoderCount, encoderCount, jpegCount, ofaCount;
  unsigned long long memorySizeMB;
};
struct nvmlGpuInstanceInfo_t {
  nvmlDevice_t device;
  unsigned int id, profileId;
  nvmlGpuInstancePlacement_t placement;
};
struct nvmlComputeInstanceProfileInfo_t {
  unsigned int id, sliceCount, instanceCount, multiprocessorCount, sharedCopyEngineCount,
      sharedDecoderCount, sharedEncoderCount, sharedJpegCount, sharedOfaCount;
};
struct nvmlGpuFabricInfo_t {
  unsigned char clusterUuid[16];
  nvmlReturn_t status;
  unsigned int cliqueId;
  unsigned char state;
};
// nvmlDeviceGetAddressingMode (driver 575+): version = sizeof | 1 << 24 (NVML_STRUCT_VERSION).
struct nvmlDeviceAddressingMode_t {
  unsigned int version, value;
};
constexpr unsigned int nvmlDeviceAddressingMode_v1 = sizeof(nvmlDeviceAddressingMode_t) | 1u << 24;
constexpr unsigned int NVML_DEVICE_ADDRESSING_MODE_HMM = 1;
constexpr unsigned int NVML_DEVICE_ADDRESSING_MODE_ATS = 2;
constexpr unsigned int NVML_FEATURE_DISABLED = 0, NVML_FEATURE_ENABLED = 1;
using nvmlEventSet_t = struct nvmlEventSet_st*;
struct nvmlEventData_t {
  nvmlDevice_t device;
  unsigned long long eventType, eventData;  // eventData: the XID of an XID event
  unsigned int gpuInstanceId, computeInstanceId;
};
constexpr unsigned long long nvmlEventTypeXidCriticalError = 0x8;
constexpr nvmlReturn_t NVML_ERROR_TIMEOUT = 10;
constexpr nvmlReturn_t NVML_ERROR_GPU_IS_LOST = 15;
constexpr unsigned char NVML_GPU_FABRIC_STATE_NOT_SUPPORTED = 0;
constexpr unsigned char NVML_GPU_FABRIC_STATE_COMPLETED = 3;

}  // namespace nvdra::agent::nvml
