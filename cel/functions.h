// The functions of nvdra's CEL subset: the standard ones Kubernetes selectors and validation rules
// use (size, string tests, conversions) and the Kubernetes quantity and semver libraries.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "cel/ast.h"

namespace nvdra::cel {

// Resolves a call at compile time. Returns an error naming the function when it is outside the
// subset or called with the wrong receiver or argument count.
Result<Fn> resolve_function(std::string_view name, bool member, size_t argc);

// Compiles a regular expression the way `matches` reads it (RE2 syntax, approximated with
// ECMAScript). Bounded to keep hostile patterns cheap.
Result<std::shared_ptr<const std::regex>> compile_regex(std::string_view pattern);

// Calls a resolved function. `target` is the receiver of a member call (else nullptr).
Result<Value> call_function(const Node& call, const Value* target, std::span<const Value> args);

}  // namespace nvdra::cel
