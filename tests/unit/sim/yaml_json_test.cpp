// YAML and JSON request bodies at the parser's limits (issue 17): nothing a client sends may
// overflow the stack or throw out of the server.
#include "sim/yaml_json.h"

#include <gtest/gtest.h>

namespace nvdra::sim {
namespace {

const json::Value& field(const json::Document& d, const char* name) {
  return *json::find(d, name);
}

TEST(YamlJson, PlainScalarsGetCoreSchemaTypes) {
  auto d = parse_json_or_yaml("a: 1\nb: -2.5e3\nc: .5\nd: 1.\ne: true\nf: ~\ng: 1e\nh: '7'\n");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(field(*d, "a").GetInt64(), 1);
  EXPECT_DOUBLE_EQ(field(*d, "b").GetDouble(), -2500);
  EXPECT_DOUBLE_EQ(field(*d, "c").GetDouble(), 0.5);
  EXPECT_DOUBLE_EQ(field(*d, "d").GetDouble(), 1);
  EXPECT_TRUE(field(*d, "e").GetBool());
  EXPECT_TRUE(field(*d, "f").IsNull());
  EXPECT_STREQ(field(*d, "g").GetString(), "1e");
  EXPECT_STREQ(field(*d, "h").GetString(), "7");
}

TEST(YamlJson, AHugeNumberIsAStringNotACrash) {
  // 100,000 digits overflowed the stack in std::regex_match.
  const std::string digits(100'000, '7');
  auto d = parse_json_or_yaml("x: " + digits + "\n");
  ASSERT_TRUE(d) << d.error().message;
  ASSERT_TRUE(field(*d, "x").IsString());
  EXPECT_EQ(field(*d, "x").GetStringLength(), digits.size());
}

TEST(YamlJson, AFloatOutOfRangeStaysAString) {
  // std::stod threw out_of_range and the server dropped the connection. kube-apiserver's YAML
  // decoding keeps what ParseFloat rejects as a string.
  auto d = parse_json_or_yaml("x: 1e999\ny: -1e999\n");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_STREQ(field(*d, "x").GetString(), "1e999");
  EXPECT_STREQ(field(*d, "y").GetString(), "-1e999");
}

TEST(YamlJson, NestingIsBounded) {
  const int deep = json::kMaxDepth + 10;
  auto yaml = parse_json_or_yaml("x: " + std::string(deep, '[') + std::string(deep, ']'));
  EXPECT_FALSE(yaml);
  auto ok_depth =
      parse_json_or_yaml(std::string(json::kMaxDepth, '[') + std::string(json::kMaxDepth, ']'));
  EXPECT_TRUE(ok_depth) << ok_depth.error().message;
  // 1.5 M levels of JSON overflowed the stack in the parser.
  const size_t huge = 1'500'000;
  auto j = json::parse(std::string(huge, '[') + std::string(huge, ']'));
  ASSERT_FALSE(j);
  EXPECT_NE(j.error().message.find("nested deeper than"), std::string::npos) << j.error().message;
  // Brackets inside strings do not count.
  EXPECT_TRUE(json::parse("[\"" + std::string(5000, '[') + "\\\"{\"]"));
}

TEST(YamlJson, DeeperThanStopsAtTheLimit) {
  auto d = json::parse(R"({"a":[{"b":[]}]})");
  ASSERT_TRUE(d);
  EXPECT_FALSE(json::deeper_than(*d, 4));
  EXPECT_TRUE(json::deeper_than(*d, 3));
  EXPECT_FALSE(json::deeper_than(json::Value(1), 0));
}

// yaml-cpp 0.7 loops forever on a document that begins with ',' (fuzz_yaml_json found ",f"):
// such input is refused before it reaches the library; ',' elsewhere still parses.
TEST(YamlJson, ADocumentBeginningWithACommaIsRefusedNotAHang) {
  for (const char* text : {",f", ",", "  , x", "# c\n,f", "a: 1\n---\n,f", "--- ,f", "!f,", "!f ,g",
                           "&a\n,", "xJ # \n,x"})
    EXPECT_FALSE(parse_yaml_documents(text)) << text;
  for (const char* text :
       {"[a, b]", "a: 1\n---\nb: ','", "a: 'x,y'", "{a: 1, b: 2}", "!!map {a: 1}", "&x [1, 2]"})
    EXPECT_TRUE(parse_yaml_documents(text)) << text;
}

}  // namespace
}  // namespace nvdra::sim
