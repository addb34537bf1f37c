// core/v1 NodeSelector matching: terms are ORed, the requirements inside a term ANDed, as for
// ResourceSlice node selectors, allocation node selectors and required pod node affinity.
#pragma once

#include <map>
#include <string>

#include "base/json.h"

namespace nvdra::sim::dra {

struct NodeInfo {
  std::string name;
  std::map<std::string, std::string, std::less<>> labels;
};

// `selector` is a NodeSelector ({nodeSelectorTerms: [...]}). An empty term list matches nothing,
// as in Kubernetes; unknown operators never match.
bool node_selector_matches(const json::Value& selector, const NodeInfo& node);

}  // namespace nvdra::sim::dra
