// Small RapidJSON helpers: checked parsing into a Result, compact serialization, and accessors
// that test the type before reading (RapidJSON's Get*() only assert, which is UB under NDEBUG).
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace nvdra::json {

using Value = rapidjson::Value;
using Document = rapidjson::Document;

// Parses a complete JSON text. Errors name the byte offset.
Result<Document> parse(std::string_view text);

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

// Appends `s` as a JSON string literal (with quotes) to `out`.
void append_quoted(std::string& out, std::string_view s);
std::string quote(std::string_view s);

}  // namespace nvdra::json
