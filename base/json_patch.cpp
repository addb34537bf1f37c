#include "base/json_patch.h"

#include <fmt/format.h>

#include <charconv>
#include <string>
#include <vector>

namespace nvdra::json {
namespace {

using Alloc = Document::AllocatorType;

void merge_into(Value& target, const Value& patch, Alloc& a) {
  if (!patch.IsObject()) {
    target.CopyFrom(patch, a);
    return;
  }
  if (!target.IsObject()) target.SetObject();
  for (auto it = patch.MemberBegin(); it != patch.MemberEnd(); ++it) {
    auto existing = target.FindMember(it->name);
    if (it->value.IsNull()) {
      if (existing != target.MemberEnd()) target.EraseMember(existing);
      continue;
    }
    if (existing == target.MemberEnd()) {
      Value key(it->name, a);
      Value v;
      merge_into(v, it->value, a);
      target.AddMember(key, v, a);
    } else {
      merge_into(existing->value, it->value, a);
    }
  }
}

// Splits an RFC 6901 pointer into unescaped tokens.
Result<std::vector<std::string>> parse_pointer(std::string_view p) {
  std::vector<std::string> out;
  if (p.empty()) return out;
  if (p.front() != '/')
    return unexpected(ErrorCode::kInvalidArgument, "JSON pointer must start with '/'");
  p.remove_prefix(1);
  for (;;) {
    size_t slash = p.find('/');
    std::string_view raw = p.substr(0, slash);
    std::string tok;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '~' && i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
        tok.push_back(raw[i + 1] == '0' ? '~' : '/');
        ++i;
      } else if (raw[i] == '~') {
        return unexpected(ErrorCode::kInvalidArgument, "invalid '~' escape in JSON pointer");
      } else {
        tok.push_back(raw[i]);
      }
    }
    out.push_back(std::move(tok));
    if (slash == std::string_view::npos) break;
    p.remove_prefix(slash + 1);
  }
  return out;
}

bool parse_index(const std::string& tok, size_t size, bool allow_end, size_t* out) {
  if (allow_end && tok == "-") {
    *out = size;
    return true;
  }
  if (tok.empty() || (tok.size() > 1 && tok[0] == '0')) return false;
  size_t v = 0;
  auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  if (ec != std::errc() || p != tok.data() + tok.size()) return false;
  if (v > size || (!allow_end && v == size)) return false;
  *out = v;
  return true;
}

Value* resolve(Value& root, const std::vector<std::string>& toks, size_t n) {
  Value* cur = &root;
  for (size_t i = 0; i < n; ++i) {
    if (cur->IsObject()) {
      auto it =
          cur->FindMember(Value(toks[i].c_str(), static_cast<rapidjson::SizeType>(toks[i].size())));
      if (it == cur->MemberEnd()) return nullptr;
      cur = &it->value;
    } else if (cur->IsArray()) {
      size_t idx;
      if (!parse_index(toks[i], cur->Size(), false, &idx)) return nullptr;
      cur = &(*cur)[static_cast<rapidjson::SizeType>(idx)];
    } else {
      return nullptr;
    }
  }
  return cur;
}

Status add_at(Value& root, const std::vector<std::string>& toks, Value value, Alloc& a) {
  if (toks.empty()) {
    root = std::move(value);
    return ok();
  }
  Value* parent = resolve(root, toks, toks.size() - 1);
  if (parent == nullptr) return unexpected(ErrorCode::kInvalidArgument, "path not found");
  const std::string& last = toks.back();
  if (parent->IsObject()) {
    auto it =
        parent->FindMember(Value(last.c_str(), static_cast<rapidjson::SizeType>(last.size())));
    if (it != parent->MemberEnd()) {
      it->value = std::move(value);
    } else {
      parent->AddMember(Value(last.c_str(), static_cast<rapidjson::SizeType>(last.size()), a),
                        value, a);
    }
    return ok();
  }
  if (parent->IsArray()) {
    size_t idx;
    if (!parse_index(last, parent->Size(), true, &idx)) {
      return unexpected(ErrorCode::kInvalidArgument, "array index out of range");
    }
    parent->PushBack(Value(), a);
    for (size_t i = parent->Size() - 1; i > idx; --i) {
      (*parent)[static_cast<rapidjson::SizeType>(i)] =
          std::move((*parent)[static_cast<rapidjson::SizeType>(i - 1)]);
    }
    (*parent)[static_cast<rapidjson::SizeType>(idx)] = std::move(value);
    return ok();
  }
  return unexpected(ErrorCode::kInvalidArgument, "parent is not a container");
}

Result<Value> remove_at(Value& root, const std::vector<std::string>& toks) {
  if (toks.empty()) return unexpected(ErrorCode::kInvalidArgument, "cannot remove the root");
  Value* parent = resolve(root, toks, toks.size() - 1);
  if (parent == nullptr) return unexpected(ErrorCode::kInvalidArgument, "path not found");
  const std::string& last = toks.back();
  if (parent->IsObject()) {
    auto it =
        parent->FindMember(Value(last.c_str(), static_cast<rapidjson::SizeType>(last.size())));
    if (it == parent->MemberEnd()) return unexpected(ErrorCode::kInvalidArgument, "path not found");
    Value v = std::move(it->value);
    parent->EraseMember(it);
    return v;
  }
  if (parent->IsArray()) {
    size_t idx;
    if (!parse_index(last, parent->Size(), false, &idx)) {
      return unexpected(ErrorCode::kInvalidArgument, "array index out of range");
    }
    Value v = std::move((*parent)[static_cast<rapidjson::SizeType>(idx)]);
    parent->Erase(parent->Begin() + idx);
    return v;
  }
  return unexpected(ErrorCode::kInvalidArgument, "parent is not a container");
}

}  // namespace

Status merge_patch(Document& target, const Value& patch) {
  merge_into(target, patch, target.GetAllocator());
  return ok();
}

Status json_patch(Document& target, const Value& ops, const JsonPatchLimits& limits) {
  if (!ops.IsArray()) return unexpected(ErrorCode::kInvalidArgument, "JSON patch must be an array");
  if (ops.Size() > limits.max_operations) {
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("The allowed maximum operations in a JSON patch is {}, got {}",
                                  limits.max_operations, ops.Size()));
  }
  size_t copied = 0;
  Document work;
  work.CopyFrom(target, work.GetAllocator());
  auto& a = work.GetAllocator();
  for (rapidjson::SizeType i = 0; i < ops.Size(); ++i) {
    const Value& op = ops[i];
    auto fail = [&](std::string_view why) {
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("JSON patch operation {}: {}", i, why));
    };
    if (!op.IsObject()) return fail("not an object");
    auto name = get_string(op, "op");
    auto path_s = get_string(op, "path");
    if (!name || !path_s) return fail("needs op and path");
    auto path = parse_pointer(*path_s);
    if (!path) return fail(path.error().message);
    const Value* value = find(op, "value");
    Status st;
    if (*name == "add" || *name == "replace") {
      if (value == nullptr) return fail("needs a value");
      if (*name == "replace" && resolve(work, *path, path->size()) == nullptr)
        return fail("path not found");
      Value v(*value, a);
      if (*name == "replace" && !path->empty()) {
        *resolve(work, *path, path->size()) = std::move(v);
      } else {
        st = add_at(work, *path, std::move(v), a);
      }
    } else if (*name == "remove") {
      auto r = remove_at(work, *path);
      if (!r) st = unexpected(r.error());
    } else if (*name == "move" || *name == "copy") {
      auto from_s = get_string(op, "from");
      if (!from_s) return fail("needs from");
      auto from = parse_pointer(*from_s);
      if (!from) return fail(from.error().message);
      Value v;
      if (*name == "move") {
        auto r = remove_at(work, *from);
        if (!r) return fail(r.error().message);
        v = std::move(*r);
      } else {
        Value* src = resolve(work, *from, from->size());
        if (src == nullptr) return fail("from not found");
        copied += write(*src).size();
        if (copied > limits.max_copied_bytes) {
          return fail(fmt::format("copies would exceed the accumulated copy size limit of {} bytes",
                                  limits.max_copied_bytes));
        }
        v.CopyFrom(*src, a);
      }
      st = add_at(work, *path, std::move(v), a);
    } else if (*name == "test") {
      if (value == nullptr) return fail("needs a value");
      Value* cur = resolve(work, *path, path->size());
      if (cur == nullptr || *cur != *value) return fail("test failed");
    } else {
      return fail(fmt::format("unknown op {}", quote(*name)));
    }
    if (!st) return fail(st.error().message);
  }
  target.Swap(work);
  return ok();
}

}  // namespace nvdra::json
