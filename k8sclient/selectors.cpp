#include "k8sclient/selectors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace nvdra::k8s {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

// Splits on commas that are not inside parentheses.
std::vector<std::string_view> split_top(std::string_view s) {
  std::vector<std::string_view> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '(') ++depth;
    if (s[i] == ')') --depth;
    if (s[i] == ',' && depth == 0) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  out.push_back(s.substr(start));
  return out;
}

bool valid_key(std::string_view k) {
  if (k.empty() || k.size() > 316) return false;
  size_t slash = k.find('/');
  std::string_view name = slash == std::string_view::npos ? k : k.substr(slash + 1);
  if (slash != std::string_view::npos && (slash == 0 || slash > 253)) return false;
  if (name.empty() || name.size() > 63) return false;
  auto ok_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  };
  if (!std::all_of(k.begin(), k.end(), [&](char c) { return ok_char(c) || c == '/'; }))
    return false;
  return std::isalnum(static_cast<unsigned char>(name.front())) &&
         std::isalnum(static_cast<unsigned char>(name.back()));
}

bool valid_value(std::string_view v) {
  if (v.size() > 63) return false;
  if (v.empty()) return true;
  auto ok_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  };
  return std::all_of(v.begin(), v.end(), ok_char) &&
         std::isalnum(static_cast<unsigned char>(v.front())) &&
         std::isalnum(static_cast<unsigned char>(v.back()));
}

// Splits "key<op>value" on the first of !=, ==, = (the equality forms both selector kinds share).
struct Equality {
  std::string key, value;
  bool negate = false;
};
std::optional<Equality> split_equality(std::string_view part) {
  for (std::string_view op : {"!=", "==", "="}) {
    size_t p = part.find(op);
    if (p == std::string_view::npos) continue;
    return Equality{std::string(trim(part.substr(0, p))),
                    std::string(trim(part.substr(p + op.size()))), op == "!="};
  }
  return std::nullopt;
}

Error bad(std::string_view part, std::string_view why) {
  return Error(ErrorCode::kInvalidArgument,
               fmt::format("unable to parse requirement: \"{}\": {}", part, why));
}

}  // namespace

Result<LabelSelector> LabelSelector::parse(std::string_view text) {
  LabelSelector sel;
  text = trim(text);
  if (text.empty()) return sel;
  for (auto raw : split_top(text)) {
    std::string_view part = trim(raw);
    if (part.empty()) return unexpected(bad(raw, "empty requirement"));
    LabelRequirement r;
    if (part.front() == '!') {
      r.key = std::string(trim(part.substr(1)));
      r.op = LabelRequirement::Op::kDoesNotExist;
    } else if (part.find('(') == std::string_view::npos && split_equality(part)) {
      Equality e = *split_equality(part);
      r.key = std::move(e.key);
      r.op = e.negate ? LabelRequirement::Op::kNotEquals : LabelRequirement::Op::kEquals;
      r.values.push_back(std::move(e.value));
    } else if (size_t open = part.find('('); open != std::string_view::npos) {
      if (part.back() != ')') return unexpected(bad(part, "missing ')'"));
      std::string_view head = trim(part.substr(0, open));
      size_t sp = head.find_last_of(" \t");
      if (sp == std::string_view::npos) return unexpected(bad(part, "expected 'in' or 'notin'"));
      std::string_view op = trim(head.substr(sp + 1));
      r.key = std::string(trim(head.substr(0, sp)));
      if (op == "in") {
        r.op = LabelRequirement::Op::kIn;
      } else if (op == "notin") {
        r.op = LabelRequirement::Op::kNotIn;
      } else {
        return unexpected(bad(part, "expected 'in' or 'notin'"));
      }
      std::string_view list = part.substr(open + 1, part.size() - open - 2);
      for (auto v : split_top(list)) {
        std::string_view t = trim(v);
        if (!valid_value(t)) return unexpected(bad(part, fmt::format("invalid value \"{}\"", t)));
        r.values.emplace_back(t);
      }
      if (r.values.empty() || (r.values.size() == 1 && r.values[0].empty() && list.empty())) {
        return unexpected(bad(part, "for 'in', 'notin' operators, values set can't be empty"));
      }
    } else {
      r.key = std::string(part);
      r.op = LabelRequirement::Op::kExists;
    }
    if (!valid_key(r.key))
      return unexpected(bad(part, fmt::format("invalid label key \"{}\"", r.key)));
    for (const auto& v : r.values) {
      if (!valid_value(v))
        return unexpected(bad(part, fmt::format("invalid label value \"{}\"", v)));
    }
    sel.reqs_.push_back(std::move(r));
  }
  return sel;
}

bool LabelSelector::matches(const Labels& labels) const {
  auto find = [&](const std::string& k) -> const std::string* {
    for (const auto& [lk, lv] : labels) {
      if (lk == k) return &lv;
    }
    return nullptr;
  };
  for (const auto& r : reqs_) {
    const std::string* v = find(r.key);
    auto in = [&] {
      return v && std::find(r.values.begin(), r.values.end(), *v) != r.values.end();
    };
    switch (r.op) {
      case LabelRequirement::Op::kEquals:
      case LabelRequirement::Op::kIn:
        if (!in()) return false;
        break;
      case LabelRequirement::Op::kNotEquals:
      case LabelRequirement::Op::kNotIn:
        if (in()) return false;
        break;
      case LabelRequirement::Op::kExists:
        if (!v) return false;
        break;
      case LabelRequirement::Op::kDoesNotExist:
        if (v) return false;
        break;
    }
  }
  return true;
}

Result<FieldSelector> FieldSelector::parse(std::string_view text) {
  FieldSelector sel;
  text = trim(text);
  if (text.empty()) return sel;
  for (auto raw : split_top(text)) {
    std::string_view part = trim(raw);
    auto e = split_equality(part);
    if (!e) {
      return unexpected(
          Error(ErrorCode::kInvalidArgument,
                fmt::format("invalid selector: '{}'; can't understand '{}'", text, part)));
    }
    FieldRequirement r{std::move(e->key), e->negate, std::move(e->value)};
    if (r.field.empty()) {
      return unexpected(
          Error(ErrorCode::kInvalidArgument, fmt::format("invalid field selector: '{}'", text)));
    }
    sel.reqs_.push_back(std::move(r));
  }
  return sel;
}

bool FieldSelector::matches(
    const std::function<std::optional<std::string>(const std::string&)>& get) const {
  for (const auto& r : reqs_) {
    auto v = get(r.field);
    if (!v) return false;
    if ((*v == r.value) == r.negate) return false;
  }
  return true;
}

}  // namespace nvdra::k8s
