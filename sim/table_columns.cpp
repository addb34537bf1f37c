#include "sim/table_columns.h"

#include <fmt/format.h>

namespace nvdra::sim {
namespace {

using json::Value;

PrinterColumn col(std::string name, std::string type, std::string path, int priority = 0) {
  return PrinterColumn{std::move(name), std::move(type), "", "", std::move(path), priority};
}

const PrinterColumn kAge = col("Age", "date", ".metadata.creationTimestamp");

int64_t int_at(const Value& obj, std::initializer_list<std::string_view> path) {
  const Value* v = json::find_path(obj, path);
  return v && v->IsInt64() ? v->GetInt64() : 0;
}

bool condition_true(const Value& obj, std::string_view type) {
  const Value* conds = json::find_path(obj, {"status", "conditions"});
  if (!conds || !conds->IsArray()) return false;
  for (const auto& c : conds->GetArray()) {
    if (json::string_or(c, "type") == type) return json::string_or(c, "status") == "True";
  }
  return false;
}

}  // namespace

std::vector<PrinterColumn> builtin_columns(const std::string& group, const std::string& resource) {
  if (group.empty() && resource == "pods")
    return {
        col("Ready", "string", "@pod.ready"),        col("Status", "string", "@pod.status"),
        col("Restarts", "integer", "@pod.restarts"), kAge,
        col("IP", "string", ".status.podIP", 1),     col("Node", "string", ".spec.nodeName", 1)};
  if (group.empty() && resource == "nodes")
    return {col("Status", "string", "@node.status"), col("Roles", "string", "@node.roles"), kAge,
            col("Version", "string", ".status.nodeInfo.kubeletVersion"),
            col("Internal-IP", "string", ".status.addresses[0].address", 1)};
  if (group.empty() && resource == "namespaces")
    return {col("Status", "string", ".status.phase"), kAge};
  if (group == "resource.k8s.io" && resource == "resourceclaims")
    return {col("State", "string", "@claim.state"), kAge};
  if (group == "resource.k8s.io" && resource == "resourceslices")
    return {col("Node", "string", ".spec.nodeName"), col("Driver", "string", ".spec.driver"),
            col("Pool", "string", ".spec.pool.name"), kAge};
  if (group == "apps" && resource == "deployments")
    return {col("Ready", "string", "@deployment.ready"),
            col("Up-to-date", "integer", ".status.updatedReplicas"),
            col("Available", "integer", ".status.availableReplicas"), kAge};
  if (group == "apps" && resource == "replicasets")
    return {col("Desired", "integer", ".spec.replicas"),
            col("Current", "integer", ".status.replicas"),
            col("Ready", "integer", ".status.readyReplicas"), kAge};
  if (group == "apps" && resource == "daemonsets")
    return {col("Desired", "integer", ".status.desiredNumberScheduled"),
            col("Current", "integer", ".status.currentNumberScheduled"),
            col("Ready", "integer", ".status.numberReady"), kAge};
  if (group == "batch" && resource == "jobs")
    return {col("Status", "string", "@job.status"),
            col("Completions", "string", "@job.completions"), kAge};
  return {};
}

std::string computed_cell(std::string_view name, const Value& obj) {
  if (name == "@pod.ready") {
    const Value* specs = json::find_path(obj, {"spec", "containers"});
    const Value* statuses = json::find_path(obj, {"status", "containerStatuses"});
    int ready = 0;
    if (statuses && statuses->IsArray()) {
      for (const auto& s : statuses->GetArray())
        ready += json::get_bool(s, "ready").value_or(false);
    }
    return fmt::format("{}/{}", ready, specs && specs->IsArray() ? specs->Size() : 0);
  }
  if (name == "@pod.status") {
    if (json::find_path(obj, {"metadata", "deletionTimestamp"})) return "Terminating";
    const Value* st = json::find(obj, "status");
    const std::string_view phase = st ? json::string_or(*st, "phase", "Pending") : "Pending";
    if (phase == "Succeeded") return "Completed";
    if (phase == "Pending" && json::string_or(*json::find(obj, "spec"), "nodeName").size() > 0)
      return "ContainerCreating";
    return std::string(phase);
  }
  if (name == "@pod.restarts") return "0";
  if (name == "@node.status") {
    std::string s = condition_true(obj, "Ready") ? "Ready" : "NotReady";
    if (const Value* spec = json::find(obj, "spec");
        spec && json::get_bool(*spec, "unschedulable").value_or(false))
      s += ",SchedulingDisabled";
    return s;
  }
  if (name == "@node.roles") {
    std::string roles;
    if (const Value* labels = json::find_path(obj, {"metadata", "labels"});
        labels && labels->IsObject()) {
      for (auto m = labels->MemberBegin(); m != labels->MemberEnd(); ++m) {
        std::string_view k(m->name.GetString(), m->name.GetStringLength());
        if (k.starts_with("node-role.kubernetes.io/"))
          roles += (roles.empty() ? "" : ",") + std::string(k.substr(24));
      }
    }
    return roles.empty() ? "<none>" : roles;
  }
  if (name == "@claim.state") {
    if (json::find_path(obj, {"metadata", "deletionTimestamp"})) return "deleted";
    if (!json::find_path(obj, {"status", "allocation"})) return "pending";
    const Value* r = json::find_path(obj, {"status", "reservedFor"});
    return r && r->IsArray() && !r->Empty() ? "allocated,reserved" : "allocated";
  }
  if (name == "@deployment.ready")
    return fmt::format("{}/{}", int_at(obj, {"status", "readyReplicas"}),
                       int_at(obj, {"spec", "replicas"}));
  if (name == "@job.status") {
    if (condition_true(obj, "Complete")) return "Complete";
    if (condition_true(obj, "Failed")) return "Failed";
    return "Running";
  }
  if (name == "@job.completions") {
    const Value* c = json::find_path(obj, {"spec", "completions"});
    return fmt::format("{}/{}", int_at(obj, {"status", "succeeded"}),
                       c && c->IsInt64() ? c->GetInt64() : 1);
  }
  return "";
}

}  // namespace nvdra::sim
