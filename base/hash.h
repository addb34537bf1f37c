// FNV-1a (64 bit): a stable, dependency-free hash for identities derived from names (simulated
// UUIDs, daemon IDs) and for checksums against torn or corrupted files. Not for security.
#pragma once

#include <cstdint>
#include <string_view>

namespace nvdra {

constexpr uint64_t fnv1a64(std::string_view data) {
  uint64_t h = 14695981039346656037ull;
  for (char c : data) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace nvdra
