// The protobuf reader behind `kubectl auth can-i`: any body is decoded or refused.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sim/protobuf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  if (auto env = nvdra::sim::parse_k8s_protobuf(s)) {
    // Every decodable kind, whatever the envelope says.
    for (const char* kind : {"Namespace", "ConfigMap", "Secret", "ServiceAccount"}) {
      nvdra::sim::K8sProtoEnvelope e = *env;
      e.api_version = "v1";
      e.kind = kind;
      if (auto json = nvdra::sim::k8s_protobuf_to_json(e)) (void)json->size();
    }
    if (auto f = nvdra::sim::parse_proto(env->raw)) {
      for (const auto& field : *f) {
        if (field.wire_type == 2) (void)nvdra::sim::parse_proto(field.bytes);
      }
    }
  }
  (void)nvdra::sim::parse_proto(s);
  return 0;
}
