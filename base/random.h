// Random strings: names (generateName suffixes, uids) and secrets (tokens, signing keys).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace nvdra {

// Fast, not for secrets: a seeded per-thread generator.
std::string random_string(size_t n, std::string_view alphabet);
// A random (version 4) UUID in its 8-4-4-4-12 form, as Kubernetes uids are; not for secrets.
std::string random_uuid();
// For credentials: every character from std::random_device (the kernel's CSPRNG on Linux).
std::string random_secret(size_t n = 40);

}  // namespace nvdra
