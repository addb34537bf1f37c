// The agent's checkpoint file: any bytes are a checkpoint or an error, never a crash; what
// decodes encodes back to the same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/state/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = nvdra::agent::decode_checkpoint(text);
  if (!c) return 0;
  auto again = nvdra::agent::decode_checkpoint(nvdra::agent::encode_checkpoint(*c));
  if (!again || !(*again == *c)) std::abort();
  return 0;
}
