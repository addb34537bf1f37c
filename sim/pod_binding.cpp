#include "sim/pod_binding.h"

#include <fmt/format.h>

namespace nvdra::sim {

Status bind_pod(Store& store, const ResourceType& pods, const std::string& ns,
                const std::string& name, const std::string& node) {
  const std::string cannot =
      fmt::format("Operation cannot be fulfilled on pods/binding \"{}\": ", name);
  // NewConflict(api.Resource("pods/binding"), name, ...): details name the pod and pods/binding.
  auto binding_conflict = [&](std::string message) {
    Error e = api_error(409, "Conflict", std::move(message));
    e.details_name = name;
    e.details_kind = "pods/binding";
    return e;
  };
  auto bound =
      store.modify(pods, ns, name, false, false, false, [&](json::Document& pod, bool) -> Status {
        if (json::find_path(pod, {"metadata", "deletionTimestamp"}))
          return unexpected(binding_conflict(
              cannot + fmt::format("pod {} is being deleted, cannot be assigned to a host", name)));
        const json::Value* spec = json::find(pod, "spec");
        if (!spec || !spec->IsObject())
          return unexpected(api_error(422, "Invalid", "the pod has no spec"));
        if (auto current = json::get_string(*spec, "nodeName"); current && !current->empty())
          return unexpected(binding_conflict(
              cannot + fmt::format("pod {} is already assigned to node \"{}\"", name, *current)));
        json::set_string(pod["spec"], "nodeName", node, pod.GetAllocator());
        return ok();
      });
  if (!bound) return unexpected(bound.error());
  const std::string now = store.now_rfc3339();
  auto scheduled =
      store.modify(pods, ns, name, true, false, false, [&](json::Document& pod, bool) -> Status {
        json::set_condition(pod, "PodScheduled", "True", "", "", now);
        return ok();
      });
  if (!scheduled) return unexpected(scheduled.error());
  return ok();
}

}  // namespace nvdra::sim
