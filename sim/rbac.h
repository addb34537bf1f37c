// RBAC's rules as data: reading a Role's rules with their types checked, matching a request
// against them, the escalation check kube-apiserver makes before a Role or binding is written
// (a user may grant only what it holds), and validation of the four RBAC kinds on write.
//
// Stored RBAC objects are read on every authorization, so nothing here trusts their shape: a
// value of the wrong type is skipped, never dereferenced (objects persisted in a --data-dir
// before validation existed may still hold such values).
#pragma once

#include <string>
#include <vector>

#include "base/json.h"
#include "base/result.h"
#include "sim/resource_types.h"

namespace nvdra::sim {

struct RequestAttributes {
  std::string verb;  // get list watch create update patch delete deletecollection
  std::string group, resource, subresource, ns, name;
  bool resource_request = true;
  std::string path;  // for non-resource requests
};

struct PolicyRule {
  std::vector<std::string> verbs, api_groups, resources, resource_names, non_resource_urls;
};

// The rules of a Role or ClusterRole; entries of the wrong type are left out.
std::vector<PolicyRule> rules_of(const json::Value& role);
bool rule_allows(const PolicyRule& rule, const RequestAttributes& a);

// The parts of `requested` that `owner` does not cover, by RBAC's own comparison (each rule
// broken down into one verb on one resource or URL, and each part held by some owner rule).
// At most `max_parts` parts are examined: a role whose breakdown is larger is reported as not
// covered (`too_large`), so that one request cannot make the server loop for minutes.
struct Coverage {
  std::vector<PolicyRule> missing;  // the first few uncovered parts
  bool too_large = false;
  bool covered() const { return missing.empty() && !too_large; }
};
Coverage covers(const std::vector<PolicyRule>& owner, const std::vector<PolicyRule>& requested,
                size_t max_parts = 100'000);
// "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\"]}", as kube-apiserver prints rules.
std::string rule_string(const PolicyRule& r);

// What a role grants, for the escalation check: its rules, and for a ClusterRole with an
// aggregationRule every permission (the aggregation may gather anything).
std::vector<PolicyRule> granted_by_role(const json::Value& role);
bool is_rbac_role(const ResourceType& t);     // roles, clusterroles
bool is_rbac_binding(const ResourceType& t);  // rolebindings, clusterrolebindings
// What the escalation check judged of an object (its rules, aggregationRule and roleRef), to
// tell whether a later write grants the same.
std::string rbac_grants_text(const json::Value& obj);

// Validation of the four RBAC kinds as kube-apiserver decodes and validates them: a value of
// the wrong JSON type is a 400 (the decoder's error); rule violations are returned as causes
// for a 422 (field paths as the real server's). `old` is the stored object on update (roleRef
// may not change). Other types: no causes.
Result<std::vector<ErrorCause>> validate_rbac_object(const ResourceType& t, const json::Value& obj,
                                                     const json::Value* old);

}  // namespace nvdra::sim
