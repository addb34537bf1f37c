#include "cel/functions.h"

#include <fmt/format.h>
#include <re2/re2.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <mutex>

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

constexpr size_t kMaxPattern = 1024;
constexpr int64_t kMaxRegexMemory = 1 << 20;  // RE2's compiled program and DFA cache, per pattern
constexpr size_t kRegexCacheSize = 256;       // patterns computed at run time, compiled once

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

// Patterns built at run time (a literal one is compiled by the parser): the last
// kRegexCacheSize, so a selector evaluated per device compiles its pattern once.
class RegexCache {
 public:
  Result<std::shared_ptr<const re2::RE2>> get(const std::string& pattern) {
    std::lock_guard lock(mu_);
    if (auto it = compiled_.find(pattern); it != compiled_.end()) return it->second;
    auto re = compile_regex(pattern);
    if (!re) return re;  // invalid patterns are not kept: they fail fast anyway
    if (order_.size() == kRegexCacheSize) {
      compiled_.erase(order_.front());
      order_.pop_front();
    }
    compiled_.emplace(pattern, *re);
    order_.push_back(pattern);
    return re;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const re2::RE2>, std::less<>> compiled_;  // mu_
  std::deque<std::string> order_;  // oldest first; mu_
};

Result<std::shared_ptr<const re2::RE2>> cached_regex(const std::string& pattern) {
  static RegexCache cache;
  return cache.get(pattern);
}

Result<bool> regex_matches(const Node& call, const std::string& subject, const Value& pattern) {
  std::shared_ptr<const re2::RE2> re = call.regex;
  if (!re) {
    auto compiled = cached_regex(pattern.as_string());
    if (!compiled) return unexpected(compiled.error());
    re = std::move(*compiled);
  }
  return re2::RE2::PartialMatch(subject, *re);
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

Result<std::shared_ptr<const re2::RE2>> compile_regex(std::string_view pattern) {
  if (pattern.size() > kMaxPattern)
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("regular expression longer than {} bytes", kMaxPattern));
  re2::RE2::Options options;
  options.set_log_errors(false);  // the error is returned, not printed
  options.set_max_mem(kMaxRegexMemory);
  auto re =
      std::make_shared<const re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok())
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("invalid regular expression '{}': {}", pattern, re->error()));
  return re;
}

Result<bool> regex_search(const std::string& pattern, std::string_view subject) {
  auto re = cached_regex(pattern);
  if (!re) return unexpected(re.error());
  return re2::RE2::PartialMatch(re2::StringPiece(subject.data(), subject.size()), **re);
}

uint64_t matches_cost(size_t subject_bytes, size_t pattern_bytes) {
  const auto subject = static_cast<uint64_t>(std::ceil((1.0 + subject_bytes) * 0.1));
  const auto pattern = static_cast<uint64_t>(std::ceil(pattern_bytes * 0.25));
  return subject * std::max<uint64_t>(pattern, 1);
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
