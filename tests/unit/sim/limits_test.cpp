// nvdra-sim's API server against hostile requests (issue 17): deep nesting, huge scalars,
// amplifying patches and odd watch parameters get a Status, never a crash or a hang.
#include <gtest/gtest.h>

#include <limits>

#include "k8sclient/rest/status.h"
#include "sim/query_params.h"
#include "support/in_process_sim.h"

namespace nvdra::sim {
namespace {

using Sim = testing::InProcessSim;
const std::string kConfigMaps = "/api/v1/namespaces/default/configmaps";

int status_of(const Result<k8s::HttpResponse>& r) {
  return r ? r->status : r.error().http_status;
}
std::string message_of(const Result<k8s::HttpResponse>& r) {
  return r ? r->body : r.error().message;
}

Result<k8s::HttpResponse> send(Sim& sim, const std::string& method, const std::string& path,
                               const std::string& body = "",
                               const std::string& ct = "application/json") {
  return sim.io.run(sim.client->raw(method, path, body, ct));
}

TEST(SimLimits, DeeplyNestedJsonIsABadRequest) {
  Sim sim;
  // Every user may post a SelfSubjectAccessReview; 1.5 M levels overflowed the server's stack.
  const size_t deep = 1'500'000;
  auto r = send(sim, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                std::string(deep, '[') + std::string(deep, ']'));
  EXPECT_EQ(status_of(r), 400) << message_of(r);
  EXPECT_EQ(status_of(send(sim, "GET", "/healthz")), 200);
}

TEST(SimLimits, YamlScalarsAtTheEdges) {
  Sim sim;
  const std::string yaml = "application/yaml";
  auto big = send(sim, "POST", kConfigMaps,
                  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  x: " +
                      std::string(100'000, '9') + "\n",
                  yaml);
  EXPECT_EQ(status_of(big), 201) << message_of(big).substr(0, 300);
  auto inf =
      send(sim, "POST", kConfigMaps,
           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: inf\ndata:\n  x: 1e999\n", yaml);
  ASSERT_EQ(status_of(inf), 201) << message_of(inf);
  auto doc = json::parse(inf->body);
  EXPECT_EQ(json::string_or(*json::find(*doc, "data"), "x"), "1e999");
}

TEST(SimLimits, PatchesCannotAmplifyOrRetypeAnObject) {
  Sim sim;
  ASSERT_TRUE(sim.create(
      "", "configmaps", "default",
      R"({"metadata":{"name":"cm"},"data":{"a":")" + std::string(400'000, 'x') + R"("}})"));
  const std::string patch_type = "application/json-patch+json";
  // The issue's 12 copies: 8.3 MB stored from a 639-byte patch.
  std::string copies = "[";
  for (int i = 0; i < 12; ++i)
    copies += std::string(i ? "," : "") + R"({"op":"copy","from":"/data/a","path":"/data/c)" +
              std::to_string(i) + "\"}";
  copies += "]";
  auto amplified = send(sim, "PATCH", kConfigMaps + "/cm", copies, patch_type);
  EXPECT_EQ(status_of(amplified), 422) << message_of(amplified).substr(0, 300);
  auto got = send(sim, "GET", kConfigMaps + "/cm");
  ASSERT_TRUE(got);
  EXPECT_LT(got->body.size(), 500'000u);

  // Adds one level at a time: deeper than anything a request could carry.
  std::string deeper = R"([{"op":"add","path":"/metadata/annotations","value":{}})";
  deeper += R"(,{"op":"add","path":"/data/d","value":{}})";
  std::string at = "/data/d";
  for (int i = 0; i < json::kMaxDepth + 5; ++i) {
    at += "/d";
    deeper += R"(,{"op":"add","path":")" + at + R"(","value":{}})";
  }
  deeper += "]";
  auto deep = send(sim, "PATCH", kConfigMaps + "/cm", deeper, patch_type);
  EXPECT_EQ(status_of(deep), 422) << message_of(deep).substr(0, 300);

  // A patch may not give data a type a create could not.
  auto retyped = send(sim, "PATCH", kConfigMaps + "/cm",
                      R"([{"op":"add","path":"/data/m","value":{"y":1}}])", patch_type);
  EXPECT_EQ(status_of(retyped), 400) << message_of(retyped);
  auto merged = send(sim, "PATCH", kConfigMaps + "/cm", R"({"data":{"n":5}})",
                     "application/merge-patch+json");
  EXPECT_EQ(status_of(merged), 400) << message_of(merged);

  std::string many = "[";
  for (int i = 0; i < 10'001; ++i)
    many += std::string(i ? "," : "") + R"({"op":"test","path":"/kind","value":"ConfigMap"})";
  many += "]";
  auto too_many = send(sim, "PATCH", kConfigMaps + "/cm", many, patch_type);
  EXPECT_EQ(status_of(too_many), 413) << message_of(too_many).substr(0, 300);
}

TEST(SimLimits, PatchResultsAreBoundedInSize) {
  Sim sim;
  ASSERT_TRUE(sim.create(
      "", "configmaps", "default",
      R"({"metadata":{"name":"cm"},"data":{"a":")" + std::string(2'000'000, 'x') + R"("}})"));
  // Each request fits the 3 MiB limit; the object they would make does not.
  auto r = send(sim, "PATCH", kConfigMaps + "/cm",
                R"({"data":{"b":")" + std::string(2'000'000, 'y') + R"("}})",
                "application/merge-patch+json");
  EXPECT_EQ(status_of(r), 413) << message_of(r).substr(0, 300);
}

using testing::watch_body;

TEST(SimLimits, MalformedListAndWatchParametersAreBadRequests) {
  Sim sim;
  ASSERT_TRUE(sim.create("", "configmaps", "default", R"({"metadata":{"name":"a"}})"));
  ASSERT_TRUE(sim.create("", "configmaps", "default", R"({"metadata":{"name":"b"}})"));
  for (const char* q : {"?watch=1&resourceVersion=abc", "?watch=1&resourceVersion=-5",
                        "?resourceVersion=x1", "?limit=abc", "?watch=1&timeoutSeconds=soon"}) {
    auto r = send(sim, "GET", kConfigMaps + q);
    EXPECT_EQ(status_of(r), 400) << q << ": " << message_of(r);
  }
  // A negative limit is no limit, as on the real server.
  auto all = send(sim, "GET", kConfigMaps + "?limit=-1");
  ASSERT_EQ(status_of(all), 200) << message_of(all);
  auto doc = json::parse(all->body);
  EXPECT_EQ(json::find(*doc, "items")->Size(), 2u);
}

TEST(SimLimits, AWatchFromTheFutureGetsTooLargeResourceVersion) {
  Sim sim;
  k8s::ListOptions o;
  o.resource_version = std::to_string(sim.store.current_rv() + 1000);
  o.timeout_seconds = 30;
  auto r = watch_body(sim, o);
  ASSERT_FALSE(r) << "the watch hung until its timeout and ended silently";
  EXPECT_EQ(r.error().http_status, 504) << r.error().message;
  EXPECT_NE(r.error().message.find("Too large resource version"), std::string::npos);
}

// A watch whose own timeout ends before the server stops waiting: it ends empty, as
// kube-apiserver's does (found by k8s.diff).
TEST(SimLimits, AWatchFromTheFutureThatTimesOutFirstEndsEmpty) {
  Sim sim;
  k8s::ListOptions o;
  o.resource_version = std::to_string(sim.store.current_rv() + 1000);
  o.timeout_seconds = 1;
  auto r = watch_body(sim, o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "");
}

TEST(SimLimits, WatchTimeoutsCannotOverflowTheClock) {
  using std::chrono::seconds;
  const auto now = std::chrono::steady_clock::now();
  for (int64_t t : {std::numeric_limits<int64_t>::max(), int64_t{1} << 40, int64_t{-5}}) {
    const seconds d = watch_timeout(t);
    EXPECT_GT(d, seconds(0)) << t;
    EXPECT_GT(now + d, now) << t;
  }
  EXPECT_EQ(watch_timeout(std::nullopt), seconds(1800));
  EXPECT_EQ(watch_timeout(5), seconds(5));
}

}  // namespace
}  // namespace nvdra::sim
