#include "sim/protobuf.h"

namespace nvdra::sim {
namespace {

bool read_varint(std::string_view& s, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (s.empty()) return false;
    const auto b = static_cast<uint8_t>(s.front());
    s.remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *out = v;
      return true;
    }
  }
  return false;
}

}  // namespace

Result<std::vector<ProtoField>> parse_proto(std::string_view s) {
  std::vector<ProtoField> out;
  while (!s.empty()) {
    uint64_t key = 0;
    if (!read_varint(s, &key))
      return unexpected(ErrorCode::kInvalidArgument, "protobuf: truncated key");
    ProtoField f;
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire_type = static_cast<uint32_t>(key & 7);
    switch (f.wire_type) {
      case 0:
        if (!read_varint(s, &f.varint))
          return unexpected(ErrorCode::kInvalidArgument, "protobuf: truncated varint");
        break;
      case 1:
        if (s.size() < 8)
          return unexpected(ErrorCode::kInvalidArgument, "protobuf: truncated fixed64");
        s.remove_prefix(8);
        break;
      case 2: {
        uint64_t len = 0;
        if (!read_varint(s, &len) || len > s.size()) {
          return unexpected(ErrorCode::kInvalidArgument, "protobuf: bad length");
        }
        f.bytes = s.substr(0, len);
        s.remove_prefix(len);
        break;
      }
      case 5:
        if (s.size() < 4)
          return unexpected(ErrorCode::kInvalidArgument, "protobuf: truncated fixed32");
        s.remove_prefix(4);
        break;
      default:
        return unexpected(ErrorCode::kInvalidArgument, "protobuf: unsupported wire type");
    }
    out.push_back(f);
  }
  return out;
}

std::optional<std::string_view> proto_bytes(const std::vector<ProtoField>& fields,
                                            uint32_t number) {
  for (const auto& f : fields) {
    if (f.number == number && f.wire_type == 2) return f.bytes;
  }
  return std::nullopt;
}

Result<K8sProtoEnvelope> parse_k8s_protobuf(std::string_view body) {
  static constexpr std::string_view kMagic("k8s\0", 4);
  if (!body.starts_with(kMagic))
    return unexpected(ErrorCode::kInvalidArgument, "not a Kubernetes protobuf body");
  auto unknown = parse_proto(body.substr(4));
  if (!unknown) return unexpected(unknown.error());
  K8sProtoEnvelope env;
  if (auto tm = proto_bytes(*unknown, 1)) {
    auto f = parse_proto(*tm);
    if (!f) return unexpected(f.error());
    env.api_version = std::string(proto_bytes(*f, 1).value_or(""));
    env.kind = std::string(proto_bytes(*f, 2).value_or(""));
  }
  env.raw = proto_bytes(*unknown, 2).value_or("");
  return env;
}

}  // namespace nvdra::sim
