// Strategic merge patch for built-in types, as kubectl sends it (kubectl apply, patch without
// --type): lists with a patch merge key are merged element by element, `finalizers` merges as a
// set, and the directives $patch (replace/delete/merge), $retainKeys, $setElementOrder/<list> and
// $deleteFromPrimitiveList/<list> are honoured. Merge keys come from a table of the Kubernetes
// fields nvdra's workloads use; other lists are replaced whole, as JSON merge patch does.
#pragma once

#include "base/json.h"
#include "base/result.h"

namespace nvdra::sim {

Status strategic_merge_patch(json::Document& target, const json::Value& patch);

}  // namespace nvdra::sim
