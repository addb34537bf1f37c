// The columns `kubectl get` shows for built-in kinds (as kube-apiserver's table printers do), and
// the cells that need more than a JSONPath: pod READY and STATUS, node STATUS, claim STATE, …
// Such columns name a computed cell with a json_path of the form "@<name>".
#pragma once

#include <string>
#include <vector>

#include "base/json.h"
#include "sim/resource_types.h"

namespace nvdra::sim {

std::vector<PrinterColumn> builtin_columns(const std::string& group, const std::string& resource);

// The text of computed cell `name` ("@pod.ready" → "1/1") for `obj`.
std::string computed_cell(std::string_view name, const json::Value& obj);

}  // namespace nvdra::sim
