#include "sim/dra/node_selector.h"

#include <cstdlib>

namespace nvdra::sim::dra {
namespace {

using json::Value;

bool value_in(const Value* values, std::string_view v) {
  if (!values || !values->IsArray()) return false;
  for (const auto& x : values->GetArray()) {
    if (x.IsString() && v == std::string_view(x.GetString(), x.GetStringLength())) return true;
  }
  return false;
}

// Gt/Lt compare integers; a non-integer on either side does not match.
bool compare_int(std::string_view have, const Value* values, bool greater) {
  if (!values || !values->IsArray() || values->Size() != 1 || !(*values)[0].IsString())
    return false;
  char* end = nullptr;
  const std::string h(have), w((*values)[0].GetString());
  const long long a = std::strtoll(h.c_str(), &end, 10);
  if (h.empty() || *end) return false;
  const long long b = std::strtoll(w.c_str(), &end, 10);
  if (w.empty() || *end) return false;
  return greater ? a > b : a < b;
}

bool requirement_matches(const Value& r, const std::optional<std::string_view>& have) {
  const std::string_view op = json::string_or(r, "operator");
  const Value* values = json::find(r, "values");
  if (op == "In") return have && value_in(values, *have);
  if (op == "NotIn") return !have || !value_in(values, *have);
  if (op == "Exists") return have.has_value();
  if (op == "DoesNotExist") return !have.has_value();
  if (op == "Gt" || op == "Lt") return have && compare_int(*have, values, op == "Gt");
  return false;
}

bool term_matches(const Value& term, const NodeInfo& node) {
  bool any = false;
  if (const Value* exprs = json::find(term, "matchExpressions"); exprs && exprs->IsArray()) {
    for (const auto& r : exprs->GetArray()) {
      any = true;
      const std::string_view key = json::string_or(r, "key");
      auto it = node.labels.find(key);
      std::optional<std::string_view> have;
      if (it != node.labels.end()) have = it->second;
      if (!requirement_matches(r, have)) return false;
    }
  }
  if (const Value* fields = json::find(term, "matchFields"); fields && fields->IsArray()) {
    for (const auto& r : fields->GetArray()) {
      any = true;
      std::optional<std::string_view> have;
      if (json::string_or(r, "key") == "metadata.name") have = node.name;
      if (!requirement_matches(r, have)) return false;
    }
  }
  return any;  // an empty term matches nothing
}

}  // namespace

bool node_selector_matches(const json::Value& selector, const NodeInfo& node) {
  const Value* terms = json::find(selector, "nodeSelectorTerms");
  if (!terms || !terms->IsArray()) return false;
  for (const auto& t : terms->GetArray()) {
    if (term_matches(t, node)) return true;
  }
  return false;
}

}  // namespace nvdra::sim::dra
