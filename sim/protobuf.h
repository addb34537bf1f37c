// Just enough of Kubernetes' protobuf encoding to read the requests kubectl only sends as protobuf
// (auth can-i's SelfSubjectAccessReview; the objects of `kubectl create namespace|configmap|secret|
// serviceaccount`): the "k8s\0" envelope around runtime.Unknown, a reader for protobuf wire
// fields, and a table-driven decoder to JSON for those kinds. Answers go back as JSON, which
// kubectl accepts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace nvdra::sim {

struct ProtoField {
  uint32_t number = 0;
  uint32_t wire_type = 0;  // 0 varint, 2 length-delimited (others are skipped)
  uint64_t varint = 0;
  std::string_view bytes;
};

// Parses one message's fields; errors on malformed input.
Result<std::vector<ProtoField>> parse_proto(std::string_view message);
// The first length-delimited field with this number.
std::optional<std::string_view> proto_bytes(const std::vector<ProtoField>& fields, uint32_t number);

struct K8sProtoEnvelope {
  std::string api_version, kind;
  std::string_view raw;  // the object's own message
};
// application/vnd.kubernetes.protobuf bodies: "k8s\0" + runtime.Unknown{typeMeta=1, raw=2}.
Result<K8sProtoEnvelope> parse_k8s_protobuf(std::string_view body);

// The object of a protobuf body as JSON, for the kinds kubectl's generator commands create
// (v1 Namespace, ConfigMap, Secret, ServiceAccount). Other kinds: kInvalidArgument naming them.
Result<std::string> k8s_protobuf_to_json(const K8sProtoEnvelope& envelope);

}  // namespace nvdra::sim
