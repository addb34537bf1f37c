#include "sim/builtin_validation.h"

#include <fmt/format.h>

#include "sim/rbac.h"
#include "sim/store.h"  // api_error

namespace nvdra::sim {
namespace {

using json::Value;

const char* json_type(const Value& v) {
  if (v.IsString()) return "string";
  if (v.IsNumber()) return "number";
  if (v.IsBool()) return "bool";
  if (v.IsArray()) return "array";
  if (v.IsObject()) return "object";
  return "null";
}

// obj[key], when present and not null, must be an object of strings (map[string]string, and
// map[string][]byte, which JSON carries as base64 strings).
Status want_string_map(const ResourceType& t, const Value& obj, std::string_view key,
                       std::string_view go_type) {
  const Value* m = json::find(obj, key);
  if (m == nullptr || m->IsNull()) return ok();
  const std::string field = fmt::format("{}.{}", t.kind, key);
  if (!m->IsObject()) return unexpected(decode_error(t, *m, field, go_type));
  for (auto it = m->MemberBegin(); it != m->MemberEnd(); ++it) {
    if (!it->value.IsString() && !it->value.IsNull())
      return unexpected(decode_error(t, it->value, field, go_type));
  }
  return ok();
}

}  // namespace

Error decode_error(const ResourceType& t, const Value& got, std::string_view field,
                   std::string_view want) {
  return api_error(400, "BadRequest",
                   fmt::format("{} in version \"{}\" cannot be handled as a {}: json: cannot "
                               "unmarshal {} into Go struct field {} of type {}",
                               t.kind, t.version, t.kind, json_type(got), field, want));
}

Result<std::vector<ErrorCause>> validate_builtin(const ResourceType& t, const Value& obj,
                                                 const Value* old) {
  if (t.group.empty() && t.resource == "configmaps") {
    for (auto [key, type] :
         {std::pair{"data", "map[string]string"}, {"binaryData", "map[string][]uint8"}}) {
      if (auto st = want_string_map(t, obj, key, type); !st) return unexpected(st.error());
    }
  } else if (t.group.empty() && t.resource == "secrets") {
    for (auto [key, type] :
         {std::pair{"data", "map[string][]uint8"}, {"stringData", "map[string]string"}}) {
      if (auto st = want_string_map(t, obj, key, type); !st) return unexpected(st.error());
    }
  }
  return validate_rbac_object(t, obj, old);
}

}  // namespace nvdra::sim
