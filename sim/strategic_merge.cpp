#include "sim/strategic_merge.h"

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace nvdra::sim {
namespace {

using json::Value;
using Alloc = json::Document::AllocatorType;

bool same_key(const Value& a, const Value& b, std::string_view key) {
  const Value* x = json::find(a, key);
  const Value* y = json::find(b, key);
  return x && y && *x == *y;
}

Status merge_map(Value& target, const Value& patch, std::string_view parent, Alloc& a);

Status merge_list(Value& target, const Value& patch, std::string_view field,
                  std::string_view parent, Alloc& a) {
  std::string_view key = list_merge_key(field, parent);
  if (is_set_list(field) && target.IsArray()) {
    for (const auto& v : patch.GetArray()) {
      bool present = false;
      for (const auto& t : target.GetArray())
        present = present || t == v;
      if (!present) target.PushBack(Value(v, a), a);
    }
    return ok();
  }
  if (key.empty() || !target.IsArray()) {
    target.CopyFrom(patch, a);
    return ok();
  }
  // A {"$patch":"replace"} element replaces the whole list with the other elements.
  for (const auto& p : patch.GetArray()) {
    if (p.IsObject() && json::string_or(p, "$patch") == "replace") {
      Value out(rapidjson::kArrayType);
      for (const auto& q : patch.GetArray()) {
        if (!(q.IsObject() && json::find(q, "$patch"))) out.PushBack(Value(q, a), a);
      }
      target = std::move(out);
      return ok();
    }
  }
  for (const auto& p : patch.GetArray()) {
    if (!p.IsObject() || !json::find(p, key)) {
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("{}: list elements need the merge key \"{}\"", field, key));
    }
    auto existing = target.Begin();
    for (; existing != target.End(); ++existing) {
      if (same_key(*existing, p, key)) break;
    }
    if (json::string_or(p, "$patch") == "delete") {
      if (existing != target.End()) target.Erase(existing);
      continue;
    }
    if (existing == target.End()) {
      Value v(rapidjson::kObjectType);
      if (auto s = merge_map(v, p, field, a); !s) return s;
      target.PushBack(v, a);
    } else if (auto s = merge_map(*existing, p, field, a); !s) {
      return s;
    }
  }
  return ok();
}

Status merge_map(Value& target, const Value& patch, std::string_view parent, Alloc& a) {
  if (!target.IsObject()) target.SetObject();
  if (auto d = json::get_string(patch, "$patch")) {
    if (*d == "replace") {
      target.SetObject();
    } else if (*d == "delete") {
      target.SetObject();
      return ok();
    } else if (*d != "merge") {
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("unknown $patch directive \"{}\"", *d));
    }
  }
  for (auto it = patch.MemberBegin(); it != patch.MemberEnd(); ++it) {
    std::string_view name(it->name.GetString(), it->name.GetStringLength());
    const Value& v = it->value;
    if (name == "$patch" || name == "$retainKeys" || name.rfind("$setElementOrder/", 0) == 0)
      continue;
    if (name.rfind("$deleteFromPrimitiveList/", 0) == 0) {
      std::string list(name.substr(25));
      auto t = target.FindMember(Value(list.c_str(), a));
      if (t != target.MemberEnd() && t->value.IsArray() && v.IsArray()) {
        for (auto e = t->value.Begin(); e != t->value.End();) {
          bool drop = false;
          for (const auto& x : v.GetArray())
            drop = drop || x == *e;
          e = drop ? t->value.Erase(e) : e + 1;
        }
      }
      continue;
    }
    auto t = target.FindMember(it->name);
    if (v.IsNull()) {
      if (t != target.MemberEnd()) target.EraseMember(t);
      continue;
    }
    if (t == target.MemberEnd()) {
      target.AddMember(Value(it->name, a), Value(rapidjson::kNullType), a);
      t = target.FindMember(it->name);
      if (v.IsObject()) t->value.SetObject();
    }
    Status s;
    if (v.IsObject() && t->value.IsObject()) {
      s = merge_map(t->value, v, name, a);
    } else if (v.IsObject()) {
      Value fresh(rapidjson::kObjectType);
      s = merge_map(fresh, v, name, a);
      t->value = std::move(fresh);
    } else if (v.IsArray()) {
      s = merge_list(t->value, v, name, parent, a);
    } else {
      t->value.CopyFrom(v, a);
    }
    if (!s) return s;
  }
  if (const Value* keep = json::find(patch, "$retainKeys"); keep && keep->IsArray()) {
    for (auto m = target.MemberBegin(); m != target.MemberEnd();) {
      bool kept = false;
      for (const auto& k : keep->GetArray())
        kept = kept || (k.IsString() && m->name == k);
      m = kept ? m + 1 : target.EraseMember(m);
    }
  }
  return ok();
}

}  // namespace

// patchMergeKey of lists with patchStrategy "merge" (k8s.io/api types), by field name; `ports`
// depends on where it is.
std::string_view list_merge_key(std::string_view field, std::string_view parent) {
  if (field == "containers" || field == "initContainers" || field == "ephemeralContainers" ||
      field == "volumes" || field == "env" || field == "imagePullSecrets" ||
      field == "resourceClaims" || field == "claims" || field == "hostAliases" /* ip below */) {
    return field == "hostAliases" ? "ip" : "name";
  }
  if (field == "volumeMounts") return "mountPath";
  if (field == "volumeDevices") return "devicePath";
  if (field == "ownerReferences" || field == "reservedFor") return "uid";
  if (field == "conditions") return "type";
  if (field == "topologySpreadConstraints") return "topologyKey";
  if (field == "ports")
    return parent == "containers" || parent == "initContainers" ? "containerPort" : "port";
  return {};
}

bool is_set_list(std::string_view field) {
  return field == "finalizers";
}

Status strategic_merge_patch(json::Document& target, const json::Value& patch) {
  if (!patch.IsObject())
    return unexpected(ErrorCode::kInvalidArgument, "a strategic merge patch must be an object");
  json::Document work;
  work.CopyFrom(target, work.GetAllocator());
  if (auto s = merge_map(work, patch, "", work.GetAllocator()); !s) return s;
  target.Swap(work);
  return ok();
}

}  // namespace nvdra::sim
