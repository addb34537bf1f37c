#include "sim/auth.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

#include "base/base64.h"

namespace nvdra::sim {
namespace {

using json::Value;

constexpr std::string_view kTokenPrefix = "nvdra-sa.";

bool subject_matches(const Value& s, const UserInfo& u) {
  std::string_view kind = json::string_or(s, "kind");
  std::string_view name = json::string_or(s, "name");
  if (kind == "User") return name == u.name;
  if (kind == "Group") return std::find(u.groups.begin(), u.groups.end(), name) != u.groups.end();
  if (kind == "ServiceAccount") {
    return u.name ==
           fmt::format("system:serviceaccount:{}:{}", json::string_or(s, "namespace"), name);
  }
  return false;
}

// Compares two secrets in time independent of where they differ (and of their lengths):
// equal-length SHA-256 digests compared with CRYPTO_memcmp. A plain == returns at the first
// differing byte, which a client can time to guess a token byte by byte.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
  unsigned int la = 0, lb = 0;
  if (!EVP_Digest(a.data(), a.size(), da, &la, EVP_sha256(), nullptr) ||
      !EVP_Digest(b.data(), b.size(), db, &lb, EVP_sha256(), nullptr) || la != lb) {
    return false;
  }
  return CRYPTO_memcmp(da, db, la) == 0;
}

}  // namespace

Authenticator::Authenticator(std::string admin_token, std::string secret, const Store& store,
                             const ResourceRegistry& registry)
    : admin_token_(std::move(admin_token)),
      secret_(std::move(secret)),
      store_(store),
      registry_(registry) {}

std::string Authenticator::sign(const std::string& subject) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t len = 0;
  EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret_.data(), secret_.size(),
            reinterpret_cast<const unsigned char*>(subject.data()), subject.size(), mac, sizeof mac,
            &len);
  std::string hex;
  for (size_t i = 0; i < len; ++i)
    hex += fmt::format("{:02x}", mac[i]);
  return hex;
}

Result<std::string> Authenticator::issue_token(const std::string& ns,
                                               const std::string& name) const {
  auto sa = store_.get(*registry_.find("", "v1", "serviceaccounts"), ns, name);
  if (!sa) return unexpected(sa.error());
  return service_account_token(ns, name);
}

std::string Authenticator::service_account_token(const std::string& ns,
                                                 const std::string& name) const {
  const std::string subject = ns + "/" + name;
  std::string encoded = base64_encode(subject);
  std::replace(encoded.begin(), encoded.end(), '/', '_');
  std::replace(encoded.begin(), encoded.end(), '+', '-');
  return std::string(kTokenPrefix) + encoded + "." + sign(subject);
}

std::optional<UserInfo> Authenticator::authenticate(std::string_view header) const {
  if (!header.starts_with("Bearer ")) return std::nullopt;
  std::string_view token = header.substr(7);
  if (!admin_token_.empty() && same_secret(token, admin_token_))
    return UserInfo{"admin", {"system:masters", "system:authenticated"}, true};
  if (!token.starts_with(kTokenPrefix)) return std::nullopt;
  token.remove_prefix(kTokenPrefix.size());
  size_t dot = token.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::string encoded(token.substr(0, dot));
  std::replace(encoded.begin(), encoded.end(), '_', '/');
  std::replace(encoded.begin(), encoded.end(), '-', '+');
  auto subject = base64_decode(encoded);
  if (!subject) return std::nullopt;
  const std::string expected = sign(*subject);
  if (!same_secret(token.substr(dot + 1), expected)) return std::nullopt;
  size_t slash = subject->find('/');
  if (slash == std::string::npos) return std::nullopt;
  std::string ns = subject->substr(0, slash), name = subject->substr(slash + 1);
  // A deleted service account's tokens stop working.
  if (!store_.get(*registry_.find("", "v1", "serviceaccounts"), ns, name)) return std::nullopt;
  return UserInfo{
      fmt::format("system:serviceaccount:{}:{}", ns, name),
      {"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
      false};
}

std::vector<PolicyRule> Authorizer::rules_for(const UserInfo& user, const std::string& ns) const {
  std::vector<PolicyRule> out;
  auto collect = [&](const ResourceType& binding_type, const std::string& binding_ns) {
    auto bindings = store_.list(binding_type, binding_ns, ListQuery{});
    if (!bindings) return;
    for (const auto& text : bindings->items) {
      auto b = json::parse(text);
      if (!b) continue;
      const Value* subjects = json::find(*b, "subjects");
      if (!subjects || !subjects->IsArray()) continue;
      bool matched = false;
      for (const auto& s : subjects->GetArray())
        matched = matched || subject_matches(s, user);
      if (!matched) continue;
      const Value* ref = json::find(*b, "roleRef");
      if (!ref) continue;
      auto rules = role_ref_rules(*ref, binding_ns);
      if (rules) out.insert(out.end(), rules->begin(), rules->end());
    }
  };
  collect(*registry_.find("rbac.authorization.k8s.io", "v1", "clusterrolebindings"), "");
  if (!ns.empty()) collect(*registry_.find("rbac.authorization.k8s.io", "v1", "rolebindings"), ns);
  return out;
}

Result<std::vector<PolicyRule>> Authorizer::role_ref_rules(const Value& ref,
                                                           const std::string& ns) const {
  const bool role = json::string_or(ref, "kind") == "Role";
  auto role_type =
      registry_.find("rbac.authorization.k8s.io", "v1", role ? "roles" : "clusterroles");
  auto text = store_.get(*role_type, role ? ns : "", std::string(json::string_or(ref, "name")));
  if (!text) return unexpected(text.error());
  auto doc = json::parse(*text);
  if (!doc) return std::vector<PolicyRule>{};
  return rules_of(*doc);
}

bool Authorizer::allowed(const UserInfo& user, const RequestAttributes& a) const {
  if (user.admin) return true;
  // Discovery and version information are open to every authenticated user (system:discovery).
  if (!a.resource_request) {
    if (a.path == "/api" || a.path.starts_with("/api/") || a.path == "/apis" ||
        a.path.starts_with("/apis/") || a.path == "/version" || a.path.starts_with("/openapi")) {
      return true;
    }
  }
  const auto rules = rules_for(user, a.ns);
  return std::any_of(rules.begin(), rules.end(),
                     [&](const PolicyRule& r) { return rule_allows(r, a); });
}

Status Authorizer::may_write_rbac(const UserInfo& user, const ResourceType& t,
                                  const std::string& ns_in, const Value& obj) const {
  if (user.admin) return ok();  // system:masters may escalate
  const std::string ns = t.namespaced ? ns_in : "";
  const Value* meta = json::find(obj, "metadata");
  const std::string name(meta ? json::string_or(*meta, "name") : "");
  std::vector<PolicyRule> requested;
  if (is_rbac_role(t)) {
    RequestAttributes escalate{"escalate", t.group, t.resource, "", ns, name};
    if (allowed(user, escalate)) return ok();
    requested = granted_by_role(obj);
  } else if (is_rbac_binding(t)) {
    static const Value kNone(rapidjson::kObjectType);
    const Value* found = json::find(obj, "roleRef");
    const Value& ref = found && found->IsObject() ? *found : kNone;
    const bool role = json::string_or(ref, "kind") == "Role";
    RequestAttributes bind{"bind", t.group, role ? "roles" : "clusterroles",
                           "",     ns,      std::string(json::string_or(ref, "name"))};
    if (allowed(user, bind)) return ok();
    auto rules = role_ref_rules(ref, ns);
    if (!rules) return unexpected(rules.error());
    requested = std::move(*rules);
  } else {
    return ok();
  }
  const Coverage c = covers(rules_for(user, ns), requested);
  if (c.covered()) return ok();
  std::string groups;
  for (const auto& g : user.groups)
    groups += (groups.empty() ? "" : " ") + json::quote(g);
  std::string msg = fmt::format(
      "{}.{} \"{}\" is forbidden: user \"{}\" (groups=[{}]) is attempting to grant RBAC "
      "permissions not currently held:",
      t.resource, t.group, name, user.name, groups);
  for (const auto& r : c.missing)
    msg += "\n" + rule_string(r);
  if (c.too_large) msg += "\n(the rules are too many to compare; ask for the escalate verb)";
  Error e = api_error(403, "Forbidden", std::move(msg));
  e.details_name = name;
  e.details_group = t.group;
  e.details_kind = t.resource;
  return unexpected(e);
}

std::string Authorizer::forbidden_message(const UserInfo& user, const RequestAttributes& a) {
  if (!a.resource_request) {
    return fmt::format("forbidden: User \"{}\" cannot {} path \"{}\"", user.name, a.verb, a.path);
  }
  std::string resource = a.subresource.empty() ? a.resource : a.resource + "/" + a.subresource;
  std::string gr = a.group.empty() ? a.resource : a.resource + "." + a.group;
  std::string msg =
      a.name.empty() ? gr + " is forbidden: " : fmt::format("{} \"{}\" is forbidden: ", gr, a.name);
  msg += fmt::format("User \"{}\" cannot {} resource \"{}\" in API group \"{}\"", user.name, a.verb,
                     resource, a.group);
  if (!a.ns.empty()) msg += fmt::format(" in the namespace \"{}\"", a.ns);
  return msg;
}

}  // namespace nvdra::sim
