#include "sim/rbac.h"

#include <fmt/format.h>

#include <algorithm>

#include "sim/builtin_validation.h"

namespace nvdra::sim {
namespace {

using json::Value;

constexpr std::string_view kRbacGroup = "rbac.authorization.k8s.io";

bool has(const std::vector<std::string>& list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

// An entry of a rule list matches `v` exactly or by "*".
bool matches(const std::vector<std::string>& list, std::string_view v) {
  return has(list, v) || has(list, "*");
}

// A non-resource URL rule: exact, or a prefix ending in '*'.
bool url_covers(std::string_view rule, std::string_view path) {
  if (rule == path) return true;
  if (!rule.ends_with('*')) return false;
  while (rule.ends_with('*'))
    rule.remove_suffix(1);  // Go's strings.TrimRight(p, "*")
  return path.starts_with(rule);
}

std::vector<std::string> strings_of(const Value& rule, std::string_view key) {
  std::vector<std::string> out;
  const Value* list = json::find(rule, key);
  if (list == nullptr || !list->IsArray()) return out;
  for (const auto& v : list->GetArray()) {
    if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
  }
  return out;
}

// RBAC's ruleCovers for one broken-down part (exactly one verb and one resource or URL).
bool rule_covers(const PolicyRule& owner, const PolicyRule& part) {
  if (!matches(owner.verbs, part.verbs[0])) return false;
  if (!part.non_resource_urls.empty()) {
    return std::any_of(
        owner.non_resource_urls.begin(), owner.non_resource_urls.end(),
        [&](const std::string& o) { return url_covers(o, part.non_resource_urls[0]); });
  }
  if (!matches(owner.api_groups, part.api_groups[0])) return false;
  const std::string& res = part.resources[0];
  bool resource_ok = matches(owner.resources, res);
  if (!resource_ok) {
    // "*/status" covers the status subresource of every resource.
    size_t slash = res.find('/');
    resource_ok = slash != std::string::npos && has(owner.resources, "*" + res.substr(slash));
  }
  if (!resource_ok) return false;
  if (part.resource_names.empty()) return owner.resource_names.empty();
  return owner.resource_names.empty() || has(owner.resource_names, part.resource_names[0]);
}

std::string quoted_list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i)
    out += (i ? " " : "") + json::quote(v[i]);
  return out + "]";
}

// ---- validation ----

// Checks that obj[key], when present and not null, has the expected shape.
Status want_strings(const ResourceType& t, const Value& obj, std::string_view key,
                    std::string_view go_field) {
  const Value* v = json::find(obj, key);
  if (v == nullptr || v->IsNull()) return ok();
  if (!v->IsArray()) return unexpected(decode_error(t, *v, go_field, "[]string"));
  for (const auto& s : v->GetArray()) {
    if (!s.IsString()) return unexpected(decode_error(t, s, go_field, "string"));
  }
  return ok();
}

Status want_string(const ResourceType& t, const Value& obj, std::string_view key,
                   std::string_view go_field) {
  const Value* v = json::find(obj, key);
  if (v == nullptr || v->IsNull() || v->IsString()) return ok();
  return unexpected(decode_error(t, *v, go_field, "string"));
}

// The object members that must be a list of objects (or absent).
Result<const Value*> want_object_list(const ResourceType& t, const Value& obj, std::string_view key,
                                      std::string_view go_field, std::string_view go_type) {
  const Value* v = json::find(obj, key);
  if (v == nullptr || v->IsNull()) return nullptr;
  if (!v->IsArray()) return unexpected(decode_error(t, *v, go_field, fmt::format("[]{}", go_type)));
  for (const auto& item : v->GetArray()) {
    if (!item.IsObject()) return unexpected(decode_error(t, item, go_field, go_type));
  }
  return v;
}

ErrorCause required(std::string field, std::string_view detail = {}) {
  return ErrorCause{"FieldValueRequired",
                    detail.empty() ? "Required value" : fmt::format("Required value: {}", detail),
                    std::move(field)};
}
ErrorCause invalid(std::string field, std::string_view value, std::string_view detail) {
  return ErrorCause{"FieldValueInvalid", fmt::format("Invalid value: {}: {}", value, detail),
                    std::move(field)};
}
ErrorCause not_supported(std::string field, std::string_view value,
                         const std::vector<std::string>& allowed) {
  std::string list;
  for (const auto& a : allowed)
    list += (list.empty() ? "" : ", ") + json::quote(a);
  return ErrorCause{
      "FieldValueNotSupported",
      fmt::format("Unsupported value: {}: supported values: {}", json::quote(value), list),
      std::move(field)};
}

// What a name in a URL path may not be (ValidateRBACName: a path segment).
std::string path_segment_problem(std::string_view name) {
  if (name == "." || name == "..") return fmt::format("may not be '{}'", name);
  for (std::string_view bad : {"/", "%"}) {
    if (name.find(bad) != std::string_view::npos) return fmt::format("may not contain '{}'", bad);
  }
  return {};
}

Result<std::vector<ErrorCause>> validate_role(const ResourceType& t, const Value& obj) {
  auto rules = want_object_list(t, obj, "rules", t.kind + ".rules", "v1.PolicyRule");
  if (!rules) return unexpected(rules.error());
  if (const Value* agg = json::find(obj, "aggregationRule"); agg && !agg->IsNull()) {
    if (t.kind != "ClusterRole" || !agg->IsObject())
      return unexpected(decode_error(t, *agg, t.kind + ".aggregationRule", "v1.AggregationRule"));
    auto sel = want_object_list(t, *agg, "clusterRoleSelectors",
                                "AggregationRule.clusterRoleSelectors", "v1.LabelSelector");
    if (!sel) return unexpected(sel.error());
  }
  std::vector<ErrorCause> causes;
  if (*rules == nullptr) return causes;
  const bool namespaced = t.kind == "Role";
  for (rapidjson::SizeType i = 0; i < (*rules)->Size(); ++i) {
    const Value& r = (**rules)[i];
    for (auto [key, go] : {std::pair{"verbs", "verbs"},
                           {"apiGroups", "apiGroups"},
                           {"resources", "resources"},
                           {"resourceNames", "resourceNames"},
                           {"nonResourceURLs", "nonResourceURLs"}}) {
      if (auto st = want_strings(t, r, key, fmt::format("PolicyRule.rules.{}", go)); !st)
        return unexpected(st.error());
    }
    const std::string path = fmt::format("rules[{}]", i);
    PolicyRule p{strings_of(r, "verbs"), strings_of(r, "apiGroups"), strings_of(r, "resources"),
                 strings_of(r, "resourceNames"), strings_of(r, "nonResourceURLs")};
    if (p.verbs.empty())
      causes.push_back(required(path + ".verbs", "verbs must contain at least one value"));
    if (!p.non_resource_urls.empty()) {
      const std::string urls = quoted_list(p.non_resource_urls);
      if (namespaced) {
        causes.push_back(invalid(path + ".nonResourceURLs", urls,
                                 "namespaced rules cannot apply to non-resource URLs"));
      }
      if (!p.api_groups.empty() || !p.resources.empty() || !p.resource_names.empty()) {
        causes.push_back(invalid(path + ".nonResourceURLs", urls,
                                 "rules cannot apply to both regular resources and non-resource "
                                 "URLs"));
      }
      continue;
    }
    if (p.api_groups.empty())
      causes.push_back(
          required(path + ".apiGroups", "resource rules must supply at least one api group"));
    if (p.resources.empty())
      causes.push_back(
          required(path + ".resources", "resource rules must supply at least one resource"));
  }
  return causes;
}

// roleRef with apiGroup defaulted, as the real server stores it (for the immutability check).
std::string role_ref_text(const Value* ref) {
  if (ref == nullptr || !ref->IsObject()) return {};
  std::string group(json::string_or(*ref, "apiGroup"));
  if (group.empty()) group = kRbacGroup;
  return fmt::format("{}/{}/{}", group, json::string_or(*ref, "kind"),
                     json::string_or(*ref, "name"));
}

Result<std::vector<ErrorCause>> validate_binding(const ResourceType& t, const Value& obj,
                                                 const Value* old) {
  const Value* ref = json::find(obj, "roleRef");
  if (ref && !ref->IsNull() && !ref->IsObject())
    return unexpected(decode_error(t, *ref, t.kind + ".roleRef", "v1.RoleRef"));
  auto subjects = want_object_list(t, obj, "subjects", t.kind + ".subjects", "v1.Subject");
  if (!subjects) return unexpected(subjects.error());
  static const Value kEmpty(rapidjson::kObjectType);
  const Value& r = ref && ref->IsObject() ? *ref : kEmpty;
  for (const char* key : {"apiGroup", "kind", "name"}) {
    if (auto st = want_string(t, r, key, fmt::format("RoleRef.roleRef.{}", key)); !st)
      return unexpected(st.error());
  }
  std::vector<ErrorCause> causes;
  const std::string_view group = json::string_or(r, "apiGroup");
  if (!group.empty() && group != kRbacGroup)
    causes.push_back(not_supported("roleRef.apiGroup", group, {std::string(kRbacGroup)}));
  const std::string_view kind = json::string_or(r, "kind");
  const bool cluster = t.kind == "ClusterRoleBinding";
  if (kind != "ClusterRole" && (cluster || kind != "Role")) {
    causes.push_back(cluster ? not_supported("roleRef.kind", kind, {"ClusterRole"})
                             : not_supported("roleRef.kind", kind, {"Role", "ClusterRole"}));
  }
  const std::string_view name = json::string_or(r, "name");
  if (name.empty()) {
    causes.push_back(required("roleRef.name"));
  } else if (auto problem = path_segment_problem(name); !problem.empty()) {
    causes.push_back(invalid("roleRef.name", json::quote(name), problem));
  }
  if (*subjects != nullptr) {
    for (rapidjson::SizeType i = 0; i < (*subjects)->Size(); ++i) {
      const Value& s = (**subjects)[i];
      for (const char* key : {"kind", "apiGroup", "name", "namespace"}) {
        if (auto st = want_string(t, s, key, fmt::format("Subject.subjects.{}", key)); !st)
          return unexpected(st.error());
      }
      const std::string path = fmt::format("subjects[{}]", i);
      const std::string_view sk = json::string_or(s, "kind");
      const std::string_view sg = json::string_or(s, "apiGroup");
      if (json::string_or(s, "name").empty()) causes.push_back(required(path + ".name"));
      if (sk == "ServiceAccount") {
        if (!sg.empty()) causes.push_back(not_supported(path + ".apiGroup", sg, {""}));
        if (cluster && json::string_or(s, "namespace").empty())
          causes.push_back(required(path + ".namespace"));
      } else if (sk == "User" || sk == "Group") {
        // An empty apiGroup is defaulted to RBAC's group.
        if (!sg.empty() && sg != kRbacGroup)
          causes.push_back(not_supported(path + ".apiGroup", sg, {std::string(kRbacGroup)}));
      } else {
        causes.push_back(not_supported(path + ".kind", sk, {"ServiceAccount", "User", "Group"}));
      }
    }
  }
  if (old != nullptr && role_ref_text(json::find(*old, "roleRef")) != role_ref_text(ref)) {
    causes.push_back(invalid("roleRef", role_ref_text(ref), "cannot change roleRef"));
  }
  return causes;
}

}  // namespace

std::vector<PolicyRule> rules_of(const Value& role) {
  std::vector<PolicyRule> out;
  const Value* rules = json::find(role, "rules");
  if (rules == nullptr || !rules->IsArray()) return out;
  for (const auto& r : rules->GetArray()) {
    if (!r.IsObject()) continue;
    out.push_back(PolicyRule{strings_of(r, "verbs"), strings_of(r, "apiGroups"),
                             strings_of(r, "resources"), strings_of(r, "resourceNames"),
                             strings_of(r, "nonResourceURLs")});
  }
  return out;
}

bool rule_allows(const PolicyRule& r, const RequestAttributes& a) {
  if (!matches(r.verbs, a.verb)) return false;
  if (!a.resource_request) {
    return std::any_of(r.non_resource_urls.begin(), r.non_resource_urls.end(),
                       [&](const std::string& u) { return url_covers(u, a.path); });
  }
  const std::string resource =
      a.subresource.empty() ? a.resource : a.resource + "/" + a.subresource;
  if (!matches(r.api_groups, a.group) || !matches(r.resources, resource)) return false;
  return r.resource_names.empty() || has(r.resource_names, a.name);
}

Coverage covers(const std::vector<PolicyRule>& owner, const std::vector<PolicyRule>& requested,
                size_t max_parts) {
  Coverage c;
  size_t examined = 0;
  // Returns false to stop (budget spent).
  auto check = [&](PolicyRule part) {
    if (++examined > max_parts) {
      c.too_large = true;
      return false;
    }
    const bool held = std::any_of(owner.begin(), owner.end(),
                                  [&](const PolicyRule& o) { return rule_covers(o, part); });
    if (!held && c.missing.size() < 20) c.missing.push_back(std::move(part));
    return true;
  };
  for (const auto& r : requested) {
    for (const auto& verb : r.verbs) {
      for (const auto& group : r.api_groups) {
        for (const auto& res : r.resources) {
          if (r.resource_names.empty()) {
            if (!check(PolicyRule{{verb}, {group}, {res}, {}, {}})) return c;
          }
          for (const auto& name : r.resource_names) {
            if (!check(PolicyRule{{verb}, {group}, {res}, {name}, {}})) return c;
          }
        }
      }
      for (const auto& url : r.non_resource_urls) {
        if (!check(PolicyRule{{verb}, {}, {}, {}, {url}})) return c;
      }
    }
  }
  return c;
}

std::string rule_string(const PolicyRule& r) {
  std::vector<std::string> parts;
  if (!r.api_groups.empty()) parts.push_back("APIGroups:" + quoted_list(r.api_groups));
  if (!r.resources.empty()) parts.push_back("Resources:" + quoted_list(r.resources));
  if (!r.resource_names.empty()) parts.push_back("ResourceNames:" + quoted_list(r.resource_names));
  if (!r.non_resource_urls.empty())
    parts.push_back("NonResourceURLs:" + quoted_list(r.non_resource_urls));
  parts.push_back("Verbs:" + quoted_list(r.verbs));
  std::string out = "{";
  for (size_t i = 0; i < parts.size(); ++i)
    out += (i ? ", " : "") + parts[i];
  return out + "}";
}

std::vector<PolicyRule> granted_by_role(const Value& role) {
  std::vector<PolicyRule> out = rules_of(role);
  if (const Value* agg = json::find(role, "aggregationRule"); agg && !agg->IsNull()) {
    // RBAC demands cluster-admin's rights for an aggregationRule.
    out.push_back(PolicyRule{{"*"}, {"*"}, {"*"}, {}, {}});
    out.push_back(PolicyRule{{"*"}, {}, {}, {}, {"*"}});
  }
  return out;
}

bool is_rbac_role(const ResourceType& t) {
  return t.group == kRbacGroup && (t.resource == "roles" || t.resource == "clusterroles");
}

std::string rbac_grants_text(const Value& obj) {
  std::string out;
  for (const char* key : {"rules", "aggregationRule", "roleRef"}) {
    if (const Value* v = json::find(obj, key)) out += json::write(*v);
    out += '\n';
  }
  return out;
}

bool is_rbac_binding(const ResourceType& t) {
  return t.group == kRbacGroup &&
         (t.resource == "rolebindings" || t.resource == "clusterrolebindings");
}

Result<std::vector<ErrorCause>> validate_rbac_object(const ResourceType& t, const Value& obj,
                                                     const Value* old) {
  if (is_rbac_role(t)) return validate_role(t, obj);
  if (is_rbac_binding(t)) return validate_binding(t, obj, old);
  return std::vector<ErrorCause>{};
}

}  // namespace nvdra::sim
