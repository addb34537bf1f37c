// The record of GPUs on vfio-pci: any bytes are a record or an error, never a crash; what
// decodes encodes back to the same record.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/device/vfio_record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = nvdra::agent::decode_vfio_record(text);
  if (!r) return 0;
  auto again = nvdra::agent::decode_vfio_record(nvdra::agent::encode_vfio_record(*r));
  if (!again || again->size() != r->size()) std::abort();
  return 0;
}
