// Values of nvdra's CEL subset: null, bool, int, uint, double, string, list, map (string keys),
// and the Kubernetes extension types quantity and semver. Lists and maps are shared immutable
// trees, so binding a device or a custom resource once and evaluating many rules is cheap.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/json.h"
#include "base/quantity.h"
#include "base/result.h"

namespace nvdra::cel {

// Semantic Versioning 2.0.0, as the Kubernetes CEL semver library reads it.
struct Semver {
  uint64_t major = 0, minor = 0, patch = 0;
  std::vector<std::string> prerelease;
  std::string build;
  static Result<Semver> parse(std::string_view text);
  int compare(const Semver& o) const;  // build metadata is ignored, as the spec says
  std::string to_string() const;
};

class Value;
using List = std::vector<Value>;
struct Map {
  std::map<std::string, Value, std::less<>> entries;
  // device.attributes / device.capacity: an unknown domain reads as an empty map, not an error.
  bool missing_key_is_empty_map = false;
};

class Value {
 public:
  enum class Kind { kNull, kBool, kInt, kUint, kDouble, kString, kList, kMap, kQuantity, kSemver };

  Value() = default;
  Value(bool b) : v_(b) {}                                               // NOLINT
  Value(int64_t i) : v_(i) {}                                            // NOLINT
  Value(int i) : v_(static_cast<int64_t>(i)) {}                          // NOLINT
  Value(uint64_t u) : v_(u) {}                                           // NOLINT
  Value(double d) : v_(d) {}                                             // NOLINT
  Value(std::string s) : v_(std::move(s)) {}                             // NOLINT
  Value(const char* s) : v_(std::string(s)) {}                           // NOLINT
  Value(List l) : v_(std::make_shared<const List>(std::move(l))) {}      // NOLINT
  Value(Map m) : v_(std::make_shared<const Map>(std::move(m))) {}        // NOLINT
  Value(Quantity q) : v_(q) {}                                           // NOLINT
  Value(Semver s) : v_(std::make_shared<const Semver>(std::move(s))) {}  // NOLINT

  // A JSON tree as CEL sees a custom resource: objects become maps, integers int, other numbers
  // double.
  static Value from_json(const json::Value& v);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is(Kind k) const { return kind() == k; }
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  uint64_t as_uint() const { return std::get<uint64_t>(v_); }
  double as_double() const { return std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const List& as_list() const { return *std::get<std::shared_ptr<const List>>(v_); }
  const Map& as_map() const { return *std::get<std::shared_ptr<const Map>>(v_); }
  const Quantity& as_quantity() const { return std::get<Quantity>(v_); }
  const Semver& as_semver() const { return *std::get<std::shared_ptr<const Semver>>(v_); }

  bool is_number() const { return is(Kind::kInt) || is(Kind::kUint) || is(Kind::kDouble); }

  // CEL's heterogeneous equality: numbers compare by value across int/uint/double, other kinds
  // are unequal to each other, lists and maps compare element-wise.
  bool operator==(const Value& o) const;

  // For error messages: "int", "string", "map", …
  static const char* kind_name(Kind k);
  const char* kind_name() const { return kind_name(kind()); }
  // CEL literal syntax, for messages and tests.
  std::string debug_string() const;

 private:
  std::variant<std::monostate, bool, int64_t, uint64_t, double, std::string,
               std::shared_ptr<const List>, std::shared_ptr<const Map>, Quantity,
               std::shared_ptr<const Semver>>
      v_;
};

// Orders two numbers of any numeric kind: -1, 0, 1; nullopt when either is NaN.
std::optional<int> compare_numbers(const Value& a, const Value& b);

}  // namespace nvdra::cel
