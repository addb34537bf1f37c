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

// The patch merge key of the list `field` inside `parent` ("" when the list is atomic), and
// whether it merges as a set of scalars. Server-side apply reads lists the same way.
std::string_view list_merge_key(std::string_view field, std::string_view parent);
bool is_set_list(std::string_view field);

}  // namespace nvdra::sim
