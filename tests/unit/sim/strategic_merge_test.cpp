#include "sim/strategic_merge.h"

#include <gtest/gtest.h>

namespace nvdra::sim {
namespace {

std::string smp(std::string_view doc, std::string_view patch) {
  auto d = json::parse(doc);
  auto p = json::parse(patch);
  EXPECT_TRUE(d && p);
  auto st = strategic_merge_patch(*d, *p);
  return st ? json::write(*d) : "error: " + st.error().message;
}

TEST(StrategicMerge, ContainersMergeByName) {
  EXPECT_EQ(
      smp(R"({"spec":{"containers":[{"name":"a","image":"x","args":["1"]},{"name":"b","image":"y"}]}})",
          R"({"spec":{"$setElementOrder/containers":[{"name":"a"},{"name":"b"}],"containers":[{"name":"a","image":"x2"}]}})"),
      R"({"spec":{"containers":[{"name":"a","image":"x2","args":["1"]},{"name":"b","image":"y"}]}})");
}

TEST(StrategicMerge, DeleteAndReplaceDirectives) {
  EXPECT_EQ(smp(R"({"spec":{"containers":[{"name":"a"},{"name":"b"}]}})",
                R"({"spec":{"containers":[{"name":"a","$patch":"delete"}]}})"),
            R"({"spec":{"containers":[{"name":"b"}]}})");
  EXPECT_EQ(smp(R"({"spec":{"containers":[{"name":"a"},{"name":"b"}]}})",
                R"({"spec":{"containers":[{"name":"c"},{"$patch":"replace"}]}})"),
            R"({"spec":{"containers":[{"name":"c"}]}})");
  EXPECT_EQ(smp(R"({"a":{"x":1,"y":2}})", R"({"a":{"$patch":"replace","z":3}})"),
            R"({"a":{"z":3}})");
  EXPECT_EQ(smp(R"({"a":{"x":1,"y":2}})", R"({"a":{"$retainKeys":["y","z"],"z":3}})"),
            R"({"a":{"y":2,"z":3}})");
}

TEST(StrategicMerge, FinalizersMergeAsASetAndPrimitiveDeletes) {
  EXPECT_EQ(
      smp(R"({"metadata":{"finalizers":["a","b"]}})", R"({"metadata":{"finalizers":["b","c"]}})"),
      R"({"metadata":{"finalizers":["a","b","c"]}})");
  EXPECT_EQ(smp(R"({"metadata":{"finalizers":["a","b"]}})",
                R"({"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}})"),
            R"({"metadata":{"finalizers":["b"]}})");
}

TEST(StrategicMerge, UnknownListsAreReplacedAndNullsDelete) {
  EXPECT_EQ(smp(R"({"spec":{"tolerations":[{"key":"a"}],"x":1}})",
                R"({"spec":{"tolerations":[{"key":"b"}],"x":null}})"),
            R"({"spec":{"tolerations":[{"key":"b"}]}})");
  EXPECT_EQ(smp(R"({"ports":[{"port":80,"name":"h"}]})",
                R"({"ports":[{"port":80,"protocol":"TCP"},{"port":443}]})"),
            R"({"ports":[{"port":80,"name":"h","protocol":"TCP"},{"port":443}]})");
  EXPECT_EQ(smp(R"({"spec":{"containers":[]}})", R"({"spec":{"containers":[{"image":"no-name"}]}})")
                .rfind("error", 0),
            0u);
  EXPECT_EQ(smp(R"({})", R"({"$patch":"explode"})").rfind("error", 0), 0u);
}

}  // namespace
}  // namespace nvdra::sim
