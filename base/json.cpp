#include "base/json.h"

#include <fmt/format.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace nvdra::json {

Result<Document> parse(std::string_view text) {
  Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError()) {
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("invalid JSON at offset {}: {}", doc.GetErrorOffset(),
                                  rapidjson::GetParseError_En(doc.GetParseError())));
  }
  return doc;
}

std::string write(const Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buf);
  v.Accept(writer);
  return std::string(buf.GetString(), buf.GetSize());
}

const Value* find(const Value& obj, std::string_view key) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(Value(rapidjson::StringRef(key.data(), key.size())));
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

const Value* find_path(const Value& obj, std::initializer_list<std::string_view> path) {
  const Value* cur = &obj;
  for (auto key : path) {
    cur = find(*cur, key);
    if (cur == nullptr) return nullptr;
  }
  return cur;
}

std::optional<std::string_view> get_string(const Value& obj, std::string_view key) {
  const Value* v = find(obj, key);
  if (v == nullptr || !v->IsString()) return std::nullopt;
  return std::string_view(v->GetString(), v->GetStringLength());
}

std::optional<int64_t> get_int(const Value& obj, std::string_view key) {
  const Value* v = find(obj, key);
  if (v == nullptr || !v->IsInt64()) return std::nullopt;
  return v->GetInt64();
}

std::optional<bool> get_bool(const Value& obj, std::string_view key) {
  const Value* v = find(obj, key);
  if (v == nullptr || !v->IsBool()) return std::nullopt;
  return v->GetBool();
}

std::string_view string_or(const Value& obj, std::string_view key, std::string_view def) {
  return get_string(obj, key).value_or(def);
}

void append_quoted(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

std::string quote(std::string_view s) {
  std::string out;
  append_quoted(out, s);
  return out;
}

}  // namespace nvdra::json
