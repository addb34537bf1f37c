// JSON merge patch (RFC 7386) and JSON patch (RFC 6902) applied to a RapidJSON document.
// Errors name the failing operation; the target is left unchanged on error.
#pragma once

#include <cstddef>

#include "base/json.h"
#include "base/result.h"

namespace nvdra::json {

// RFC 7386: objects merge recursively, null removes a member, anything else replaces.
Status merge_patch(Document& target, const Value& patch);

// Bounds on one JSON patch: a few bytes of `copy` operations can otherwise double a document
// per operation (12 of them made an 8 MB ConfigMap). Defaults are kube-apiserver's.
struct JsonPatchLimits {
  size_t max_operations = 10'000;  // maxJSONPatchOperations
  // What all `copy` operations together may duplicate, in serialized bytes (json-patch's
  // AccumulatedCopySizeLimit, which kube-apiserver sets to its 3 MiB request limit).
  size_t max_copied_bytes = 3u << 20;
};

// RFC 6902: add, remove, replace, move, copy, test. `ops` must be an array.
Status json_patch(Document& target, const Value& ops, const JsonPatchLimits& limits = {});

}  // namespace nvdra::json
