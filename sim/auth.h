// Who a request comes from and what it may do, as kube-apiserver's token authenticator and RBAC
// authorizer decide it: the admin token is system:masters (everything allowed); service-account
// tokens (minted through serviceaccounts/<name>/token) are checked against Roles, ClusterRoles
// and their bindings stored in the sim, so processes run with exactly the permissions their
// manifests grant.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sim/resource_types.h"
#include "sim/store.h"

namespace nvdra::sim {

struct UserInfo {
  std::string name;
  std::vector<std::string> groups;
  bool admin = false;
};

struct RequestAttributes {
  std::string verb;  // get list watch create update patch delete deletecollection
  std::string group, resource, subresource, ns, name;
  bool resource_request = true;
  std::string path;  // for non-resource requests
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

 private:
  bool role_allows(const json::Value& role, const RequestAttributes& a) const;
  const Store& store_;
  const ResourceRegistry& registry_;
};

}  // namespace nvdra::sim
