#include "base/json.h"

#include <fmt/format.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace nvdra::json {

Status check_depth(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        return unexpected(
            ErrorCode::kInvalidArgument,
            fmt::format("invalid JSON at offset {}: nested deeper than {} levels", i, max_depth));
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return ok();
}

Result<Document> parse(std::string_view text) {
  if (auto s = check_depth(text); !s) return unexpected(s.error());
  Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError()) {
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("invalid JSON at offset {}: {}", doc.GetErrorOffset(),
                                  rapidjson::GetParseError_En(doc.GetParseError())));
  }
  return doc;
}

bool deeper_than(const Value& v, int limit) {
  if (!v.IsArray() && !v.IsObject()) return false;
  if (limit <= 0) return true;
  if (v.IsArray()) {
    for (const auto& item : v.GetArray()) {
      if (deeper_than(item, limit - 1)) return true;
    }
    return false;
  }
  for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
    if (deeper_than(it->value, limit - 1)) return true;
  }
  return false;
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

std::string quote_array(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    append_quoted(out, v[i]);
  }
  return out + "]";
}

Value& ensure_object(Value& parent, const char* name, Allocator& a) {
  auto it = parent.FindMember(name);
  if (it == parent.MemberEnd()) {
    parent.AddMember(Value(name, a), Value(rapidjson::kObjectType), a);
    it = parent.FindMember(name);
  } else if (!it->value.IsObject()) {
    it->value.SetObject();
  }
  return it->value;
}

Value& ensure_array(Value& parent, const char* name, Allocator& a) {
  auto it = parent.FindMember(name);
  if (it == parent.MemberEnd()) {
    parent.AddMember(Value(name, a), Value(rapidjson::kArrayType), a);
    it = parent.FindMember(name);
  } else if (!it->value.IsArray()) {
    it->value.SetArray();
  }
  return it->value;
}

void set_string(Value& obj, const char* name, std::string_view v, Allocator& a) {
  Value val(v.data(), static_cast<rapidjson::SizeType>(v.size()), a);
  auto it = obj.FindMember(name);
  if (it != obj.MemberEnd()) {
    it->value = std::move(val);
  } else {
    obj.AddMember(Value(name, a), val, a);
  }
}

void set_int(Value& obj, const char* name, int64_t v, Allocator& a) {
  auto it = obj.FindMember(name);
  if (it != obj.MemberEnd()) {
    it->value.SetInt64(v);
  } else {
    obj.AddMember(Value(name, a), Value(v), a);
  }
}

void set_bool(Value& obj, const char* name, bool v, Allocator& a) {
  auto it = obj.FindMember(name);
  if (it != obj.MemberEnd()) {
    it->value.SetBool(v);
  } else {
    obj.AddMember(Value(name, a), Value(v), a);
  }
}

void remove_member(Value& obj, const char* name) {
  if (obj.IsObject()) obj.RemoveMember(name);
}

bool set_condition(Document& obj, std::string_view type, std::string_view status,
                   std::string_view reason, std::string_view message, std::string_view now) {
  auto& a = obj.GetAllocator();
  Value& conds = ensure_array(ensure_object(obj, "status", a), "conditions", a);
  for (auto& c : conds.GetArray()) {
    if (string_or(c, "type") != type) continue;
    if (string_or(c, "status") == status && string_or(c, "reason") == reason &&
        string_or(c, "message") == message)
      return false;
    if (string_or(c, "status") != status) set_string(c, "lastTransitionTime", now, a);
    set_string(c, "status", status, a);
    set_string(c, "reason", reason, a);
    set_string(c, "message", message, a);
    return true;
  }
  Value c(rapidjson::kObjectType);
  set_string(c, "type", type, a);
  set_string(c, "status", status, a);
  set_string(c, "lastTransitionTime", now, a);
  if (!reason.empty()) set_string(c, "reason", reason, a);
  if (!message.empty()) set_string(c, "message", message, a);
  conds.PushBack(c, a);
  return true;
}

}  // namespace nvdra::json
