#include "k8sclient/selectors.h"

#include <gtest/gtest.h>

namespace nvdra::k8s {
namespace {

TEST(LabelSelector, AllOperators) {
  Labels l{{"app", "web"}, {"tier", "gold"}};
  auto m = [&](std::string_view s) { return LabelSelector::parse(s)->matches(l); };
  EXPECT_TRUE(m(""));
  EXPECT_TRUE(m("app=web"));
  EXPECT_TRUE(m("app==web,tier"));
  EXPECT_FALSE(m("app!=web"));
  EXPECT_TRUE(m("app in (db, web)"));
  EXPECT_FALSE(m("app notin (web)"));
  EXPECT_TRUE(m("!missing"));
  EXPECT_FALSE(m("!app"));
  EXPECT_TRUE(m("example.com/x notin (a)"));
}

TEST(LabelSelector, ErrorsNameTheRequirement) {
  for (std::string_view bad : {"a in (", "a in ()", "=x", "a=b c", "a in (b,$)", "-a=b", "a,,b"}) {
    auto r = LabelSelector::parse(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("unable to parse requirement"), std::string::npos) << bad;
  }
}

TEST(FieldSelector, EqualsAndNotEquals) {
  auto f = FieldSelector::parse("spec.nodeName=n1,metadata.name!=x");
  ASSERT_TRUE(f);
  auto get = [](std::string name) {
    return [name](const std::string& field) -> std::optional<std::string> {
      if (field == "spec.nodeName") return "n1";
      if (field == "metadata.name") return name;
      return std::nullopt;
    };
  };
  EXPECT_TRUE(f->matches(get("y")));
  EXPECT_FALSE(f->matches(get("x")));
  EXPECT_FALSE(FieldSelector::parse("nonsense"));
}

}  // namespace
}  // namespace nvdra::k8s
