// The GPUs this agent bound to vfio-pci, kept in a file beside the checkpoint. NVML no longer
// lists a GPU on vfio-pci, so after a restart this record is how the agent still knows it as the
// node's: it keeps publishing it for the claim that passes it through, and gives it back to the
// nvidia driver when no claim does. Boost-free.
#pragma once

#include <map>
#include <string>

#include "api/nvidia_devices.h"
#include "base/result.h"

namespace nvdra::agent {

using VfioRecord = std::map<std::string, api::GpuInfo>;  // by PCI bus ID

std::string encode_vfio_record(const VfioRecord& bound);
Result<VfioRecord> decode_vfio_record(std::string_view text);

// An empty record when there is no file; written atomically and durably, mode 0600.
Result<VfioRecord> load_vfio_record(const std::string& path);
Status save_vfio_record(const std::string& path, const VfioRecord& bound);

}  // namespace nvdra::agent
