// Label and field selectors as the API server parses them (apimachinery labels.Parse and
// fields.ParseSelector): used by the simulated API server to filter and by clients that filter
// their caches.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "k8sclient/object.h"

namespace nvdra::k8s {

struct LabelRequirement {
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };
  std::string key;
  Op op = Op::kEquals;
  std::vector<std::string> values;
};

class LabelSelector {
 public:
  // "" selects everything. Errors name the offending part ("unable to parse requirement").
  static Result<LabelSelector> parse(std::string_view text);
  bool matches(const Labels& labels) const;
  bool empty() const { return reqs_.empty(); }
  const std::vector<LabelRequirement>& requirements() const { return reqs_; }

 private:
  std::vector<LabelRequirement> reqs_;
};

struct FieldRequirement {
  std::string field;
  bool negate = false;  // !=
  std::string value;
};

class FieldSelector {
 public:
  static Result<FieldSelector> parse(std::string_view text);
  // `get` returns the value of a field for the object (nullopt when the field is not supported).
  bool matches(const std::function<std::optional<std::string>(const std::string&)>& get) const;
  const std::vector<FieldRequirement>& requirements() const { return reqs_; }

 private:
  std::vector<FieldRequirement> reqs_;
};

}  // namespace nvdra::k8s
