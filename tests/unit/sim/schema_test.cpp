#include "sim/schema.h"

#include <gtest/gtest.h>

namespace nvdra::sim {
namespace {

// The shape of a ComputeDomain's schema, reduced: required channel, enum, bounds, default,
// an immutable spec, and a preserved opaque subtree.
const char* kSchema = R"({
  "type":"object",
  "properties":{
    "spec":{
      "type":"object",
      "required":["channel"],
      "x-kubernetes-validations":[{"rule":"self == oldSelf","message":"A computeDomain.spec is immutable"}],
      "properties":{
        "numNodes":{"type":"integer","minimum":0,"maximum":1024},
        "mode":{"type":"string","enum":["Single","All"],"default":"Single"},
        "name":{"type":"string","maxLength":8,"pattern":"^[a-z]+$"},
        "channel":{"type":"object","properties":{"resourceClaimTemplate":{"type":"object","required":["name"],"properties":{"name":{"type":"string"}}}}},
        "tags":{"type":"array","maxItems":2,"items":{"type":"string"}},
        "opaque":{"type":"object","x-kubernetes-preserve-unknown-fields":true},
        "size":{"x-kubernetes-int-or-string":true}
      }
    },
    "status":{"type":"object","properties":{"status":{"type":"string"}}}
  }
})";

std::vector<ErrorCause> check(std::string_view obj, const char* old = nullptr,
                              std::string* out = nullptr) {
  auto schema = json::parse(kSchema);
  auto d = json::parse(obj);
  EXPECT_TRUE(schema && d);
  auto o = old ? json::parse(old) : Result<json::Document>(unexpected(ErrorCode::kNotFound, ""));
  auto causes = validate_custom_resource(*d, *schema, o ? &*o : nullptr);
  if (out) *out = json::write(*d);
  return causes;
}

TEST(Schema, ValidObjectGetsDefaultsAndLosesUnknownFields) {
  std::string out;
  auto c = check(
      R"({"apiVersion":"x/v1","kind":"K","metadata":{"name":"a"},"spec":{"numNodes":2,"channel":{"resourceClaimTemplate":{"name":"t"}},"bogus":1,"opaque":{"any":{"thing":1}},"size":"10%"}})",
      nullptr, &out);
  EXPECT_TRUE(c.empty()) << c[0].field << ": " << c[0].message;
  EXPECT_NE(out.find(R"("mode":"Single")"), std::string::npos);
  EXPECT_EQ(out.find("bogus"), std::string::npos);
  EXPECT_NE(out.find(R"("thing":1)"), std::string::npos);
}

TEST(Schema, EveryViolationIsReportedWithItsField) {
  auto c = check(
      R"({"spec":{"numNodes":-1,"mode":"Some","name":"TooLongName","tags":["a","b","c"],"size":true,"channel":{"resourceClaimTemplate":{}}}})");
  std::map<std::string, std::string> by_field;
  for (const auto& x : c)
    by_field[x.field] = x.reason;
  EXPECT_EQ(by_field["spec.numNodes"], "FieldValueInvalid");
  EXPECT_EQ(by_field["spec.mode"], "FieldValueNotSupported");
  EXPECT_EQ(by_field["spec.tags"], "FieldValueTooMany");
  EXPECT_EQ(by_field["spec.size"], "FieldValueTypeInvalid");
  EXPECT_EQ(by_field["spec.channel.resourceClaimTemplate.name"], "FieldValueRequired");
  EXPECT_TRUE(by_field.count("spec.name"));
  auto missing = check(R"({"spec":{}})");
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0].field, "spec.channel");
  auto wrong_type = check(R"({"spec":{"channel":{},"numNodes":"two"}})");
  ASSERT_EQ(wrong_type.size(), 1u);
  EXPECT_EQ(wrong_type[0].reason, "FieldValueTypeInvalid");
}

TEST(Schema, ImmutableSpecOnUpdate) {
  const char* old =
      R"({"spec":{"numNodes":2,"mode":"Single","channel":{}}})";  // as stored, defaulted
  EXPECT_TRUE(
      check(R"({"spec":{"numNodes":2,"channel":{}},"status":{"status":"Ready"}})", old).empty());
  auto c = check(R"({"spec":{"numNodes":3,"channel":{}}})", old);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].field, "spec");
  EXPECT_NE(c[0].message.find("A computeDomain.spec is immutable"), std::string::npos);
}

}  // namespace
}  // namespace nvdra::sim
