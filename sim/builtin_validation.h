// Validation of built-in types that the simulator stores as plain JSON (they have no schema):
// the JSON types the real server's decoder insists on and the rules its validation enforces,
// for the kinds where a wrong shape matters to readers (RBAC objects, ConfigMaps, Secrets).
// It runs on every create, update and patch result, so a patch cannot produce what a create
// would have refused.
#pragma once

#include <string_view>
#include <vector>

#include "base/json.h"
#include "base/result.h"
#include "sim/resource_types.h"

namespace nvdra::sim {

// A value of the wrong JSON type is a 400 (as the real server's decoder answers); rule
// violations come back as causes for a 422. Types without checks: no causes.
Result<std::vector<ErrorCause>> validate_builtin(const ResourceType& t, const json::Value& obj,
                                                 const json::Value* old);

// The decoder's 400 for `got` where `field` (Go's "Type.json.path") wants `want`.
Error decode_error(const ResourceType& t, const json::Value& got, std::string_view field,
                   std::string_view want);

}  // namespace nvdra::sim
