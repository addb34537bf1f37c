#include "base/quantity.h"

#include <array>
#include <limits>

namespace nvdra {
namespace {

using i128 = __int128;
constexpr i128 kNano = 1'000'000'000;
// Far above any real quantity (Ei is 2^60) and far below the int128 limit, so that the
// intermediate products of parsing never overflow.
const i128 kMaxNanos = static_cast<i128>(1) << 120;

i128 pow10(int e) {
  i128 r = 1;
  while (e-- > 0)
    r *= 10;
  return r;
}

Unexpected<Error> bad(std::string_view text, std::string_view why) {
  return unexpected(ErrorCode::kInvalidArgument,
                    "quantities must match the regular expression "
                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': \"" +
                        std::string(text) + "\" (" + std::string(why) + ")");
}

std::string int128_to_string(i128 v) {
  if (v == 0) return "0";
  const bool neg = v < 0;
  std::string s;
  while (v != 0) {
    int digit = static_cast<int>(v % 10);
    s.insert(s.begin(), static_cast<char>('0' + (neg ? -digit : digit)));
    v /= 10;
  }
  return neg ? "-" + s : s;
}

}  // namespace

Quantity Quantity::from_int(int64_t v, Format f) {
  Quantity q;
  q.nanos_ = static_cast<i128>(v) * kNano;
  q.format_ = f;
  return q;
}

Result<Quantity> Quantity::parse(std::string_view text) {
  size_t i = 0;
  bool neg = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) neg = text[i++] == '-';
  // Mantissa digits: keep them all (up to a sane count) as an integer plus a decimal exponent.
  i128 mantissa = 0;
  int exp10 = 0;
  int digits = 0;
  bool seen_point = false, any_digit = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '.') {
      if (seen_point) return bad(text, "two decimal points");
      seen_point = true;
      continue;
    }
    if (c < '0' || c > '9') break;
    any_digit = true;
    if (digits == 0 && c == '0') {
      if (seen_point) --exp10;
      continue;
    }
    if (++digits > 36) return bad(text, "too many digits");
    mantissa = mantissa * 10 + (c - '0');
    if (seen_point) --exp10;
  }
  if (!any_digit) return bad(text, "no digits");
  const std::string_view suffix = text.substr(i);
  i128 binary_multiplier = 1;
  Format format = Format::kDecimalSI;
  static constexpr std::array<std::string_view, 6> kBinary = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  static constexpr std::array<std::pair<std::string_view, int>, 10> kDecimal = {{{"n", -9},
                                                                                 {"u", -6},
                                                                                 {"m", -3},
                                                                                 {"", 0},
                                                                                 {"k", 3},
                                                                                 {"M", 6},
                                                                                 {"G", 9},
                                                                                 {"T", 12},
                                                                                 {"P", 15},
                                                                                 {"E", 18}}};
  bool matched = false;
  for (size_t b = 0; b < kBinary.size() && !matched; ++b) {
    if (suffix == kBinary[b]) {
      binary_multiplier = static_cast<i128>(1) << (10 * (b + 1));
      format = Format::kBinarySI;
      matched = true;
    }
  }
  for (const auto& [s, e] : kDecimal) {
    if (!matched && suffix == s) {
      exp10 += e;
      matched = true;
    }
  }
  if (!matched && (suffix.front() == 'e' || suffix.front() == 'E')) {
    std::string_view num = suffix.substr(1);
    bool eneg = false;
    if (!num.empty() && (num.front() == '+' || num.front() == '-')) {
      eneg = num.front() == '-';
      num.remove_prefix(1);
    }
    if (num.empty() || num.size() > 3) return bad(text, "bad exponent");
    int e = 0;
    for (char c : num) {
      if (c < '0' || c > '9') return bad(text, "bad exponent");
      e = e * 10 + (c - '0');
    }
    exp10 += eneg ? -e : e;
    format = Format::kDecimalExponent;
    matched = true;
  }
  if (!matched) return bad(text, "unknown suffix");

  // nanos = mantissa * 10^(exp10 + 9) * binary_multiplier, rounded up away from zero below 1n.
  Quantity q;
  q.format_ = format;
  i128 value = mantissa;
  int scale = exp10 + 9;
  if (value != 0) {
    if (__builtin_mul_overflow(value, binary_multiplier, &value) || value > kMaxNanos)
      return bad(text, "out of range");
    for (; scale > 0; --scale) {
      if (__builtin_mul_overflow(value, static_cast<i128>(10), &value) || value > kMaxNanos)
        return bad(text, "out of range");
    }
    if (scale < 0) {
      const i128 div = scale < -38 ? 0 : pow10(-scale);
      value = div == 0 ? 1 : (value + div - 1) / div;
    }
  }
  q.nanos_ = neg ? -value : value;
  return q;
}

int64_t Quantity::value() const {
  i128 whole = nanos_ / kNano;
  if (nanos_ % kNano > 0) ++whole;
  if (whole > std::numeric_limits<int64_t>::max()) return std::numeric_limits<int64_t>::max();
  if (whole < std::numeric_limits<int64_t>::min()) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(whole);
}

double Quantity::approximate() const {
  return static_cast<double>(nanos_) / 1e9;
}

std::string Quantity::to_string() const {
  if (nanos_ == 0) return "0";
  if (format_ == Format::kBinarySI && nanos_ % kNano == 0) {
    i128 whole = nanos_ / kNano;
    static constexpr std::array<std::string_view, 7> kSuffix = {"",   "Ki", "Mi", "Gi",
                                                                "Ti", "Pi", "Ei"};
    size_t s = 0;
    while (s + 1 < kSuffix.size() && whole % 1024 == 0) {
      whole /= 1024;
      ++s;
    }
    return int128_to_string(whole) + std::string(kSuffix[s]);
  }
  // Decimal: the largest power-of-1000 suffix that keeps the number whole.
  static constexpr std::array<std::string_view, 10> kSuffix = {"n", "u", "m", "",  "k",
                                                               "M", "G", "T", "P", "E"};
  i128 v = nanos_;
  size_t s = 0;
  while (s + 1 < kSuffix.size() && v % 1000 == 0) {
    v /= 1000;
    ++s;
  }
  if (format_ == Format::kDecimalExponent && s > 3) {
    return int128_to_string(v) + "e" + std::to_string(3 * (static_cast<int>(s) - 3));
  }
  return int128_to_string(v) + std::string(kSuffix[s]);
}

}  // namespace nvdra
