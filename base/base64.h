#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace nvdra {
// Standard base64 (RFC 4648) with padding; whitespace is ignored on decode.
std::string base64_encode(std::string_view in);
std::optional<std::string> base64_decode(std::string_view in);
}  // namespace nvdra
