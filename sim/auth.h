// Who a request comes from and what it may do, as kube-apiserver's token authenticator and RBAC
// authorizer decide it: the admin token is system:masters (everything allowed); service-account
// tokens (minted through serviceaccounts/<name>/token) are checked against Roles, ClusterRoles
// and their bindings stored in the sim, so processes run with exactly the permissions their
// manifests grant.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sim/rbac.h"
#include "sim/resource_types.h"
#include "sim/store.h"

namespace nvdra::sim {

struct UserInfo {
  std::string name;
  std::vector<std::string> groups;
  bool admin = false;
};

class Authenticator {
 public:
  // `secret` signs service-account tokens (kept in --data-dir so tokens survive restarts).
  Authenticator(std::string admin_token, std::string secret, const Store& store,
                const ResourceRegistry& registry);
  std::optional<UserInfo> authenticate(std::string_view authorization_header) const;
  // A token for the service account (which must exist).
  Result<std::string> issue_token(const std::string& ns, const std::string& name) const;
  // The token of a service account that may not exist yet (what a kubelet mounts into a pod);
  // it authenticates once the account exists and for as long as it does.
  std::string service_account_token(const std::string& ns, const std::string& name) const;

 private:
  std::string sign(const std::string& subject) const;
  std::string admin_token_, secret_;
  const Store& store_;
  const ResourceRegistry& registry_;
};

class Authorizer {
 public:
  Authorizer(const Store& store, const ResourceRegistry& registry)
      : store_(store), registry_(registry) {}
  bool allowed(const UserInfo& user, const RequestAttributes& a) const;
  // The message kube-apiserver gives for a denied request.
  static std::string forbidden_message(const UserInfo& user, const RequestAttributes& a);

  // Every rule the user holds in `ns`: its ClusterRoleBindings' and, for a namespace, that
  // namespace's RoleBindings' ("" = the cluster-wide rules only).
  std::vector<PolicyRule> rules_for(const UserInfo& user, const std::string& ns) const;

  // RBAC's escalation prevention, before a Role, ClusterRole or binding `obj` is written in
  // `ns`: the user must hold every permission the role grants (or the `escalate` verb on it),
  // and for a binding every permission of the role it references (or `bind` on that role).
  // 403 otherwise; 404 when a binding references a role that does not exist. Other types: ok.
  Status may_write_rbac(const UserInfo& user, const ResourceType& t, const std::string& ns,
                        const json::Value& obj) const;

 private:
  // The rules of the Role (in `ns`) or ClusterRole a roleRef names.
  Result<std::vector<PolicyRule>> role_ref_rules(const json::Value& ref,
                                                 const std::string& ns) const;
  const Store& store_;
  const ResourceRegistry& registry_;
};

}  // namespace nvdra::sim
