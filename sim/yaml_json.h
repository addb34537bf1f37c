// YAML to JSON for request bodies and manifests (kubectl may send YAML; apply patches are YAML).
#pragma once

#include <string_view>
#include <vector>

#include "base/json.h"
#include "base/result.h"

namespace nvdra::sim {

// Parses one JSON or YAML document. Plain YAML scalars get their YAML 1.2 core-schema type (bool,
// null, int, float, else string); quoted scalars stay strings.
Result<json::Document> parse_json_or_yaml(std::string_view text);

// Every document of a multi-document YAML stream ("---" separated); empty documents are skipped.
Result<std::vector<json::Document>> parse_yaml_documents(std::string_view text);

}  // namespace nvdra::sim
