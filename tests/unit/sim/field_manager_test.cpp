#include "sim/field_manager.h"

#include <gtest/gtest.h>

namespace nvdra::sim {
namespace {

FieldManagerRequest by(std::string manager, bool status = false) {
  FieldManagerRequest r;
  r.manager = std::move(manager);
  r.api_version = "apps/v1";
  r.time = "2026-11-25T10:00:00Z";
  r.status_write = status;
  r.type_has_status_subresource = true;
  return r;
}

json::Document doc(std::string_view text) {
  auto d = json::parse(text);
  EXPECT_TRUE(d) << text;
  return d ? std::move(*d) : json::Document();
}

// The managers and their FieldsV1, compactly: "manager/operation[/subresource]=fields;…".
std::string managers_of(const json::Value& obj) {
  std::string out;
  const json::Value* mf = json::find_path(obj, {"metadata", "managedFields"});
  if (!mf) return out;
  for (const auto& e : mf->GetArray()) {
    out += std::string(json::string_or(e, "manager")) + "/" +
           std::string(json::string_or(e, "operation"));
    if (auto s = json::get_string(e, "subresource")) out += "/" + std::string(*s);
    out += "=" + json::write(*json::find(e, "fieldsV1")) + ";";
  }
  return out;
}

const char* kCreated = R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d",
  "labels":{"app":"x"}},"spec":{"replicas":1,"template":{"spec":{"containers":[
  {"name":"app","image":"a:1"},{"name":"side","image":"s:1"}]}}}})";

json::Document created() {
  auto d = doc(kCreated);
  track_update(d, nullptr, by("kubectl-create"));
  return d;
}

TEST(FieldManager, CreateRecordsEveryFieldInFieldsV1) {
  auto d = created();
  EXPECT_EQ(
      managers_of(d),
      R"(kubectl-create/Update={"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},)"
      R"("f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}},)"
      R"("k:{\"name\":\"side\"}":{".":{},"f:image":{},"f:name":{}}}}}}};)");
}

TEST(FieldManager, UpdatesMoveOnlyChangedFields) {
  auto d = created();
  auto next = doc(json::write(d));
  next["spec"]["replicas"] = 4;
  track_update(next, &d, by("hpa"));
  const std::string m = managers_of(next);
  EXPECT_NE(m.find(R"(hpa/Update={"f:spec":{"f:replicas":{}}})"), std::string::npos) << m;
  EXPECT_EQ(
      m.find(
          R"(kubectl-create/Update={"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas")"),
      std::string::npos)
      << m;
}

TEST(FieldManager, ApplyConflictsWithAnotherOwnerUnlessForced) {
  auto live = created();
  auto config = doc(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
                        "spec":{"replicas":3}})");
  auto st = server_side_apply(live, config, false, by("ci"));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().http_status, 409);
  EXPECT_EQ(st.error().reason, "Conflict");
  EXPECT_EQ(st.error().message,
            "Apply failed with 1 conflict: conflict with \"kubectl-create\" using apps/v1: "
            ".spec.replicas");
  ASSERT_EQ(st.error().causes.size(), 1u);
  EXPECT_EQ(st.error().causes[0].reason, "FieldManagerConflict");
  EXPECT_EQ(st.error().causes[0].field, ".spec.replicas");
  EXPECT_EQ(json::find_path(live, {"spec", "replicas"})->GetInt(), 1);  // untouched

  ASSERT_TRUE(server_side_apply(live, config, true, by("ci")));
  EXPECT_EQ(json::find_path(live, {"spec", "replicas"})->GetInt(), 3);
  const std::string m = managers_of(live);
  EXPECT_NE(m.find(R"(ci/Apply={"f:spec":{"f:replicas":{}}})"), std::string::npos) << m;
  // The forced field left kubectl-create; the rest of its fields stay.
  EXPECT_EQ(m.find(R"("f:replicas":{},"f:template")"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(kubectl-create/Update={"f:metadata")"), std::string::npos) << m;
}

TEST(FieldManager, ApplyingTheSameValueSharesOwnership) {
  auto live = created();
  auto config = doc(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
                        "spec":{"replicas":1}})");
  ASSERT_TRUE(server_side_apply(live, config, false, by("ci")));
  const std::string m = managers_of(live);
  EXPECT_NE(m.find(R"(ci/Apply={"f:spec":{"f:replicas":{}}})"), std::string::npos);
  EXPECT_NE(
      m.find(
          R"(kubectl-create/Update={"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{})"),
      std::string::npos);
}

TEST(FieldManager, KeyedListElementsAreOwnedSeparately) {
  auto live = created();
  // Another manager changes only the sidecar image: no conflict with the app container.
  auto config = doc(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{
    "template":{"spec":{"containers":[{"name":"side","image":"s:2"}]}}}})");
  auto st = server_side_apply(live, config, false, by("ci"));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().causes.at(0).field, R"(.spec.template.spec.containers[name="side"].image)");
  ASSERT_TRUE(server_side_apply(live, config, true, by("ci")));
  const json::Value& cs = live["spec"]["template"]["spec"]["containers"];
  ASSERT_EQ(cs.Size(), 2u);  // merged by name, not replaced
  EXPECT_STREQ(cs[0]["image"].GetString(), "a:1");
  EXPECT_STREQ(cs[1]["image"].GetString(), "s:2");
}

TEST(FieldManager, FieldsAnApplierDropsAreRemovedUnlessSomeoneElseOwnsThem) {
  json::Document live;
  live.SetObject();
  auto first = doc(
      R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":{"a":"1","b":"2"}},
                       "data":{"x":"1","y":"2"}})");
  ASSERT_TRUE(server_side_apply(live, first, false, by("ci")));
  // Someone else takes data.y with an ordinary update.
  auto next = doc(json::write(live));
  next["data"]["y"] = "3";
  track_update(next, &live, by("kubectl-edit"));
  auto second =
      doc(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":{"a":"1"}},
                        "data":{"x":"1"}})");
  ASSERT_TRUE(server_side_apply(next, second, false, by("ci")));
  EXPECT_EQ(json::write(next["data"]), R"({"x":"1","y":"3"})");  // y kept: kubectl-edit owns it
  EXPECT_EQ(json::write(next["metadata"]["labels"]), R"({"a":"1"})");  // b removed
}

TEST(FieldManager, StatusWritesAreTrackedAsTheStatusSubresource) {
  auto live = created();
  auto next = doc(json::write(live));
  auto status = doc(R"({"readyReplicas":1})");
  next.AddMember("status", json::Value(status, next.GetAllocator()), next.GetAllocator());
  track_update(next, &live, by("controller", true));
  EXPECT_NE(
      managers_of(next).find(R"(controller/Update/status={"f:status":{"f:readyReplicas":{}}})"),
      std::string::npos)
      << managers_of(next);
}

}  // namespace
}  // namespace nvdra::sim
