// Percent-encoding (RFC 3986) for URL paths and query values, shared by client and server.
#pragma once

#include <string>
#include <string_view>

namespace nvdra {
// Keeps unreserved characters (A-Z a-z 0-9 - _ . ~), encodes everything else.
std::string url_encode(std::string_view s);
// Decodes %XX sequences and '+' (form encoding of a space); malformed escapes stay as they are.
std::string url_decode(std::string_view s);
}  // namespace nvdra
