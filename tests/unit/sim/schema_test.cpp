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

TEST(Schema, CelRulesWithReasonsFieldPathsAndMessageExpressions) {
  auto schema = json::parse(R"J({"type":"object","properties":{"spec":{"type":"object",
    "x-kubernetes-validations":[
      {"rule":"self.min <= self.max","message":"min must be <= max"},
      {"rule":"!has(self.name) || self.name.startsWith('cd-')","reason":"FieldValueForbidden",
       "fieldPath":".name","messageExpression":"'name ' + self.name + ' lacks the cd- prefix'"},
      {"rule":"self.min >= oldSelf.min","message":"min may only grow"}],
    "properties":{"min":{"type":"integer"},"max":{"type":"integer"},"name":{"type":"string"}}}}})J");
  ASSERT_TRUE(schema);
  auto run = [&](const char* obj, const char* old) {
    auto d = json::parse(obj);
    auto o = old ? json::parse(old) : Result<json::Document>(unexpected(ErrorCode::kNotFound, ""));
    return validate_custom_resource(*d, *schema, o ? &*o : nullptr);
  };
  EXPECT_TRUE(run(R"({"spec":{"min":1,"max":2,"name":"cd-a"}})", nullptr).empty());
  auto c = run(R"({"spec":{"min":3,"max":2,"name":"x"}})", nullptr);  // create: no transition rule
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].field, "spec");
  EXPECT_EQ(c[0].message, "Invalid value: \"object\": min must be <= max");
  EXPECT_EQ(c[1].field, "spec.name");
  EXPECT_EQ(c[1].reason, "FieldValueForbidden");
  EXPECT_EQ(c[1].message, "Invalid value: \"object\": name x lacks the cd- prefix");
  auto shrink = run(R"({"spec":{"min":1,"max":2}})", R"({"spec":{"min":2,"max":2}})");
  ASSERT_EQ(shrink.size(), 1u);
  EXPECT_NE(shrink[0].message.find("min may only grow"), std::string::npos);
  // A rule that errors at runtime (no such key) is reported, never treated as passing.
  auto missing = run(R"({"spec":{"max":2}})", nullptr);
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_NE(missing[0].message.find("rule evaluation failed"), std::string::npos);
  EXPECT_NE(missing[0].message.find("no such key: min"), std::string::npos);
}

TEST(Schema, CrdRulesMustCompile) {
  auto crd = json::parse(R"J({"spec":{"versions":[{"name":"v1","schema":{"openAPIV3Schema":{
    "type":"object","properties":{"spec":{"type":"object","x-kubernetes-validations":[
      {"rule":"self == oldSelf"},{"rule":"self.x.split('.') == []"},{"rule":"self.y >"}]}}}}}]}})J");
  ASSERT_TRUE(crd);
  auto c = validate_crd_rules(*crd);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(
      c[0].field,
      "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].rule");
  EXPECT_NE(c[0].message.find("function 'split' is not supported"), std::string::npos);
  EXPECT_NE(c[1].message.find("unexpected end of expression"), std::string::npos);
}

// A pattern that makes a backtracking matcher take exponential time on a non-matching value
// (std::regex needed seconds for 30 characters, minutes for 40): RE2 answers in linear time.
TEST(Schema, PatternsAreMatchedInLinearTime) {
  auto schema =
      json::parse(R"({"type":"object","properties":{"v":{"type":"string","pattern":"^(a+)+$"},)"
                  R"("w":{"type":"string","pattern":"(?i)^[a-z]+$"}}})");
  ASSERT_TRUE(schema);
  auto d = json::parse(R"({"v":")" + std::string(5000, 'a') + R"(!","w":"MiXed"})");
  ASSERT_TRUE(d);
  auto causes = validate_custom_resource(*d, *schema, nullptr);
  ASSERT_EQ(causes.size(), 1u);  // Go's regexp syntax: (?i) is valid, and w matches
  EXPECT_EQ(causes[0].field, "v");
  EXPECT_NE(causes[0].message.find("should match"), std::string::npos);
}

TEST(Schema, AnInvalidPatternIsReportedNotThrown) {
  auto schema =
      json::parse(R"({"type":"object","properties":{"v":{"type":"string","pattern":"(a"}}})");
  auto d = json::parse(R"({"v":"a"})");
  auto causes = validate_custom_resource(*d, *schema, nullptr);
  ASSERT_EQ(causes.size(), 1u);
  EXPECT_NE(causes[0].message.find("not a valid regular expression"), std::string::npos);
}

}  // namespace
}  // namespace nvdra::sim
