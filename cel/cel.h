// nvdra's CEL: compile an expression once, evaluate it many times against variables.
//
// The subset covers what DRA device selectors and CRD validation rules use: field selection,
// indexing, the operators == != < <= > >= in + - * / % ! && || ?:, list literals, has() and the
// all/exists/exists_one/map/filter macros, string functions, conversions, and the Kubernetes
// quantity and semver libraries. Anything else is a compile error that names it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cel/value.h"

namespace nvdra::cel {

struct Node;

using Activation = std::map<std::string, Value, std::less<>>;

// Kubernetes' per-call runtime cost limit for DRA selectors.
inline constexpr uint64_t kDefaultCostLimit = 1'000'000;

class Program {
 public:
  // `variables` are the names the expression may refer to (e.g. {"device"} or {"self", "oldSelf"}).
  static Result<Program> compile(std::string_view source,
                                 const std::vector<std::string>& variables);

  Result<Value> evaluate(const Activation& vars) const { return evaluate(vars, kDefaultCostLimit); }
  Result<Value> evaluate(const Activation& vars, uint64_t cost_limit) const;
  // For selectors and validation rules: a non-bool result is an error.
  Result<bool> evaluate_bool(const Activation& vars) const;

  const std::string& source() const { return source_; }
  // Whether the expression mentions `name` (a transition rule mentions oldSelf).
  bool references(std::string_view name) const;

 private:
  std::string source_;
  std::shared_ptr<const Node> root_;
};

}  // namespace nvdra::cel
