#include "agent/config/opaque_config.h"

#include <gtest/gtest.h>

namespace nvdra::agent {
namespace {

std::string error_of(std::string_view json, bool strict = true, FeatureGates gates = {}) {
  auto c = decode_opaque_config(json, strict);
  if (!c) return c.error().message;
  normalize(*c, gates);
  auto s = validate(*c, gates);
  return s ? std::string() : s.error().message;
}

constexpr std::string_view kHead = R"("apiVersion":"resource.nvidia.com/v1beta1",)";

std::string gpu(std::string_view sharing) {
  return "{" + std::string(kHead) + R"("kind":"GpuConfig","sharing":)" + std::string(sharing) + "}";
}

TEST(OpaqueConfig, AcceptsNvidiaDemoConfigs) {
  EXPECT_EQ(error_of(gpu(R"({"strategy":"TimeSlicing","timeSlicingConfig":{"interval":"Long"}})")),
            "");
  EXPECT_EQ(
      error_of(gpu(
          R"({"strategy":"MPS","mpsConfig":{"defaultActiveThreadPercentage":50,"defaultPinnedDeviceMemoryLimit":"10Gi"}})")),
      "");
  EXPECT_EQ(
      error_of("{" + std::string(kHead) +
               R"("kind":"ComputeDomainChannelConfig","domainID":"u1","allocationMode":"All"})"),
      "");
  EXPECT_EQ(error_of("{" + std::string(kHead) + R"("kind":"MigDeviceConfig"})"), "");
}

// NVIDIA's texts, prefixed with the field they are about.
TEST(OpaqueConfig, ValidationMessagesMatchNvidia) {
  EXPECT_EQ(error_of(gpu(R"({"strategy":"MPS","mpsConfig":{"defaultActiveThreadPercentage":-1}})")),
            "sharing.mpsConfig.defaultActiveThreadPercentage: active thread percentage must not be "
            "negative");
  EXPECT_EQ(
      error_of(gpu(R"({"strategy":"MPS","mpsConfig":{"defaultActiveThreadPercentage":101}})")),
      "sharing.mpsConfig.defaultActiveThreadPercentage: active thread percentage must not be "
      "greater than 100");
  EXPECT_EQ(
      error_of(
          gpu(R"({"strategy":"TimeSlicing","timeSlicingConfig":{"interval":"Invalid Interval"}})")),
      "sharing.timeSlicingConfig.interval: unknown time-slice interval: Invalid Interval, "
      "supported time-slice intervals: Default, Short, Medium, Long");
  EXPECT_EQ(
      error_of(gpu(R"({"strategy":"Spatial"})")),
      "sharing.strategy: unknown GPU sharing strategy: Spatial, supported GPU sharing strategies: "
      "TimeSlicing, MPS");
  EXPECT_EQ(error_of(gpu(R"({"strategy":"TimeSlicing","mpsConfig":{}})")),
            "cannot use MpsConfig with the 'TimeSlicing' strategy");
  EXPECT_EQ(error_of(gpu(R"({"strategy":"MPS","timeSlicingConfig":{"interval":"Short"}})")),
            "cannot use TimeSlicingConfig with the 'MPS' strategy");
  EXPECT_EQ(
      error_of("{" + std::string(kHead) + R"("kind":"ComputeDomainDaemonConfig","domainID":""})"),
      "domainID cannot be empty");
  FeatureGates off;
  off.mps_support = false;
  EXPECT_EQ(
      error_of(gpu(R"({"strategy":"MPS"})"), true, off),
      "\"MPS\" is selected as the GPU sharing strategy, but the \"MPSSupport\" feature gate is "
      "not enabled");
}

TEST(OpaqueConfig, EmptyTimeSlicingConfigIsAnErrorNotACrash) {
  EXPECT_EQ(error_of(gpu(R"({"strategy":"TimeSlicing","timeSlicingConfig":{}})")),
            "sharing.timeSlicingConfig.interval: required value");
}

TEST(OpaqueConfig, StrictDecodingNamesTheUnknownField) {
  EXPECT_EQ(error_of(gpu(R"({"strategy":"MPS","unexpectedField":1})")),
            "strict decoding error: unknown field \"sharing.unexpectedField\"");
  EXPECT_EQ(error_of("{" + std::string(kHead) + R"("kind":"GpuConfig","unexpectedField":true})"),
            "strict decoding error: unknown field \"unexpectedField\"");
  // MigDeviceConfig has no timeSlicingConfig.
  EXPECT_EQ(
      error_of(
          "{" + std::string(kHead) +
          R"("kind":"MigDeviceConfig","sharing":{"strategy":"TimeSlicing","timeSlicingConfig":{}}})"),
      "strict decoding error: unknown field \"sharing.timeSlicingConfig\"");
  // Non-strict (unprepare) drops unknown fields.
  EXPECT_EQ(
      error_of("{" + std::string(kHead) + R"("kind":"GpuConfig","unexpectedField":true})", false),
      "");
}

TEST(OpaqueConfig, WrongKindsAndVersionsAreErrors) {
  EXPECT_NE(error_of(R"({"apiVersion":"resource.nvidia.com/v1","kind":"GpuConfig"})")
                .find("expected apiVersion"),
            std::string::npos);
  EXPECT_NE(
      error_of("{" + std::string(kHead) + R"("kind":"TpuConfig"})").find("no kind \"TpuConfig\""),
      std::string::npos);
  EXPECT_EQ(error_of(gpu(R"("MPS")")), "sharing: expected an object");
  EXPECT_EQ(
      error_of(gpu(R"({"strategy":"MPS","mpsConfig":{"defaultActiveThreadPercentage":"half"}})")),
      "sharing.mpsConfig.defaultActiveThreadPercentage: expected an integer");
  EXPECT_NE(error_of("[1,2]"), "");
  EXPECT_NE(error_of("{not json"), "");
}

TEST(OpaqueConfig, DefaultsFollowTheGates) {
  OpaqueConfig c = GpuConfig{};
  normalize(c, FeatureGates{});
  const auto& g = std::get<GpuConfig>(c);
  ASSERT_TRUE(g.sharing);
  EXPECT_EQ(g.sharing->strategy, "TimeSlicing");
  EXPECT_EQ(g.sharing->time_slicing->interval, "Default");
  FeatureGates off;
  off.time_slicing_settings = false;
  OpaqueConfig plain = GpuConfig{};
  normalize(plain, off);
  EXPECT_FALSE(std::get<GpuConfig>(plain).sharing);
}

TEST(OpaqueConfig, PinnedMemoryLimitsAsNvidiaFormatsThem) {
  auto limit = [](std::string_view q) {
    MpsConfig m;
    m.default_pinned_device_memory_limit = *Quantity::parse(q);
    auto r = mps_pinned_limits(m, {"GPU-a"});
    return r ? r->at("GPU-a") : "error: " + r.error().message;
  };
  EXPECT_EQ(limit("2Gi"), "2048M");
  EXPECT_EQ(limit("10Mi"), "10M");
  EXPECT_EQ(limit("10M"), "9M");
  EXPECT_EQ(limit("1G"), "953M");
  EXPECT_EQ(limit("1M"), "error: invalid limit: default value set too low: 1M");
  MpsConfig m;
  m.default_pinned_device_memory_limit = *Quantity::parse("1Gi");
  m.default_per_device_pinned_memory_limit.emplace("1", *Quantity::parse("2Gi"));
  auto r = mps_pinned_limits(m, {"GPU-b", "GPU-a"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->at("GPU-a"), "1024M");
  EXPECT_EQ(r->at("GPU-b"), "2048M");  // index 1 of the sorted UUIDs
  m.default_per_device_pinned_memory_limit.clear();
  m.default_per_device_pinned_memory_limit.emplace("x", *Quantity::parse("2Gi"));
  EXPECT_EQ(mps_pinned_limits(m, {"GPU-a"}).error().message,
            "invalid device: unable to parse key as an integer: x");
  m.default_per_device_pinned_memory_limit.clear();
  m.default_per_device_pinned_memory_limit.emplace("3", *Quantity::parse("2Gi"));
  EXPECT_EQ(mps_pinned_limits(m, {"GPU-a"}).error().message,
            "invalid device: invalid device index: 3");
}

TEST(FeatureGates, ParsesNvidiaSyntaxAndRefusesBadCombinations) {
  auto g = FeatureGates::parse("DynamicMIG=true,MPSSupport=false,");
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_TRUE(g->dynamic_mig);
  EXPECT_FALSE(g->mps_support);
  EXPECT_EQ(
      FeatureGates::parse("ComputeDomainCliques=true,IMEXDaemonsWithDNSNames=false")
          .error()
          .message,
      "feature gate ComputeDomainCliques requires IMEXDaemonsWithDNSNames to also be enabled");
  EXPECT_EQ(FeatureGates::parse("Warp=true").error().message, "unrecognized feature gate: Warp");
  EXPECT_FALSE(FeatureGates::parse("MPSSupport=yes"));
  EXPECT_FALSE(FeatureGates::parse("MPSSupport"));
  EXPECT_TRUE(FeatureGates::parse("ContextualLogging=true"));
}

}  // namespace
}  // namespace nvdra::agent
