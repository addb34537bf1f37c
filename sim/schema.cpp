#include "sim/schema.h"

#include <fmt/format.h>

#include <cmath>
#include <mutex>
#include <unordered_map>

#include "cel/cel.h"
#include "cel/functions.h"

namespace nvdra::sim {
namespace {

using json::Value;
using Alloc = json::Document::AllocatorType;

// Rules are compiled once per distinct text: every write of a custom resource re-checks them.
Result<std::shared_ptr<const cel::Program>> compiled_rule(const std::string& rule) {
  static std::mutex mu;
  static std::unordered_map<std::string, Result<std::shared_ptr<const cel::Program>>> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find(rule); it != cache.end()) return it->second;
  if (cache.size() > 4096) cache.clear();  // bounded: rule texts come from users
  auto p = cel::Program::compile(rule, {"self", "oldSelf"});
  Result<std::shared_ptr<const cel::Program>> r =
      p ? Result<std::shared_ptr<const cel::Program>>(
              std::make_shared<const cel::Program>(std::move(*p)))
        : Result<std::shared_ptr<const cel::Program>>(unexpected(p.error()));
  cache.emplace(rule, r);
  return r;
}

// Every x-kubernetes-validations rule (and messageExpression) under a schema, with its field path.
void check_rules_compile(const Value& s, const std::string& path, std::vector<ErrorCause>& out) {
  if (!s.IsObject()) return;
  if (const Value* rs = json::find(s, "x-kubernetes-validations"); rs && rs->IsArray()) {
    for (rapidjson::SizeType i = 0; i < rs->Size(); ++i) {
      for (const char* key : {"rule", "messageExpression"}) {
        auto text = json::get_string((*rs)[i], key);
        if (!text) continue;
        if (auto p = compiled_rule(std::string(*text)); !p) {
          const std::string field = fmt::format("{}.x-kubernetes-validations[{}].{}", path, i, key);
          out.push_back(ErrorCause{"FieldValueInvalid",
                                   fmt::format("Invalid value: {}: compilation failed: {}",
                                               json::quote(*text), p.error().message),
                                   field});
        }
      }
    }
  }
  if (const Value* props = json::find(s, "properties"); props && props->IsObject()) {
    for (auto m = props->MemberBegin(); m != props->MemberEnd(); ++m)
      check_rules_compile(m->value, path + ".properties[" + m->name.GetString() + "]", out);
  }
  for (const char* key : {"items", "additionalProperties"}) {
    if (const Value* sub = json::find(s, key)) check_rules_compile(*sub, path + "." + key, out);
  }
}

struct Checker {
  Alloc& alloc;
  std::vector<ErrorCause> causes;

  void fail(const std::string& field, std::string reason, std::string message) {
    causes.push_back(ErrorCause{std::move(reason), std::move(message), field});
  }

  static std::string type_of(const Value& v) {
    if (v.IsObject()) return "object";
    if (v.IsArray()) return "array";
    if (v.IsString()) return "string";
    if (v.IsBool()) return "boolean";
    if (v.IsInt64() || v.IsUint64() ||
        (v.IsDouble() && std::floor(v.GetDouble()) == v.GetDouble())) {
      return "integer";
    }
    if (v.IsNumber()) return "number";
    return "null";
  }

  void defaults_and_prune(Value& v, const Value& s, bool root) {
    if (!v.IsObject()) return;
    const Value* props = json::find(s, "properties");
    const bool preserve = json::get_bool(s, "x-kubernetes-preserve-unknown-fields").value_or(false);
    const Value* additional = json::find(s, "additionalProperties");
    if (props && props->IsObject()) {
      for (auto p = props->MemberBegin(); p != props->MemberEnd(); ++p) {
        if (const Value* def = json::find(p->value, "default"); def && !v.HasMember(p->name)) {
          v.AddMember(Value(p->name, alloc), Value(*def, alloc), alloc);
        }
      }
    }
    for (auto m = v.MemberBegin(); m != v.MemberEnd();) {
      std::string_view name(m->name.GetString(), m->name.GetStringLength());
      if (root && (name == "apiVersion" || name == "kind" || name == "metadata")) {
        ++m;
        continue;
      }
      const Value* sub = props && props->IsObject() ? json::find(*props, name) : nullptr;
      if (sub == nullptr && additional && additional->IsObject()) sub = additional;
      if (sub == nullptr && !preserve &&
          !(additional && additional->IsBool() && additional->GetBool())) {
        m = v.EraseMember(m);  // pruned, as kube-apiserver drops unknown fields
        continue;
      }
      if (sub) {
        defaults_and_prune(m->value, *sub, false);
        if (m->value.IsArray()) {
          if (const Value* items = json::find(*sub, "items")) {
            for (auto& e : m->value.GetArray())
              defaults_and_prune(e, *items, false);
          }
        }
      }
      ++m;
    }
  }

  void check(const Value& v, const Value& s, const std::string& path, const Value* old) {
    if (v.IsNull()) {
      if (!json::get_bool(s, "nullable").value_or(false))
        fail(path, "FieldValueRequired", "Required value");
      return;
    }
    const std::string type(json::string_or(s, "type"));
    const bool int_or_string = json::get_bool(s, "x-kubernetes-int-or-string").value_or(false);
    const std::string actual = type_of(v);
    if (int_or_string) {
      if (actual != "integer" && actual != "string") {
        fail(path, "FieldValueTypeInvalid",
             fmt::format("Invalid value: \"{}\": must be an integer or a string", actual));
        return;
      }
    } else if (!type.empty() && actual != type && !(type == "number" && actual == "integer")) {
      fail(path, "FieldValueTypeInvalid",
           fmt::format("Invalid value: \"{}\": {} in body must be of type {}: \"{}\"", actual, path,
                       type, actual));
      return;
    }
    if (const Value* e = json::find(s, "enum"); e && e->IsArray()) {
      bool found = false;
      std::string allowed;
      for (const auto& x : e->GetArray()) {
        found = found || x == v;
        allowed += (allowed.empty() ? "" : ", ") + json::write(x);
      }
      if (!found)
        fail(path, "FieldValueNotSupported",
             fmt::format("Unsupported value: {}: supported values: {}", json::write(v), allowed));
    }
    if (v.IsNumber()) {
      const double d = v.GetDouble();
      if (auto mn = json::find(s, "minimum"); mn && mn->IsNumber()) {
        bool excl = json::get_bool(s, "exclusiveMinimum").value_or(false);
        if (excl ? d <= mn->GetDouble() : d < mn->GetDouble()) {
          fail(path, "FieldValueInvalid",
               fmt::format("Invalid value: {}: {} in body should be greater than {}{}",
                           json::write(v), path, excl ? "" : "or equal to ", json::write(*mn)));
        }
      }
      if (auto mx = json::find(s, "maximum"); mx && mx->IsNumber()) {
        bool excl = json::get_bool(s, "exclusiveMaximum").value_or(false);
        if (excl ? d >= mx->GetDouble() : d > mx->GetDouble()) {
          fail(path, "FieldValueInvalid",
               fmt::format("Invalid value: {}: {} in body should be less than {}{}", json::write(v),
                           path, excl ? "" : "or equal to ", json::write(*mx)));
        }
      }
    }
    if (v.IsString()) {
      const size_t len = v.GetStringLength();
      if (auto n = json::get_int(s, "minLength"); n && static_cast<int64_t>(len) < *n) {
        fail(path, "FieldValueInvalid",
             fmt::format("Invalid value: {}: {} in body should be at least {} chars long",
                         json::write(v), path, *n));
      }
      if (auto n = json::get_int(s, "maxLength"); n && static_cast<int64_t>(len) > *n) {
        fail(path, "FieldValueTooLong", fmt::format("Too long: may not be more than {} bytes", *n));
      }
      // Go's regexp, as the real server's schema validation: RE2 semantics, linear time.
      if (auto p = json::get_string(s, "pattern")) {
        auto found = cel::regex_search(std::string(*p),
                                       std::string_view(v.GetString(), v.GetStringLength()));
        if (!found) {
          fail(path, "FieldValueInvalid",
               fmt::format("the schema's pattern '{}' is not a valid regular expression", *p));
        } else if (!*found) {
          fail(path, "FieldValueInvalid",
               fmt::format("Invalid value: {}: {} in body should match '{}'", json::write(v), path,
                           *p));
        }
      }
    }
    if (v.IsArray()) {
      if (auto n = json::get_int(s, "minItems"); n && static_cast<int64_t>(v.Size()) < *n) {
        fail(path, "FieldValueInvalid",
             fmt::format("Invalid value: {} in body should have at least {} items", path, *n));
      }
      if (auto n = json::get_int(s, "maxItems"); n && static_cast<int64_t>(v.Size()) > *n) {
        fail(path, "FieldValueTooMany",
             fmt::format("Too many: {}: must have at most {} items", v.Size(), *n));
      }
      if (const Value* items = json::find(s, "items")) {
        for (rapidjson::SizeType i = 0; i < v.Size(); ++i)
          check(v[i], *items, fmt::format("{}[{}]", path, i), nullptr);
      }
    }
    if (v.IsObject()) {
      if (const Value* req = json::find(s, "required"); req && req->IsArray()) {
        for (const auto& r : req->GetArray()) {
          if (r.IsString() && !v.HasMember(r.GetString())) {
            fail(path.empty() ? r.GetString() : path + "." + r.GetString(), "FieldValueRequired",
                 "Required value");
          }
        }
      }
      const Value* props = json::find(s, "properties");
      const Value* additional = json::find(s, "additionalProperties");
      for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
        std::string name(m->name.GetString(), m->name.GetStringLength());
        if (path.empty() && (name == "apiVersion" || name == "kind" || name == "metadata"))
          continue;
        const Value* sub = props ? json::find(*props, name) : nullptr;
        if (!sub && additional && additional->IsObject()) sub = additional;
        const Value* old_child = old && old->IsObject() ? json::find(*old, name) : nullptr;
        if (sub) check(m->value, *sub, path.empty() ? name : path + "." + name, old_child);
      }
    }
    rules(v, s, path, old);
  }

  // x-kubernetes-validations: each rule is CEL over `self` (and `oldSelf` on update; a rule that
  // reads oldSelf is a transition rule and is skipped on create, unless optionalOldSelf).
  void rules(const Value& v, const Value& s, const std::string& path, const Value* old) {
    const Value* rs = json::find(s, "x-kubernetes-validations");
    if (!rs || !rs->IsArray()) return;
    std::optional<cel::Value> self, old_self;
    for (const auto& r : rs->GetArray()) {
      const std::string rule(json::string_or(r, "rule"));
      auto program = compiled_rule(rule);
      const std::string field = path + std::string(json::string_or(r, "fieldPath"));
      if (!program) {
        fail(field, "FieldValueInvalid",
             fmt::format("rule compilation failed: {}: {}", rule, program.error().message));
        continue;
      }
      const bool optional_old = json::get_bool(r, "optionalOldSelf").value_or(false);
      if ((*program)->references("oldSelf") && !old && !optional_old) continue;
      if (!self) self = cel::Value::from_json(v);
      if (!old_self) old_self = old ? cel::Value::from_json(*old) : cel::Value();
      const cel::Activation vars{{"self", *self}, {"oldSelf", *old_self}};
      auto ok = (*program)->evaluate_bool(vars);
      if (ok && *ok) continue;
      if (!ok) {
        fail(field, "FieldValueInvalid",
             fmt::format("Invalid value: \"{}\": rule evaluation failed: {}: {}", type_of(v), rule,
                         ok.error().message));
        continue;
      }
      std::string msg(json::string_or(r, "message"));
      if (auto me = json::get_string(r, "messageExpression")) {
        auto mp = compiled_rule(std::string(*me));
        auto text = mp ? (*mp)->evaluate(vars) : Result<cel::Value>(unexpected(mp.error()));
        if (text && text->is(cel::Value::Kind::kString)) msg = text->as_string();
      }
      if (msg.empty()) msg = "failed rule: " + rule;
      const std::string reason(json::string_or(r, "reason", "FieldValueInvalid"));
      fail(field, reason, fmt::format("Invalid value: \"{}\": {}", type_of(v), msg));
    }
  }
};

}  // namespace

std::vector<ErrorCause> validate_custom_resource(json::Document& obj, const json::Value& schema,
                                                 const json::Value* old) {
  Checker c{obj.GetAllocator(), {}};
  c.defaults_and_prune(obj, schema, true);
  c.check(obj, schema, "", old);
  return c.causes;
}

std::vector<ErrorCause> validate_crd_rules(const json::Value& crd) {
  std::vector<ErrorCause> causes;
  const Value* versions = json::find_path(crd, {"spec", "versions"});
  if (!versions || !versions->IsArray()) return causes;
  for (rapidjson::SizeType i = 0; i < versions->Size(); ++i) {
    if (const Value* s = json::find_path((*versions)[i], {"schema", "openAPIV3Schema"}))
      check_rules_compile(*s, fmt::format("spec.versions[{}].schema.openAPIV3Schema", i), causes);
  }
  return causes;
}

}  // namespace nvdra::sim
