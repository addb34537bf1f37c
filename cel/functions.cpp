#include "cel/functions.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace nvdra::cel {
namespace {

using K = Value::Kind;

struct FnInfo {
  std::string_view name;
  bool member;
  size_t argc;  // arguments besides the receiver
  Fn id;
};

constexpr FnInfo kFunctions[] = {
    {"size", false, 1, Fn::kSize},
    {"size", true, 0, Fn::kSize},
    {"quantity", false, 1, Fn::kQuantity},
    {"isQuantity", false, 1, Fn::kIsQuantity},
    {"semver", false, 1, Fn::kSemver},
    {"isSemver", false, 1, Fn::kIsSemver},
    {"int", false, 1, Fn::kInt},
    {"uint", false, 1, Fn::kUint},
    {"double", false, 1, Fn::kDouble},
    {"string", false, 1, Fn::kString},
    {"matches", false, 2, Fn::kMatches},
    {"matches", true, 1, Fn::kMatches},
    {"startsWith", true, 1, Fn::kStartsWith},
    {"endsWith", true, 1, Fn::kEndsWith},
    {"contains", true, 1, Fn::kContains},
    {"lowerAscii", true, 0, Fn::kLowerAscii},
    {"upperAscii", true, 0, Fn::kUpperAscii},
    {"compareTo", true, 1, Fn::kCompareTo},
    {"isGreaterThan", true, 1, Fn::kIsGreaterThan},
    {"isLessThan", true, 1, Fn::kIsLessThan},
    {"asInteger", true, 0, Fn::kAsInteger},
    {"asApproximateFloat", true, 0, Fn::kAsApproximateFloat},
    {"isInteger", true, 0, Fn::kIsInteger},
    {"sign", true, 0, Fn::kSign},
    {"major", true, 0, Fn::kMajor},
    {"minor", true, 0, Fn::kMinor},
    {"patch", true, 0, Fn::kPatch},
};

// libstdc++'s regex matcher recurses per input character; longer subjects are refused instead of
// risking the stack.
constexpr size_t kMaxMatchSubject = 16 * 1024;
constexpr size_t kMaxPattern = 1024;
constexpr uint64_t kMaxRepeat = 1000;  // RE2's bound on counted repetition, nested ones multiplied

Unexpected<Error> eval_error(std::string msg) {
  return unexpected(ErrorCode::kInvalidArgument, std::move(msg));
}

Unexpected<Error> no_overload(const Node& call, const Value* target, std::span<const Value> args) {
  std::string types;
  if (target) types = target->kind_name();
  for (const auto& a : args)
    types += (types.empty() ? "" : ", ") + std::string(a.kind_name());
  return eval_error(fmt::format("no matching overload for '{}' applied to ({})", call.name, types));
}

// The largest product of nested {n,m} bounds in a pattern; 0 when it exceeds kMaxRepeat.
uint64_t max_repeat(std::string_view p) {
  std::vector<uint64_t> groups{1};  // the largest product inside each open group
  uint64_t prev = 1;  // weight of the atom before the cursor (a closed group's product)
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\') {
      ++i;
      prev = 1;
    } else if (c == '[') {
      while (i < p.size() && p[i] != ']')
        i += p[i] == '\\' ? 2 : 1;
      prev = 1;
    } else if (c == '(') {
      groups.push_back(1);
      prev = 1;
    } else if (c == ')') {
      prev = groups.back();
      if (groups.size() > 1) groups.pop_back();
      groups.back() = std::max(groups.back(), prev);
    } else if (c == '{') {
      uint64_t first = 0, bound = 0;
      bool comma = false;
      size_t j = i + 1;
      for (; j < p.size() && (std::isdigit(static_cast<unsigned char>(p[j])) || p[j] == ','); ++j) {
        if (p[j] == ',') {
          comma = true;
          continue;
        }
        uint64_t& n = comma ? bound : first;
        n = n * 10 + static_cast<uint64_t>(p[j] - '0');
        if (n > kMaxRepeat) return 0;
      }
      if (j < p.size() && p[j] == '}') {
        const uint64_t total = std::max(first, bound) * prev;
        if (total > kMaxRepeat) return 0;
        groups.back() = std::max(groups.back(), total);
        i = j;
      }
      prev = 1;
    } else {
      prev = 1;
    }
  }
  return *std::max_element(groups.begin(), groups.end());
}

Result<bool> regex_matches(const Node& call, const std::string& subject, const Value& pattern) {
  if (subject.size() > kMaxMatchSubject)
    return eval_error(
        fmt::format("matches(): the string is longer than {} bytes", kMaxMatchSubject));
  std::shared_ptr<const std::regex> re = call.regex;
  if (!re) {
    if (!pattern.is(K::kString)) return eval_error("matches(): the pattern must be a string");
    auto compiled = compile_regex(pattern.as_string());
    if (!compiled) return unexpected(compiled.error());
    re = std::move(*compiled);
  }
  return std::regex_search(subject, *re);
}

Result<Value> to_int(const Value& v) {
  switch (v.kind()) {
    case K::kInt:
      return v;
    case K::kUint:
      if (v.as_uint() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return eval_error("int(): value out of range");
      return Value(static_cast<int64_t>(v.as_uint()));
    case K::kDouble: {
      const double d = v.as_double();
      if (!(d > -9.223372036854775808e18 && d < 9.223372036854775807e18))
        return eval_error("int(): value out of range");
      return Value(static_cast<int64_t>(d));
    }
    case K::kString: {
      const std::string& s = v.as_string();
      char* end = nullptr;
      errno = 0;
      const long long x = std::strtoll(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0' || errno == ERANGE ||
          std::isspace(static_cast<unsigned char>(s[0])))
        return eval_error(fmt::format("int(): cannot convert {}", json::quote(s)));
      return Value(static_cast<int64_t>(x));
    }
    default:
      return eval_error(fmt::format("int(): cannot convert {}", v.kind_name()));
  }
}

Result<Value> to_uint(const Value& v) {
  if (v.is(K::kUint)) return v;
  if (v.is(K::kString)) {
    const std::string& s = v.as_string();
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE ||
        !std::isdigit(static_cast<unsigned char>(s[0])))
      return eval_error(fmt::format("uint(): cannot convert {}", json::quote(s)));
    return Value(static_cast<uint64_t>(x));
  }
  auto i = to_int(v);
  if (!i) return i;
  if (i->as_int() < 0) return eval_error("uint(): value out of range");
  return Value(static_cast<uint64_t>(i->as_int()));
}

Result<Value> to_double(const Value& v) {
  switch (v.kind()) {
    case K::kDouble:
      return v;
    case K::kInt:
      return Value(static_cast<double>(v.as_int()));
    case K::kUint:
      return Value(static_cast<double>(v.as_uint()));
    case K::kString: {
      const std::string& s = v.as_string();
      char* end = nullptr;
      const double d = std::strtod(s.c_str(), &end);
      if (s.empty() || *end != '\0')
        return eval_error(fmt::format("double(): cannot convert {}", json::quote(s)));
      return Value(d);
    }
    default:
      return eval_error(fmt::format("double(): cannot convert {}", v.kind_name()));
  }
}

Result<Value> to_string_value(const Value& v) {
  switch (v.kind()) {
    case K::kString:
      return v;
    case K::kBool:
    case K::kInt:
    case K::kDouble:
      return Value(v.debug_string());
    case K::kUint:
      return Value(std::to_string(v.as_uint()));
    default:
      return eval_error(fmt::format("string(): cannot convert {}", v.kind_name()));
  }
}

int64_t utf8_length(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s)
    n += (c & 0xC0) != 0x80;
  return n;
}

// compareTo / isGreaterThan / isLessThan: quantity with quantity, semver with semver.
Result<int> compare_ordered(const Node& call, const Value& a, const Value& b) {
  if (a.is(K::kQuantity) && b.is(K::kQuantity)) return a.as_quantity().compare(b.as_quantity());
  if (a.is(K::kSemver) && b.is(K::kSemver)) return a.as_semver().compare(b.as_semver());
  const Value args[] = {b};
  return no_overload(call, &a, args);
}

}  // namespace

Result<Fn> resolve_function(std::string_view name, bool member, size_t argc) {
  bool known = false;
  for (const auto& f : kFunctions) {
    if (f.name != name) continue;
    known = true;
    if (f.member == member && f.argc == argc) return f.id;
  }
  if (!known)
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("function '{}' is not supported by nvdra's CEL subset", name));
  return unexpected(ErrorCode::kInvalidArgument,
                    fmt::format("no overload of '{}' takes {} {} argument{}", name,
                                member ? "a receiver and" : "", argc, argc == 1 ? "" : "s"));
}

Result<std::shared_ptr<const std::regex>> compile_regex(std::string_view pattern) {
  if (pattern.size() > kMaxPattern)
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("regular expression longer than {} bytes", kMaxPattern));
  auto flags = std::regex::ECMAScript;
  if (pattern.starts_with("(?i)")) {  // RE2's case-insensitive flag, common in selectors
    pattern.remove_prefix(4);
    flags |= std::regex::icase;
  }
  if (max_repeat(pattern) == 0)
    return unexpected(
        ErrorCode::kInvalidArgument,
        fmt::format("regular expression '{}': repetition count above {}", pattern, kMaxRepeat));
  try {
    return std::make_shared<const std::regex>(std::string(pattern), flags);
  } catch (const std::regex_error& e) {
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("invalid regular expression '{}': {}", pattern, e.what()));
  }
}

Result<Value> call_function(const Node& call, const Value* target, std::span<const Value> args) {
  const Value& self = target ? *target : args[0];  // the value the function is about
  switch (call.fn) {
    case Fn::kSize:
      if (self.is(K::kString)) return Value(utf8_length(self.as_string()));
      if (self.is(K::kList)) return Value(static_cast<int64_t>(self.as_list().size()));
      if (self.is(K::kMap)) return Value(static_cast<int64_t>(self.as_map().entries.size()));
      break;
    case Fn::kQuantity:
    case Fn::kIsQuantity:
      if (self.is(K::kString)) {
        auto q = Quantity::parse(self.as_string());
        if (call.fn == Fn::kIsQuantity) return Value(q.has_value());
        if (!q) return eval_error("quantity(): " + q.error().message);
        return Value(*q);
      }
      break;
    case Fn::kSemver:
    case Fn::kIsSemver:
      if (self.is(K::kString)) {
        auto v = Semver::parse(self.as_string());
        if (call.fn == Fn::kIsSemver) return Value(v.has_value());
        if (!v) return eval_error("semver(): " + v.error().message);
        return Value(std::move(*v));
      }
      break;
    case Fn::kInt:
      return to_int(self);
    case Fn::kUint:
      return to_uint(self);
    case Fn::kDouble:
      return to_double(self);
    case Fn::kString:
      return to_string_value(self);
    case Fn::kMatches:
      if (self.is(K::kString) && args.back().is(K::kString)) {
        auto m = regex_matches(call, self.as_string(), args.back());
        if (!m) return unexpected(m.error());
        return Value(*m);
      }
      break;
    case Fn::kStartsWith:
    case Fn::kEndsWith:
    case Fn::kContains:
      if (self.is(K::kString) && args[0].is(K::kString)) {
        const std::string& s = self.as_string();
        const std::string& x = args[0].as_string();
        if (call.fn == Fn::kStartsWith) return Value(s.starts_with(x));
        if (call.fn == Fn::kEndsWith) return Value(s.ends_with(x));
        return Value(s.find(x) != std::string::npos);
      }
      break;
    case Fn::kLowerAscii:
    case Fn::kUpperAscii:
      if (self.is(K::kString)) {
        std::string s = self.as_string();
        for (char& c : s) {
          if (call.fn == Fn::kLowerAscii && c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
          if (call.fn == Fn::kUpperAscii && c >= 'a' && c <= 'z')
            c = static_cast<char>(c - 'a' + 'A');
        }
        return Value(std::move(s));
      }
      break;
    case Fn::kCompareTo:
    case Fn::kIsGreaterThan:
    case Fn::kIsLessThan: {
      auto c = compare_ordered(call, self, args[0]);
      if (!c) return unexpected(c.error());
      if (call.fn == Fn::kCompareTo) return Value(static_cast<int64_t>(*c));
      return Value(call.fn == Fn::kIsGreaterThan ? *c > 0 : *c < 0);
    }
    case Fn::kAsInteger:
    case Fn::kAsApproximateFloat:
    case Fn::kIsInteger:
    case Fn::kSign:
      if (self.is(K::kQuantity)) {
        const Quantity& q = self.as_quantity();
        const bool whole = Quantity::from_int(q.value()) == q;
        if (call.fn == Fn::kIsInteger) return Value(whole);
        if (call.fn == Fn::kAsApproximateFloat) return Value(q.approximate());
        if (call.fn == Fn::kSign) return Value(static_cast<int64_t>(q.compare(Quantity())));
        if (!whole)
          return eval_error("asInteger(): the quantity is not a whole number or out of range");
        return Value(q.value());
      }
      break;
    case Fn::kMajor:
    case Fn::kMinor:
    case Fn::kPatch:
      if (self.is(K::kSemver)) {
        const Semver& v = self.as_semver();
        const uint64_t part = call.fn == Fn::kMajor   ? v.major
                              : call.fn == Fn::kMinor ? v.minor
                                                      : v.patch;
        return Value(
            static_cast<int64_t>(std::min<uint64_t>(part, std::numeric_limits<int64_t>::max())));
      }
      break;
  }
  return no_overload(call, target, args);
}

}  // namespace nvdra::cel
