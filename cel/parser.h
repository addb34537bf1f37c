// CEL text → Node tree: lexer and recursive-descent parser for nvdra's subset. Calls are resolved
// against the function table and identifiers against the declared variables here, so anything
// outside the subset fails at compile time with a message that names it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cel/ast.h"

namespace nvdra::cel {

inline constexpr size_t kMaxExpressionBytes = 10 * 1024;  // the DRA API's selector limit
inline constexpr int kMaxNesting = 64;

Result<std::unique_ptr<Node>> parse(std::string_view source,
                                    const std::vector<std::string>& variables);

}  // namespace nvdra::cel
