#include "base/json_patch.h"

#include <gtest/gtest.h>

namespace nvdra::json {
namespace {

std::string patched(std::string_view doc, std::string_view ops, bool merge = false) {
  auto d = parse(doc);
  auto p = parse(ops);
  EXPECT_TRUE(d && p);
  auto st = merge ? merge_patch(*d, *p) : json_patch(*d, *p);
  return st ? write(*d) : "error: " + st.error().message;
}

TEST(JsonPatch, Rfc6902Operations) {
  EXPECT_EQ(patched(R"({"a":[1,2]})", R"([{"op":"add","path":"/a/1","value":9}])"),
            R"({"a":[1,9,2]})");
  EXPECT_EQ(patched(R"({"a":[1,2]})", R"([{"op":"add","path":"/a/-","value":3}])"),
            R"({"a":[1,2,3]})");
  EXPECT_EQ(patched(R"({"a":{"b":1}})", R"([{"op":"remove","path":"/a/b"}])"), R"({"a":{}})");
  EXPECT_EQ(patched(R"({"a":1})", R"([{"op":"replace","path":"/a","value":[true]}])"),
            R"({"a":[true]})");
  EXPECT_EQ(patched(R"({"a":1,"b":{}})", R"([{"op":"move","from":"/a","path":"/b/c"}])"),
            R"({"b":{"c":1}})");
  EXPECT_EQ(patched(R"({"a":{"x":1}})", R"([{"op":"copy","from":"/a","path":"/b"}])"),
            R"({"a":{"x":1},"b":{"x":1}})");
  EXPECT_EQ(patched(R"({"a/b":{"~c":1}})", R"([{"op":"replace","path":"/a~1b/~0c","value":2}])"),
            R"({"a/b":{"~c":2}})");
}

TEST(JsonPatch, FailuresLeaveTheDocumentUnchanged) {
  auto d = parse(R"({"a":1})");
  auto p = parse(R"([{"op":"add","path":"/b","value":2},{"op":"test","path":"/a","value":5}])");
  auto st = json_patch(*d, *p);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("operation 1"), std::string::npos);
  EXPECT_EQ(write(*d), R"({"a":1})");
  for (std::string_view bad :
       {R"([{"op":"remove","path":"/nope"}])", R"([{"op":"add","path":"x","value":1}])",
        R"([{"op":"jump","path":"/a"}])", R"([{"path":"/a"}])", R"({"op":"add"})",
        R"([{"op":"add","path":"/a/b","value":1}])",
        R"([{"op":"replace","path":"/z","value":1}])"}) {
    EXPECT_EQ(patched(R"({"a":1})", bad).rfind("error", 0), 0u) << bad;
  }
}

TEST(MergePatch, Rfc7386) {
  EXPECT_EQ(patched(R"({"a":"b","c":{"d":"e","f":"g"}})", R"({"a":"z","c":{"f":null}})", true),
            R"({"a":"z","c":{"d":"e"}})");
  EXPECT_EQ(patched(R"({"a":[1,2]})", R"({"a":[3]})", true), R"({"a":[3]})");
  EXPECT_EQ(patched(R"({"a":1})", R"({"b":{"c":null,"d":1}})", true), R"({"a":1,"b":{"d":1}})");
}

TEST(JsonPatch, OperationsAreCounted) {
  std::string ops = "[";
  for (int i = 0; i < 10'001; ++i)
    ops += std::string(i ? "," : "") + R"({"op":"test","path":"/a","value":1})";
  ops += "]";
  EXPECT_EQ(patched(R"({"a":1})", ops),
            "error: The allowed maximum operations in a JSON patch is 10000, got 10001");
}

TEST(JsonPatch, CopiesAreLimitedInBytes) {
  // Each copy doubles the document: 12 of them made 8 MB from a few bytes of patch.
  std::string ops = "[";
  for (int i = 0; i < 30; ++i) {
    ops += std::string(i ? "," : "") + R"({"op":"copy","from":"/a","path":"/a/x)" +
           std::to_string(i) + R"("})";
  }
  ops += "]";
  auto d = parse(R"({"a":{"s":"0123456789012345678901234567890123456789"}})");
  auto p = parse(ops);
  ASSERT_TRUE(d && p);
  auto st = json_patch(*d, *p, JsonPatchLimits{.max_copied_bytes = 1u << 20});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("accumulated copy size limit"), std::string::npos)
      << st.error().message;
  EXPECT_LT(write(*d).size(), 100u);  // unchanged
}

}  // namespace
}  // namespace nvdra::json
