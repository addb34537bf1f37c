// Binding a pod to a node, as kube-apiserver's pods/binding does: spec.nodeName is set once (409
// when the pod is already bound or being deleted), then the pod is marked PodScheduled. Used by
// the binding subresource and by the simulated scheduler.
#pragma once

#include <string>

#include "sim/store.h"

namespace nvdra::sim {

Status bind_pod(Store& store, const ResourceType& pods, const std::string& ns,
                const std::string& name, const std::string& node);

}  // namespace nvdra::sim
