#include "agent/cluster_access.h"

#include <boost/asio/use_future.hpp>

#include <fmt/format.h>

#include "base/json.h"
#include "base/log.h"

namespace nvdra::agent {
namespace {

const k8s::ResourceRef kClaims{"resource.k8s.io", "v1", "resourceclaims"};
const k8s::ResourceRef kComputeDomains{"resource.nvidia.com", "v1beta1", "computedomains"};
const k8s::ResourceRef kNodes{"", "v1", "nodes"};

}  // namespace

RestClusterAccess::RestClusterAccess(net::any_io_executor executor,
                                     std::shared_ptr<k8s::RestClient> client, std::string node_name)
    : executor_(std::move(executor)),
      client_(client),
      node_(std::move(node_name)),
      events_(client, k8s::EventRecorderOptions{.reporting_controller = "nvdra.nvidia.com/agent",
                                                .reporting_instance = node_}) {}

template <class T>
T RestClusterAccess::wait(awaitable<T> a) {
  return net::co_spawn(executor_, std::move(a), net::use_future).get();
}

Result<std::string> RestClusterAccess::get_claim(const std::string& ns, const std::string& name) {
  auto r = wait(client_->get(kClaims.in_namespace(ns).with_name(name)));
  if (!r) return unexpected(r.error());
  return (*r)->json();
}

Result<std::string> RestClusterAccess::get_compute_domain(const std::string& uid) {
  auto r = wait(client_->list_all(kComputeDomains));
  if (!r) {
    if (r.error().http_status == 404)
      return unexpected(ErrorCode::kNotFound, "the ComputeDomain CRD is not installed");
    return unexpected(r.error());
  }
  for (const auto& o : r->items) {
    if (o->uid() == uid) return o->json();
  }
  return unexpected(ErrorCode::kNotFound, "no ComputeDomain with UID " + uid);
}

awaitable<Status> RestClusterAccess::edit_label(std::string key, std::string value, bool remove) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    const k8s::ResourceRef ref = kNodes.with_name(node_);
    auto node = co_await client_->get(ref);
    if (!node) co_return unexpected(node.error().wrap("get node " + node_));
    const auto current = (*node)->label(key);
    if (remove && (!current || *current != value)) co_return ok();
    if (!remove && current) {
      if (*current == value) co_return ok();
      co_return unexpected(ErrorCode::kInvalidArgument,
                           "label already exists for a different ComputeDomain");
    }
    // The resourceVersion makes the patch conditional: a concurrent change means a retry.
    const std::string patch =
        fmt::format(R"({{"metadata":{{"resourceVersion":{},"labels":{{{}:{}}}}}}})",
                    json::quote((*node)->resource_version()), json::quote(key),
                    remove ? std::string("null") : json::quote(value));
    auto r = co_await client_->patch(ref, k8s::PatchType::kMerge, patch);
    if (r) co_return ok();
    if (r.error().http_status != 409) co_return unexpected(r.error().wrap("label node " + node_));
  }
  co_return unexpected(ErrorCode::kIo, "node labels kept changing; giving up for now");
}

Status RestClusterAccess::set_node_label(const std::string& key, const std::string& value) {
  return wait(edit_label(key, value, false));
}

Status RestClusterAccess::remove_node_label(const std::string& key, const std::string& value) {
  return wait(edit_label(key, value, true));
}

awaitable<void> RestClusterAccess::record_event(k8s::ObjectReference ref, std::string reason,
                                                std::string message) {
  auto s = co_await events_.record(ref, "Warning", reason, "Prepare", message);
  if (!s) NVDRA_V(2, "cannot record event {}: {}", reason, s.error().message);
}

void RestClusterAccess::warning_event(const std::string& kind, const std::string& ns,
                                      const std::string& name, const std::string& uid,
                                      const std::string& reason, const std::string& message) {
  k8s::ObjectReference ref{kind, kind == "Node" ? "v1" : "resource.k8s.io/v1", ns, name, uid};
  net::co_spawn(executor_, record_event(ref, reason, message), net::detached);
}

}  // namespace nvdra::agent
