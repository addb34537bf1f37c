#include "sim/conversion.h"

#include <initializer_list>

namespace nvdra::sim {
namespace {

using json::Value;
using Alloc = json::Document::AllocatorType;

constexpr std::initializer_list<const char*> kExactFields = {
    "deviceClassName", "selectors",   "allocationMode", "count",
    "adminAccess",     "tolerations", "capacity"};
constexpr std::initializer_list<const char*> kBasicFields = {"attributes",
                                                             "capacity",
                                                             "consumesCounters",
                                                             "nodeName",
                                                             "nodeSelector",
                                                             "allNodes",
                                                             "taints",
                                                             "bindsToNode",
                                                             "bindingConditions",
                                                             "bindingFailureConditions",
                                                             "allowMultipleAllocations"};

// Moves the listed members of `from` into a new object stored at `to[name]`, or back.
void nest(Value& v, const char* name, std::initializer_list<const char*> fields, Alloc& a) {
  Value inner(rapidjson::kObjectType);
  for (const char* f : fields) {
    auto it = v.FindMember(f);
    if (it == v.MemberEnd()) continue;
    inner.AddMember(Value(f, a), Value(it->value, a), a);
    v.EraseMember(it);
  }
  if (inner.MemberCount() > 0) v.AddMember(Value(name, a), inner, a);
}

void flatten(Value& v, const char* name, Alloc& a) {
  auto it = v.FindMember(name);
  if (it == v.MemberEnd() || !it->value.IsObject()) return;
  Value inner(it->value, a);
  v.EraseMember(it);
  for (auto m = inner.MemberBegin(); m != inner.MemberEnd(); ++m) {
    v.RemoveMember(m->name);
    v.AddMember(Value(m->name, a), Value(m->value, a), a);
  }
}

void convert_requests(Value* devices, bool to_v1, Alloc& a) {
  if (devices == nullptr || !devices->IsObject()) return;
  auto reqs = devices->FindMember("requests");
  if (reqs == devices->MemberEnd() || !reqs->value.IsArray()) return;
  for (auto& r : reqs->value.GetArray()) {
    if (!r.IsObject()) continue;
    if (to_v1) {
      if (!r.HasMember("firstAvailable")) nest(r, "exactly", kExactFields, a);
    } else {
      flatten(r, "exactly", a);
    }
  }
}

Value* find_mut(Value& v, std::initializer_list<const char*> path) {
  Value* cur = &v;
  for (const char* p : path) {
    if (!cur->IsObject()) return nullptr;
    auto it = cur->FindMember(p);
    if (it == cur->MemberEnd()) return nullptr;
    cur = &it->value;
  }
  return cur;
}

}  // namespace

void convert_resource_api(json::Document& obj, std::string_view kind, std::string_view from,
                          std::string_view to) {
  auto shape = [](std::string_view v) { return v == "v1beta1" ? 1 : 2; };  // v1beta2 == v1
  if (!obj.IsObject()) return;
  auto& a = obj.GetAllocator();
  const std::string api = "resource.k8s.io/" + std::string(to);
  if (auto it = obj.FindMember("apiVersion"); it != obj.MemberEnd()) {
    it->value.SetString(api.c_str(), static_cast<rapidjson::SizeType>(api.size()), a);
  }
  if (shape(from) == shape(to)) return;
  const bool to_v1 = shape(to) == 2;
  if (kind == "ResourceClaim") {
    convert_requests(find_mut(obj, {"spec", "devices"}), to_v1, a);
  } else if (kind == "ResourceClaimTemplate") {
    convert_requests(find_mut(obj, {"spec", "spec", "devices"}), to_v1, a);
  } else if (kind == "ResourceSlice") {
    Value* devices = find_mut(obj, {"spec", "devices"});
    if (devices == nullptr || !devices->IsArray()) return;
    for (auto& d : devices->GetArray()) {
      if (!d.IsObject()) continue;
      if (to_v1) {
        flatten(d, "basic", a);
      } else {
        nest(d, "basic", kBasicFields, a);
      }
    }
  }
}

}  // namespace nvdra::sim
