// Small RapidJSON helpers: checked parsing into a Result, compact serialization, and accessors
// that test the type before reading (RapidJSON's Get*() only assert, which is UB under NDEBUG).
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace nvdra::json {

using Value = rapidjson::Value;
using Document = rapidjson::Document;

// How deep arrays and objects may nest in what parse() accepts and what servers store. The
// parser and every walker of a document (writer, patches, validators) recurse once per level,
// so an unbounded depth is a stack overflow (1.5 M levels of "[" crashed nvdra-sim). Go's
// encoding/json allows 10000; 1000 keeps each walker well inside the smallest thread stack we
// run on, and is 30 times deeper than any Kubernetes object or schema needs.
inline constexpr int kMaxDepth = 1000;

// Parses a complete JSON text. Errors name the byte offset; a text nested deeper than
// kMaxDepth is refused before parsing.
Result<Document> parse(std::string_view text);

// Whether `v` nests arrays and objects deeper than `limit` levels (a scalar is depth 0). Stops
// descending past the limit, so it is safe on any document.
bool deeper_than(const Value& v, int limit);

// Compact serialization.
std::string write(const Value& v);

// Member lookup that tolerates non-objects; returns nullptr when absent.
const Value* find(const Value& obj, std::string_view key);
// Walks nested objects: find_path(v, {"metadata", "name"}).
const Value* find_path(const Value& obj, std::initializer_list<std::string_view> path);

std::optional<std::string_view> get_string(const Value& obj, std::string_view key);
std::optional<int64_t> get_int(const Value& obj, std::string_view key);
std::optional<bool> get_bool(const Value& obj, std::string_view key);
std::string_view string_or(const Value& obj, std::string_view key, std::string_view def = {});

// Editing: members are replaced in place or added. AddMember may move sibling members, so
// re-find references into `obj` after calling these.
using Allocator = Document::AllocatorType;
Value& ensure_object(Value& parent, const char* name, Allocator& a);
Value& ensure_array(Value& parent, const char* name, Allocator& a);
void set_string(Value& obj, const char* name, std::string_view v, Allocator& a);
void set_int(Value& obj, const char* name, int64_t v, Allocator& a);
void set_bool(Value& obj, const char* name, bool v, Allocator& a);
void remove_member(Value& obj, const char* name);

// Sets the condition `type` in obj.status.conditions (metav1.Condition / PodCondition shape);
// lastTransitionTime changes only when the status does. Returns whether anything changed.
bool set_condition(Document& obj, std::string_view type, std::string_view status,
                   std::string_view reason, std::string_view message, std::string_view now);

// Appends `s` as a JSON string literal (with quotes) to `out`.
void append_quoted(std::string& out, std::string_view s);
std::string quote(std::string_view s);
// ["a","b"]: a JSON array of quoted strings.
std::string quote_array(const std::vector<std::string>& v);

}  // namespace nvdra::json
