// Kubernetes resource quantities ("80Gi", "500m", "1.5e3"): parsing, exact comparison and the
// canonical text form the API server writes back. Values are held exactly in nano-units, the
// finest precision Kubernetes keeps; anything finer is rounded up, as resource.Quantity does.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace nvdra {

class Quantity {
 public:
  enum class Format { kBinarySI, kDecimalSI, kDecimalExponent };

  Quantity() = default;
  static Quantity from_int(int64_t v, Format f = Format::kDecimalSI);

  // The grammar of resource.ParseQuantity: sign, digits with an optional fraction, then a binary
  // (Ki…Ei), decimal (n u m "" k M G T P E) or exponent (e3, E-2) suffix.
  static Result<Quantity> parse(std::string_view text);

  // Exact sums and differences (the format of the left side is kept).
  Quantity operator+(const Quantity& o) const {
    Quantity q = *this;
    q.nanos_ += o.nanos_;
    return q;
  }
  Quantity operator-(const Quantity& o) const {
    Quantity q = *this;
    q.nanos_ -= o.nanos_;
    return q;
  }

  int compare(const Quantity& o) const {
    return nanos_ < o.nanos_ ? -1 : nanos_ > o.nanos_ ? 1 : 0;
  }
  bool operator==(const Quantity& o) const { return nanos_ == o.nanos_; }

  // Whole units, rounded up (Quantity.Value()); saturates at the int64 range.
  int64_t value() const;
  double approximate() const;
  Format format() const { return format_; }

  // Canonical form: the largest suffix of the quantity's format that keeps the number whole
  // ("1024Mi" → "1Gi", "1.5Gi" → "1536Mi", "0.5" → "500m").
  std::string to_string() const;

 private:
  __int128 nanos_ = 0;
  Format format_ = Format::kDecimalSI;
};

}  // namespace nvdra
