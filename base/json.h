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

// Nesting deeper than this is refused before parsing: RapidJSON's parser and our own tree walks
// recurse per level, so a hostile document (`[[[[…`, a million deep) would overflow the stack.
// Kubernetes objects nest a few dozen levels; CRD schemas a few hundred at most.
inline constexpr int kMaxDepth = 1000;

// kInvalidArgument when `text` nests arrays and objects deeper than `max_depth` (a linear scan
// that skips strings; it does not validate the rest of the syntax).
Status check_depth(std::string_view text, int max_depth = kMaxDepth);

// Parses a complete JSON text, nested at most kMaxDepth. Errors name the byte offset.
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
