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

bool contains(const Value* list, std::string_view v) {
  if (list == nullptr || !list->IsArray()) return false;
  for (const auto& x : list->GetArray()) {
    if (x.IsString() && (x.GetString() == v || std::string_view(x.GetString()) == "*")) return true;
  }
  return false;
}

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
  if (token == admin_token_)
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
  std::string_view given = token.substr(dot + 1);
  if (given.size() != expected.size() ||
      CRYPTO_memcmp(given.data(), expected.data(), given.size()) != 0) {
    return std::nullopt;
  }
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

bool Authorizer::role_allows(const Value& role, const RequestAttributes& a) const {
  const Value* rules = json::find(role, "rules");
  if (rules == nullptr || !rules->IsArray()) return false;
  const std::string resource =
      a.subresource.empty() ? a.resource : a.resource + "/" + a.subresource;
  for (const auto& r : rules->GetArray()) {
    if (!contains(json::find(r, "verbs"), a.verb)) continue;
    if (!a.resource_request) {
      const Value* urls = json::find(r, "nonResourceURLs");
      if (urls && urls->IsArray()) {
        for (const auto& u : urls->GetArray()) {
          std::string_view p = u.GetString();
          if (p == a.path || p == "*" ||
              (p.ends_with("*") && a.path.starts_with(p.substr(0, p.size() - 1))))
            return true;
        }
      }
      continue;
    }
    if (!contains(json::find(r, "apiGroups"), a.group)) continue;
    if (!contains(json::find(r, "resources"), resource)) continue;
    const Value* names = json::find(r, "resourceNames");
    if (names && names->IsArray() && !names->Empty() && !contains(names, a.name)) continue;
    return true;
  }
  return false;
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
  auto check_bindings = [&](const ResourceType& binding_type, const std::string& ns) {
    auto bindings = store_.list(binding_type, ns, ListQuery{});
    if (!bindings) return false;
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
      std::string kind(json::string_or(*ref, "kind")), name(json::string_or(*ref, "name"));
      auto role_type = registry_.find("rbac.authorization.k8s.io", "v1",
                                      kind == "Role" ? "roles" : "clusterroles");
      auto role = store_.get(*role_type, kind == "Role" ? ns : "", name);
      if (!role) continue;
      auto doc = json::parse(*role);
      if (doc && role_allows(*doc, a)) return true;
    }
    return false;
  };
  auto crb = registry_.find("rbac.authorization.k8s.io", "v1", "clusterrolebindings");
  if (check_bindings(*crb, "")) return true;
  if (!a.ns.empty()) {
    auto rb = registry_.find("rbac.authorization.k8s.io", "v1", "rolebindings");
    if (check_bindings(*rb, a.ns)) return true;
  }
  return false;
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
