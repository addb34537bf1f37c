#include "sim/protobuf.h"

#include <fmt/format.h>

#include "base/base64.h"
#include "base/json.h"

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

namespace {

// The generated.proto shapes of the kinds decoded (field numbers of k8s.io/api and apimachinery).
enum class Type { kString, kBytes, kBool, kMessage, kStringMap, kBytesMap };
struct MessageDef;
struct FieldDef {
  uint32_t number;
  const char* json;
  Type type;
  bool repeated;
  const MessageDef* message;
};
struct MessageDef {
  std::vector<FieldDef> fields;
};

const MessageDef kObjectMeta{{{1, "name", Type::kString, false, nullptr},
                              {2, "generateName", Type::kString, false, nullptr},
                              {3, "namespace", Type::kString, false, nullptr},
                              {11, "labels", Type::kStringMap, false, nullptr},
                              {12, "annotations", Type::kStringMap, false, nullptr},
                              {14, "finalizers", Type::kString, true, nullptr}}};
const MessageDef kNamespaceSpec{{{1, "finalizers", Type::kString, true, nullptr}}};
const MessageDef kNamespace{{{1, "metadata", Type::kMessage, false, &kObjectMeta},
                             {2, "spec", Type::kMessage, false, &kNamespaceSpec}}};
const MessageDef kConfigMap{{{1, "metadata", Type::kMessage, false, &kObjectMeta},
                             {2, "data", Type::kStringMap, false, nullptr},
                             {3, "binaryData", Type::kBytesMap, false, nullptr},
                             {4, "immutable", Type::kBool, false, nullptr}}};
const MessageDef kSecret{{{1, "metadata", Type::kMessage, false, &kObjectMeta},
                          {2, "data", Type::kBytesMap, false, nullptr},
                          {3, "type", Type::kString, false, nullptr},
                          {4, "stringData", Type::kStringMap, false, nullptr},
                          {5, "immutable", Type::kBool, false, nullptr}}};
const MessageDef kLocalObjectReference{{{1, "name", Type::kString, false, nullptr}}};
const MessageDef kServiceAccount{
    {{1, "metadata", Type::kMessage, false, &kObjectMeta},
     {3, "imagePullSecrets", Type::kMessage, true, &kLocalObjectReference},
     {4, "automountServiceAccountToken", Type::kBool, false, nullptr}}};

Status decode(const MessageDef& def, std::string_view bytes, json::Value& out, json::Allocator& a,
              int depth) {
  if (depth > 16) return unexpected(ErrorCode::kInvalidArgument, "protobuf: nested too deeply");
  auto fields = parse_proto(bytes);
  if (!fields) return unexpected(fields.error());
  out.SetObject();
  for (const auto& f : *fields) {
    const FieldDef* d = nullptr;
    for (const auto& fd : def.fields) {
      if (fd.number == f.number) d = &fd;
    }
    if (!d) continue;  // a field nvdra-sim does not decode
    json::Value v;
    switch (d->type) {
      case Type::kString:
        // Go writes every string field, empty ones too; JSON omits them (omitempty).
        if (f.wire_type != 2 || (f.bytes.empty() && !d->repeated)) continue;
        v.SetString(f.bytes.data(), static_cast<rapidjson::SizeType>(f.bytes.size()), a);
        break;
      case Type::kBytes: {
        const std::string b64 = base64_encode(f.bytes);
        v.SetString(b64.c_str(), static_cast<rapidjson::SizeType>(b64.size()), a);
        break;
      }
      case Type::kBool:
        if (f.wire_type != 0) continue;
        v.SetBool(f.varint != 0);
        break;
      case Type::kMessage:
        if (f.wire_type != 2) continue;
        if (auto st = decode(*d->message, f.bytes, v, a, depth + 1); !st) return st;
        break;
      case Type::kStringMap:
      case Type::kBytesMap: {
        // A map entry is a message {key = 1, value = 2}.
        if (f.wire_type != 2) continue;
        auto entry = parse_proto(f.bytes);
        if (!entry) return unexpected(entry.error());
        const std::string key(proto_bytes(*entry, 1).value_or(""));
        const std::string_view raw = proto_bytes(*entry, 2).value_or("");
        const std::string value =
            d->type == Type::kBytesMap ? base64_encode(raw) : std::string(raw);
        json::Value& map = json::ensure_object(out, d->json, a);
        json::set_string(map, key.c_str(), value, a);
        continue;
      }
    }
    if (d->repeated) {
      json::ensure_array(out, d->json, a).PushBack(v, a);
    } else {
      out.RemoveMember(d->json);
      out.AddMember(json::Value(d->json, a), v, a);
    }
  }
  return ok();
}

}  // namespace

Result<std::string> k8s_protobuf_to_json(const K8sProtoEnvelope& env) {
  const MessageDef* def = nullptr;
  if (env.api_version == "v1") {
    if (env.kind == "Namespace") def = &kNamespace;
    if (env.kind == "ConfigMap") def = &kConfigMap;
    if (env.kind == "Secret") def = &kSecret;
    if (env.kind == "ServiceAccount") def = &kServiceAccount;
  }
  if (!def)
    return unexpected(
        ErrorCode::kInvalidArgument,
        fmt::format("nvdra-sim does not decode protobuf bodies of {} {}; send JSON or YAML (for "
                    "example `kubectl create … --dry-run=client -o yaml | kubectl apply -f -`)",
                    env.api_version, env.kind));
  json::Document doc;
  if (auto st = decode(*def, env.raw, doc, doc.GetAllocator(), 0); !st)
    return unexpected(st.error());
  json::set_string(doc, "apiVersion", env.api_version, doc.GetAllocator());
  json::set_string(doc, "kind", env.kind, doc.GetAllocator());
  return json::write(doc);
}

}  // namespace nvdra::sim
