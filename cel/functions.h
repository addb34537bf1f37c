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

// Compiles a regular expression as `matches` reads it: RE2 syntax and semantics, as Kubernetes'
// CEL, so matching takes time linear in the subject. Patterns are bounded in length and in
// compiled size; an invalid one is an error.
Result<std::shared_ptr<const re2::RE2>> compile_regex(std::string_view pattern);

// Whether `pattern` (RE2 syntax, as Go's regexp) matches anywhere in `subject`; compiled
// patterns are cached. For OpenAPI schema `pattern`s, which Kubernetes checks with Go's regexp.
Result<bool> regex_search(const std::string& pattern, std::string_view subject);

// The runtime cost of matches(subject, pattern), as cel-go counts it: the subject's traversal
// (0.1 per byte) times the pattern's length (0.25 per byte), each rounded up.
uint64_t matches_cost(size_t subject_bytes, size_t pattern_bytes);

// Calls a resolved function. `target` is the receiver of a member call (else nullptr).
Result<Value> call_function(const Node& call, const Value* target, std::span<const Value> args);

}  // namespace nvdra::cel
