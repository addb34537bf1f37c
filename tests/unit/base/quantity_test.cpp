#include "base/quantity.h"

#include <gtest/gtest.h>

namespace nvdra {
namespace {

Quantity q(std::string_view s) {
  auto r = Quantity::parse(s);
  EXPECT_TRUE(r.has_value()) << s << ": " << (r ? "" : r.error().message);
  return r ? *r : Quantity();
}

TEST(Quantity, ParsesEverySuffixFamily) {
  EXPECT_EQ(q("80Gi").value(), 80LL << 30);
  EXPECT_EQ(q("1Ki").value(), 1024);
  EXPECT_EQ(q("1Ei").value(), 1LL << 60);
  EXPECT_EQ(q("5k").value(), 5000);
  EXPECT_EQ(q("2M").value(), 2'000'000);
  EXPECT_EQ(q("1.5e3").value(), 1500);
  EXPECT_EQ(q("2E").value(), 2'000'000'000'000'000'000LL);
  EXPECT_EQ(q("-3").value(), -3);
  EXPECT_EQ(q("+7").value(), 7);
  EXPECT_EQ(q(".5").value(), 1);  // rounded up to whole units
  EXPECT_DOUBLE_EQ(q("500m").approximate(), 0.5);
  EXPECT_DOUBLE_EQ(q("250u").approximate(), 0.00025);
}

TEST(Quantity, ComparesExactlyAcrossFormats) {
  EXPECT_EQ(q("1Gi").compare(q("1073741824")), 0);
  EXPECT_LT(q("40Gi").compare(q("80Gi")), 0);
  EXPECT_GT(q("1G").compare(q("953Mi")), 0);
  EXPECT_LT(q("1G").compare(q("954Mi")), 0);
  EXPECT_EQ(q("0.1").compare(q("100m")), 0);
  EXPECT_LT(q("1n").compare(q("2n")), 0);
  EXPECT_EQ(q("0.1n").compare(q("1n")), 0);  // below a nano rounds up
}

TEST(Quantity, CanonicalText) {
  EXPECT_EQ(q("1024Mi").to_string(), "1Gi");
  EXPECT_EQ(q("1.5Gi").to_string(), "1536Mi");
  EXPECT_EQ(q("1000Mi").to_string(), "1000Mi");
  EXPECT_EQ(q("0.5").to_string(), "500m");
  EXPECT_EQ(q("1000").to_string(), "1k");
  EXPECT_EQ(q("1e3").to_string(), "1e3");
  EXPECT_EQ(q("0").to_string(), "0");
  EXPECT_EQ(q("-2Ki").to_string(), "-2Ki");
  EXPECT_EQ(Quantity::from_int(80LL << 30, Quantity::Format::kBinarySI).to_string(), "80Gi");
}

TEST(Quantity, RejectsGarbage) {
  for (const char* bad : {"", "Gi", "1.2.3", "1Gb", "1 Gi", "1e", "1e1000", "--1", "1ki", ".",
                          "99999999999999999999999999999999999999999Ei"}) {
    auto r = Quantity::parse(bad);
    EXPECT_FALSE(r.has_value()) << bad;
    if (!r) {
      EXPECT_NE(r.error().message.find("quantities must match"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace nvdra
