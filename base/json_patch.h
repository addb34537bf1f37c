// JSON merge patch (RFC 7386) and JSON patch (RFC 6902) applied to a RapidJSON document.
// Errors name the failing operation; the target is left unchanged on error.
#pragma once

#include "base/json.h"
#include "base/result.h"

namespace nvdra::json {

// RFC 7386: objects merge recursively, null removes a member, anything else replaces.
Status merge_patch(Document& target, const Value& patch);

// RFC 6902: add, remove, replace, move, copy, test. `ops` must be an array.
Status json_patch(Document& target, const Value& ops);

}  // namespace nvdra::json
