// Validation of custom resources against their CRD's structural schema (openAPIV3Schema), as the
// API server does it on create and update: defaults applied, unknown fields pruned (unless
// x-kubernetes-preserve-unknown-fields), then types, required fields, enums, bounds, lengths,
// patterns and item counts checked. x-kubernetes-validations rules are evaluated where they are
// the immutability rule `self == oldSelf`; any other expression is refused with a 422 naming it,
// never silently accepted.
#pragma once

#include <vector>

#include "base/json.h"
#include "base/result.h"

namespace nvdra::sim {

// Returns the causes of rejection (empty = valid). `old` is the stored object on update.
std::vector<ErrorCause> validate_custom_resource(json::Document& obj, const json::Value& schema,
                                                 const json::Value* old);

}  // namespace nvdra::sim
