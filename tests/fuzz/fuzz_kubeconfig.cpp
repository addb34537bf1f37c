// The kubeconfig parser must turn any text into a config or an error, never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "k8sclient/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  // A base dir that does not exist: file references fail cleanly instead of reading the disk.
  auto cfg = nvdra::k8s::parse_kubeconfig(text, "/nonexistent-nvdra-fuzz");
  if (cfg && cfg->server.empty()) __builtin_trap();
  return 0;
}
