// Validation of custom resources against their CRD's structural schema (openAPIV3Schema), as the
// API server does it on create and update: defaults applied, unknown fields pruned (unless
// x-kubernetes-preserve-unknown-fields), then types, required fields, enums, bounds, lengths,
// patterns and item counts checked, then x-kubernetes-validations rules evaluated with nvdra's CEL
// subset (cel/cel.h).
#pragma once

#include <vector>

#include "base/json.h"
#include "base/result.h"

namespace nvdra::sim {

// Returns the causes of rejection (empty = valid). `old` is the stored object on update.
std::vector<ErrorCause> validate_custom_resource(json::Document& obj, const json::Value& schema,
                                                 const json::Value* old);

// Compiles every validation rule of a CustomResourceDefinition's schemas, as kube-apiserver does
// when the CRD is written: a rule outside the CEL subset is a cause naming it.
std::vector<ErrorCause> validate_crd_rules(const json::Value& crd);

}  // namespace nvdra::sim
