#include "base/random.h"

#include <random>

namespace nvdra {

std::string random_string(size_t n, std::string_view alphabet) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> d(0, alphabet.size() - 1);
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(alphabet[d(rng)]);
  return s;
}

std::string random_secret(size_t n) {
  static constexpr std::string_view kChars = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::uniform_int_distribution<size_t> d(0, kChars.size() - 1);
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(kChars[d(rd)]);
  return s;
}

}  // namespace nvdra
