// Status decoding: any body with any HTTP code becomes an API error with that code.
#include <cstddef>
#include <cstdint>
#include <string>

#include "k8sclient/rest/status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  int code = 400 + (data[0] % 200);
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  nvdra::Error e = nvdra::k8s::error_from_response(code, body);
  if (e.code != nvdra::ErrorCode::kApi || e.http_status != code || e.reason.empty()) {
    __builtin_trap();
  }
  return 0;
}
