// Object and list decoding: any input is decoded or refused; what is decoded re-parses as JSON.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/json.h"
#include "k8sclient/object.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  if (auto obj = nvdra::k8s::Object::parse(s)) {
    if (!nvdra::json::parse((*obj)->json())) __builtin_trap();
  }
  if (auto list = nvdra::k8s::parse_list(s)) {
    for (const auto& item : list->items) {
      if (!nvdra::json::parse(item->json())) __builtin_trap();
    }
  }
  return 0;
}
