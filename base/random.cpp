#include "base/random.h"

#include <random>

namespace nvdra {

std::string random_string(size_t n, std::string_view alphabet) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> d(0, alphabet.size() - 1);
  std::string s;
  for (size_t i = 0; i < n; ++i)
    s.push_back(alphabet[d(rng)]);
  return s;
}

std::string random_uuid() {
  std::string hex = random_string(32, "0123456789abcdef");
  hex[12] = '4';                  // version 4
  hex[16] = "89ab"[hex[16] % 4];  // RFC 4122 variant
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

std::string random_secret(size_t n) {
  static constexpr std::string_view kChars = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::uniform_int_distribution<size_t> d(0, kChars.size() - 1);
  std::string s;
  for (size_t i = 0; i < n; ++i)
    s.push_back(kChars[d(rd)]);
  return s;
}

}  // namespace nvdra
