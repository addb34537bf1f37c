#include "sim/conversion.h"

#include <gtest/gtest.h>

namespace nvdra::sim {
namespace {

std::string conv(std::string_view in, std::string_view kind, std::string_view from,
                 std::string_view to) {
  auto d = json::parse(in);
  EXPECT_TRUE(d);
  convert_resource_api(*d, kind, from, to);
  return json::write(*d);
}

TEST(Conversion, RequestsGainAndLoseExactly) {
  const char* beta =
      R"({"apiVersion":"resource.k8s.io/v1beta1","kind":"ResourceClaim","spec":{"devices":{"requests":[{"name":"gpu","deviceClassName":"gpu.nvidia.com","count":2,"allocationMode":"ExactCount"},{"name":"any","firstAvailable":[{"name":"a","deviceClassName":"x"}]}]}}})";
  std::string v1 = conv(beta, "ResourceClaim", "v1beta1", "v1");
  EXPECT_EQ(
      v1,
      R"({"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaim","spec":{"devices":{"requests":[{"name":"gpu","exactly":{"deviceClassName":"gpu.nvidia.com","allocationMode":"ExactCount","count":2}},{"name":"any","firstAvailable":[{"name":"a","deviceClassName":"x"}]}]}}})");
  auto back = json::parse(conv(v1, "ResourceClaim", "v1", "v1beta1"));
  auto orig = json::parse(beta);
  EXPECT_TRUE(*back == *orig);
  std::string tmpl =
      conv(R"({"spec":{"spec":{"devices":{"requests":[{"name":"g","deviceClassName":"c"}]}}}})",
           "ResourceClaimTemplate", "v1beta1", "v1");
  EXPECT_NE(tmpl.find(R"("exactly":{"deviceClassName":"c"})"), std::string::npos);
  // v1beta2 has v1's shape: only apiVersion changes.
  EXPECT_EQ(
      conv(
          R"({"apiVersion":"resource.k8s.io/v1","spec":{"devices":{"requests":[{"name":"g","exactly":{}}]}}})",
          "ResourceClaim", "v1", "v1beta2"),
      R"({"apiVersion":"resource.k8s.io/v1beta2","spec":{"devices":{"requests":[{"name":"g","exactly":{}}]}}})");
}

TEST(Conversion, SliceDevicesWrapInBasic) {
  const char* v1 =
      R"({"apiVersion":"resource.k8s.io/v1","spec":{"devices":[{"name":"gpu-0","attributes":{"type":{"string":"gpu"}},"capacity":{"memory":{"value":"80Gi"}}}]}})";
  std::string beta = conv(v1, "ResourceSlice", "v1", "v1beta1");
  EXPECT_EQ(
      beta,
      R"({"apiVersion":"resource.k8s.io/v1beta1","spec":{"devices":[{"name":"gpu-0","basic":{"attributes":{"type":{"string":"gpu"}},"capacity":{"memory":{"value":"80Gi"}}}}]}})");
  EXPECT_TRUE(*json::parse(conv(beta, "ResourceSlice", "v1beta1", "v1")) == *json::parse(v1));
}

}  // namespace
}  // namespace nvdra::sim
