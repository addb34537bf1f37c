#include "cel/value.h"

#include <fmt/format.h>

#include <cmath>

namespace nvdra::cel {
namespace {

bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool is_identifier_part(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok =
        (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

Result<uint64_t> numeric_part(std::string_view text, std::string_view part) {
  if (!is_digits(part) || (part.size() > 1 && part.front() == '0') || part.size() > 19)
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("invalid semver '{}': '{}' is not a version number", text, part));
  uint64_t v = 0;
  for (char c : part)
    v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

}  // namespace

Result<Semver> Semver::parse(std::string_view text) {
  Semver v;
  std::string_view rest = text;
  if (auto plus = rest.find('+'); plus != std::string_view::npos) {
    v.build = std::string(rest.substr(plus + 1));
    for (auto id : split(v.build, '.')) {
      if (!is_identifier_part(id))
        return unexpected(ErrorCode::kInvalidArgument,
                          fmt::format("invalid semver '{}': bad build metadata", text));
    }
    rest = rest.substr(0, plus);
  }
  if (auto dash = rest.find('-'); dash != std::string_view::npos) {
    for (auto id : split(rest.substr(dash + 1), '.')) {
      if (!is_identifier_part(id) || (is_digits(id) && id.size() > 1 && id.front() == '0'))
        return unexpected(ErrorCode::kInvalidArgument,
                          fmt::format("invalid semver '{}': bad pre-release identifier", text));
      v.prerelease.emplace_back(id);
    }
    rest = rest.substr(0, dash);
  }
  auto parts = split(rest, '.');
  if (parts.size() != 3)
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("invalid semver '{}': want MAJOR.MINOR.PATCH", text));
  auto major = numeric_part(text, parts[0]);
  if (!major) return unexpected(major.error());
  auto minor = numeric_part(text, parts[1]);
  if (!minor) return unexpected(minor.error());
  auto patch = numeric_part(text, parts[2]);
  if (!patch) return unexpected(patch.error());
  v.major = *major;
  v.minor = *minor;
  v.patch = *patch;
  return v;
}

int Semver::compare(const Semver& o) const {
  auto cmp = [](uint64_t a, uint64_t b) { return a < b ? -1 : a > b ? 1 : 0; };
  if (int c = cmp(major, o.major)) return c;
  if (int c = cmp(minor, o.minor)) return c;
  if (int c = cmp(patch, o.patch)) return c;
  // A pre-release sorts before its release; identifiers compare numerically when both are
  // numbers, numbers sort before words, and a longer list wins a tie.
  if (prerelease.empty() || o.prerelease.empty())
    return prerelease.empty() == o.prerelease.empty() ? 0 : prerelease.empty() ? 1 : -1;
  for (size_t i = 0; i < prerelease.size() && i < o.prerelease.size(); ++i) {
    const std::string& a = prerelease[i];
    const std::string& b = o.prerelease[i];
    const bool an = is_digits(a), bn = is_digits(b);
    if (an && bn) {
      if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    } else if (an != bn) {
      return an ? -1 : 1;
    }
    if (int c = a.compare(b)) return c < 0 ? -1 : 1;
  }
  return cmp(prerelease.size(), o.prerelease.size());
}

std::string Semver::to_string() const {
  std::string s = fmt::format("{}.{}.{}", major, minor, patch);
  for (size_t i = 0; i < prerelease.size(); ++i)
    s += (i == 0 ? "-" : ".") + prerelease[i];
  if (!build.empty()) s += "+" + build;
  return s;
}

Value Value::from_json(const json::Value& v) {
  if (v.IsBool()) return Value(v.GetBool());
  if (v.IsInt64()) return Value(v.GetInt64());
  if (v.IsUint64()) return Value(v.GetUint64());
  if (v.IsNumber()) return Value(v.GetDouble());
  if (v.IsString()) return Value(std::string(v.GetString(), v.GetStringLength()));
  if (v.IsArray()) {
    List l;
    l.reserve(v.Size());
    for (const auto& e : v.GetArray())
      l.push_back(from_json(e));
    return Value(std::move(l));
  }
  if (v.IsObject()) {
    Map m;
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it)
      m.entries.emplace(std::string(it->name.GetString(), it->name.GetStringLength()),
                        from_json(it->value));
    return Value(std::move(m));
  }
  return Value();
}

std::optional<int> compare_numbers(const Value& a, const Value& b) {
  using K = Value::Kind;
  auto sign = [](auto x, auto y) { return x < y ? -1 : x > y ? 1 : 0; };
  if (a.is(K::kDouble) || b.is(K::kDouble)) {
    auto d = [](const Value& v) {
      return v.is(K::kDouble) ? v.as_double()
             : v.is(K::kInt)  ? static_cast<double>(v.as_int())
                              : static_cast<double>(v.as_uint());
    };
    const double x = d(a), y = d(b);
    if (std::isnan(x) || std::isnan(y)) return std::nullopt;
    return sign(x, y);
  }
  if (a.is(K::kInt) && b.is(K::kInt)) return sign(a.as_int(), b.as_int());
  if (a.is(K::kUint) && b.is(K::kUint)) return sign(a.as_uint(), b.as_uint());
  // Mixed int/uint: a negative int is below every uint.
  if (a.is(K::kInt))
    return a.as_int() < 0 ? -1 : sign(static_cast<uint64_t>(a.as_int()), b.as_uint());
  return b.as_int() < 0 ? 1 : sign(a.as_uint(), static_cast<uint64_t>(b.as_int()));
}

bool Value::operator==(const Value& o) const {
  if (is_number() && o.is_number()) {
    auto c = compare_numbers(*this, o);
    return c && *c == 0;
  }
  if (kind() != o.kind()) return false;
  switch (kind()) {
    case Kind::kNull:
      return true;
    case Kind::kBool:
      return as_bool() == o.as_bool();
    case Kind::kString:
      return as_string() == o.as_string();
    case Kind::kList:
      return as_list() == o.as_list();
    case Kind::kMap:
      return as_map().entries == o.as_map().entries;
    case Kind::kQuantity:
      return as_quantity() == o.as_quantity();
    case Kind::kSemver:
      return as_semver().compare(o.as_semver()) == 0;
    default:
      return false;  // numbers handled above
  }
}

const char* Value::kind_name(Kind k) {
  switch (k) {
    case Kind::kNull:
      return "null_type";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kUint:
      return "uint";
    case Kind::kDouble:
      return "double";
    case Kind::kString:
      return "string";
    case Kind::kList:
      return "list";
    case Kind::kMap:
      return "map";
    case Kind::kQuantity:
      return "Quantity";
    case Kind::kSemver:
      return "Semver";
  }
  return "unknown";
}

std::string Value::debug_string() const {
  switch (kind()) {
    case Kind::kNull:
      return "null";
    case Kind::kBool:
      return as_bool() ? "true" : "false";
    case Kind::kInt:
      return std::to_string(as_int());
    case Kind::kUint:
      return std::to_string(as_uint()) + "u";
    case Kind::kDouble:
      return fmt::format("{}", as_double());
    case Kind::kString:
      return json::quote(as_string());
    case Kind::kList: {
      std::string s = "[";
      for (const auto& e : as_list())
        s += (s.size() > 1 ? ", " : "") + e.debug_string();
      return s + "]";
    }
    case Kind::kMap: {
      std::string s = "{";
      for (const auto& [k, e] : as_map().entries)
        s += (s.size() > 1 ? ", " : "") + json::quote(k) + ": " + e.debug_string();
      return s + "}";
    }
    case Kind::kQuantity:
      return "quantity(" + json::quote(as_quantity().to_string()) + ")";
    case Kind::kSemver:
      return "semver(" + json::quote(as_semver().to_string()) + ")";
  }
  return "?";
}

}  // namespace nvdra::cel
