#include "k8sclient/object.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/json.h"
#include "tests/data/test_data.h"

namespace nvdra::k8s {
namespace {

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The serialized API objects of NVDRA_FIXTURES_DIR (tests/data): every field of every kind set.
std::vector<std::filesystem::path> fixtures(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".json") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ObjectCodec, DeepNestingIsAnErrorNotAStackOverflow) {
  const int n = 1'500'000;
  const std::string deep =
      R"({"kind":"Pod","x":)" + std::string(n, '[') + std::string(n, ']') + "}";
  auto obj = Object::parse(deep);
  ASSERT_FALSE(obj);
  EXPECT_NE(obj.error().message.find("nested deeper than"), std::string::npos);
  EXPECT_FALSE(parse_list(R"({"items":[)" + std::string(n, '{') + "}]}"));
  EXPECT_FALSE(json::parse(std::string(n, '[')));
  // Brackets inside strings are not nesting; the limit itself is accepted.
  EXPECT_TRUE(Object::parse(R"({"kind":"Pod","x":")" + std::string(n, '[') + R"("})"));
  const int ok = json::kMaxDepth - 1;  // plus the object itself
  EXPECT_TRUE(
      Object::parse(R"({"kind":"Pod","x":)" + std::string(ok, '[') + std::string(ok, ']') + "}"));
}

TEST(ObjectCodec, FixturesAreFound) {
  NVDRA_DATA_DIR(dir, testdata::kFixtures);
  EXPECT_GE(fixtures(dir).size(), 20u);
}

// Decode then encode keeps every field, including ones no typed view models.
TEST(ObjectCodec, RoundTripKeepsEveryFieldOfEveryFixture) {
  NVDRA_DATA_DIR(dir, testdata::kFixtures);
  for (const auto& path : fixtures(dir)) {
    SCOPED_TRACE(path.filename().string());
    const std::string text = read(path);
    auto obj = Object::parse(text, DecodeOptions{.strip_managed_fields = false});
    ASSERT_TRUE(obj) << obj.error().message;
    auto original = json::parse(text);
    auto again = json::parse((*obj)->json());
    ASSERT_TRUE(original && again);
    EXPECT_TRUE(*original == *again) << "re-encoded object differs";
    // Metadata extracted in the same pass matches the document.
    EXPECT_EQ((*obj)->kind(), json::string_or(*original, "kind"));
    EXPECT_EQ((*obj)->api_version(), json::string_or(*original, "apiVersion"));
    const json::Value* meta = json::find(*original, "metadata");
    ASSERT_NE(meta, nullptr);
    EXPECT_EQ((*obj)->name(), json::string_or(*meta, "name"));
    EXPECT_EQ((*obj)->namespace_(), json::string_or(*meta, "namespace"));
    EXPECT_EQ((*obj)->uid(), json::string_or(*meta, "uid"));
    EXPECT_EQ((*obj)->resource_version(), json::string_or(*meta, "resourceVersion"));
    EXPECT_EQ((*obj)->generation(), json::get_int(*meta, "generation").value_or(0));
    EXPECT_EQ((*obj)->being_deleted(), json::find(*meta, "deletionTimestamp") != nullptr);
    if (const json::Value* labels = json::find(*meta, "labels")) {
      for (auto it = labels->MemberBegin(); it != labels->MemberEnd(); ++it) {
        EXPECT_EQ((*obj)->label(it->name.GetString()), std::string_view(it->value.GetString()));
      }
    }
  }
}

// Stripping managedFields removes exactly that member and nothing else.
TEST(ObjectCodec, StripManagedFieldsRemovesOnlyThatMember) {
  NVDRA_DATA_DIR(dir, testdata::kFixtures);
  for (const auto& path : fixtures(dir)) {
    SCOPED_TRACE(path.filename().string());
    const std::string text = read(path);
    auto obj = Object::parse(text);
    ASSERT_TRUE(obj) << obj.error().message;
    auto expected = json::parse(text);
    ASSERT_TRUE(expected);
    auto& meta = (*expected)["metadata"];
    meta.RemoveMember("managedFields");
    auto got = json::parse((*obj)->json());
    ASSERT_TRUE(got) << (*obj)->json();
    EXPECT_TRUE(*expected == *got);
    EXPECT_EQ(json::find(*json::find(*got, "metadata"), "managedFields"), nullptr);
  }
}

TEST(ObjectCodec, ManagedFieldsFirstOrOnlyMember) {
  auto a = Object::parse(R"({"metadata":{"managedFields":[{"a":1}],"name":"x"}})");
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)->json(), R"({"metadata":{"name":"x"}})");
  auto b = Object::parse(R"({"metadata":{"managedFields":[]}, "spec":{}})");
  ASSERT_TRUE(b);
  EXPECT_EQ((*b)->json(), R"({"metadata":{}, "spec":{}})");
  // A nested object named managedFields elsewhere is user data and stays.
  auto c = Object::parse(R"({"metadata":{"name":"x"},"spec":{"managedFields":1}})");
  ASSERT_TRUE(c);
  EXPECT_NE((*c)->json().find("managedFields"), std::string::npos);
}

TEST(ObjectCodec, ListItemsGetKindAndApiVersion) {
  auto list = parse_list(
      R"({"kind":"ResourceClaimList","apiVersion":"resource.k8s.io/v1","metadata":{"resourceVersion":"42","continue":"tok","remainingItemCount":3},)"
      R"("items":[{"metadata":{"name":"a","namespace":"ns","resourceVersion":"40","labels":{"x":"1","a":"2"}}},{"metadata":{"name":"b","namespace":"ns"},"spec":{}}]})");
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_EQ(list->resource_version, "42");
  EXPECT_EQ(list->continue_token, "tok");
  EXPECT_EQ(list->remaining_item_count, 3);
  ASSERT_EQ(list->items.size(), 2u);
  EXPECT_EQ(list->items[0]->kind(), "ResourceClaim");
  EXPECT_EQ(list->items[0]->api_version(), "resource.k8s.io/v1");
  EXPECT_EQ(list->items[0]->key(), "ns/a");
  EXPECT_EQ(list->items[0]->label("a"), "2");
  EXPECT_EQ(list->items[0]->label("missing"), std::nullopt);
  auto doc = list->items[1]->doc();
  ASSERT_TRUE(doc);
  EXPECT_EQ(json::string_or(*doc, "kind"), "ResourceClaim");
  EXPECT_TRUE(json::find(*doc, "spec"));
}

TEST(ObjectCodec, RejectsGarbage) {
  for (std::string_view bad : {"", "[]", "42", "{", R"({"a":})", R"({"metadata":{}} trailing)",
                               "\"str\"", R"({"a":"\u12"})"}) {
    EXPECT_FALSE(Object::parse(bad)) << bad;
  }
  EXPECT_FALSE(parse_list(R"({"items":[{"metadata":{}},]})"));
}

TEST(ObjectCodec, EscapedStringsAreDecoded) {
  auto o = Object::parse(R"({"metadata":{"name":"a\"b","labels":{"k":"v\u00e9"}}})");
  ASSERT_TRUE(o);
  EXPECT_EQ((*o)->name(), "a\"b");
  EXPECT_EQ((*o)->label("k"), "v\xc3\xa9");
}

}  // namespace
}  // namespace nvdra::k8s
