#include "sim/resource_types.h"

#include <algorithm>

#include "sim/table_columns.h"

namespace nvdra::sim {

namespace {
ResourceType t(std::string group, std::string version, std::string resource, std::string kind,
               bool namespaced, bool status, std::vector<std::string> short_names = {},
               std::vector<std::string> fields = {}) {
  ResourceType r;
  r.group = std::move(group);
  r.version = std::move(version);
  r.resource = std::move(resource);
  r.kind = std::move(kind);
  r.singular = r.kind;
  std::transform(r.singular.begin(), r.singular.end(), r.singular.begin(), ::tolower);
  r.namespaced = namespaced;
  r.status_subresource = status;
  r.short_names = std::move(short_names);
  r.selectable_fields = std::move(fields);
  r.printer_columns = builtin_columns(r.group, r.resource);
  return r;
}
}  // namespace

ResourceRegistry::ResourceRegistry() {
  add(t("", "v1", "namespaces", "Namespace", false, true, {"ns"}, {"status.phase"}));
  add(t("", "v1", "nodes", "Node", false, true, {"no"}, {"spec.unschedulable"}));
  add(t("", "v1", "pods", "Pod", true, true, {"po"},
        {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
         "status.phase", "status.podIP", "status.nominatedNodeName"}));
  add(t("", "v1", "events", "Event", true, false, {"ev"},
        {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
         "involvedObject.uid", "reason", "type", "reportingComponent", "source"}));
  add(t("", "v1", "configmaps", "ConfigMap", true, false, {"cm"}));
  add(t("", "v1", "secrets", "Secret", true, false, {}, {"type"}));
  add(t("", "v1", "services", "Service", true, true, {"svc"}));
  add(t("", "v1", "serviceaccounts", "ServiceAccount", true, false, {"sa"}));
  add(t("apps", "v1", "daemonsets", "DaemonSet", true, true, {"ds"}));
  add(t("apps", "v1", "deployments", "Deployment", true, true, {"deploy"}));
  add(t("apps", "v1", "replicasets", "ReplicaSet", true, true, {"rs"}));
  add(t("batch", "v1", "jobs", "Job", true, true));
  add(t("coordination.k8s.io", "v1", "leases", "Lease", true, false));
  add(t("events.k8s.io", "v1", "events", "Event", true, false, {"ev"}));
  add(t("rbac.authorization.k8s.io", "v1", "roles", "Role", true, false));
  add(t("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, false));
  add(t("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, false));
  add(t("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false,
        false));
  // Stored so that manifests/base applies; nvdra-sim does not evaluate admission policies.
  add(t("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
        "ValidatingAdmissionPolicy", false, true));
  add(t("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding", false, false));
  for (const char* v : {"v1", "v1beta2", "v1beta1"}) {
    add(t("resource.k8s.io", v, "deviceclasses", "DeviceClass", false, false));
    add(t("resource.k8s.io", v, "resourceclaims", "ResourceClaim", true, true));
    add(t("resource.k8s.io", v, "resourceclaimtemplates", "ResourceClaimTemplate", true, false));
    add(t("resource.k8s.io", v, "resourceslices", "ResourceSlice", false, false, {},
          {"spec.nodeName", "spec.driver"}));
  }
  add(t("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", false,
        false));
  add(t("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
        false, true, {"crd", "crds"}));
}

void ResourceRegistry::add(ResourceType t) {
  std::lock_guard lock(mu_);
  std::erase_if(types_, [&](const auto& e) {
    return e->group == t.group && e->version == t.version && e->resource == t.resource;
  });
  types_.push_back(std::make_shared<const ResourceType>(std::move(t)));
}

void ResourceRegistry::remove(const std::string& group, const std::string& version,
                              const std::string& resource) {
  std::lock_guard lock(mu_);
  std::erase_if(types_, [&](const auto& e) {
    return e->group == group && e->version == version && e->resource == resource;
  });
}

std::shared_ptr<const ResourceType> ResourceRegistry::find(const std::string& group,
                                                           const std::string& version,
                                                           const std::string& resource) const {
  std::lock_guard lock(mu_);
  for (const auto& e : types_) {
    if (e->group == group && e->version == version && e->resource == resource) return e;
  }
  return nullptr;
}

std::shared_ptr<const ResourceType> ResourceRegistry::find_kind(const std::string& gv,
                                                                const std::string& kind) const {
  std::lock_guard lock(mu_);
  for (const auto& e : types_) {
    if (e->group_version() == gv && e->kind == kind) return e;
  }
  return nullptr;
}

std::vector<std::shared_ptr<const ResourceType>> ResourceRegistry::all() const {
  std::lock_guard lock(mu_);
  return types_;
}

std::vector<std::pair<std::string, std::vector<std::string>>> ResourceRegistry::groups() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto& e : types_) {
    auto it =
        std::find_if(out.begin(), out.end(), [&](const auto& g) { return g.first == e->group; });
    if (it == out.end()) {
      out.emplace_back(e->group, std::vector<std::string>{e->version});
    } else if (std::find(it->second.begin(), it->second.end(), e->version) == it->second.end()) {
      it->second.push_back(e->version);
    }
  }
  return out;
}

}  // namespace nvdra::sim
