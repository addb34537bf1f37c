// Conversion of resource.k8s.io objects between the served versions. Objects are stored as v1
// (the storage version); v1beta2 has the same shape, v1beta1 differs in two places: a device
// request is flat instead of holding `exactly`, and a slice's device wraps its fields in `basic`.
#pragma once

#include <string_view>

#include "base/json.h"

namespace nvdra::sim {

// Rewrites `obj` (of `kind`) from version `from` to version `to` of resource.k8s.io, including
// its apiVersion. Other groups and kinds are left alone.
void convert_resource_api(json::Document& obj, std::string_view kind, std::string_view from,
                          std::string_view to);

}  // namespace nvdra::sim
