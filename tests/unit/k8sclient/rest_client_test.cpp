#include "k8sclient/rest/rest_client.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

#include "base/log.h"

#include "k8sclient/rest/status.h"
#include "support/test_server.h"

namespace nvdra::k8s {
namespace {

using testing::IoThread;
using testing::Reply;
using testing::RequestLog;
using testing::TestServer;

struct Harness {
  IoThread io;
  RequestLog log;
  std::vector<std::chrono::nanoseconds> sleeps;
  std::mutex mu;
  std::unique_ptr<TestServer> server;
  std::shared_ptr<RestClient> client;
  std::shared_ptr<Transport> transport;

  explicit Harness(std::function<Reply(const httpd::Request&)> f, double qps = 0) {
    server =
        std::make_unique<TestServer>(io, testing::reply_with([this, f](const httpd::Request& r) {
                                       log.add(r);
                                       return f(r);
                                     }));
    TransportOptions topt;
    std::string err;
    parse_server_url(server->url(false), &topt.endpoint, &err);
    RestClientOptions ropt;
    ropt.qps = qps;
    ropt.token = TokenSource::fixed("s3cr3t-token");
    ropt.sleep = [this](std::chrono::nanoseconds d) -> awaitable<void> {
      std::lock_guard lock(mu);
      sleeps.push_back(d);
      co_return;
    };
    transport = *make_beast_transport(io.executor(), topt);
    client = std::make_shared<RestClient>(transport, ropt);
  }
};

ResourceRef claims(std::string ns = "ns1", std::string name = "") {
  ResourceRef r;
  r.group = "resource.k8s.io";
  r.version = "v1";
  r.resource = "resourceclaims";
  r.namespace_ = std::move(ns);
  r.name = std::move(name);
  return r;
}

std::string status_body(int code, const std::string& reason, const std::string& msg,
                        const std::string& details = "") {
  std::string b =
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":")" + msg +
      R"(","reason":")" + reason + R"(","code":)" + std::to_string(code);
  if (!details.empty()) b += ",\"details\":" + details;
  return b + "}";
}

TEST(ResourceRef, Paths) {
  EXPECT_EQ(claims("ns1", "c1").sub("status").path(),
            "/apis/resource.k8s.io/v1/namespaces/ns1/resourceclaims/c1/status");
  ResourceRef pods;
  pods.resource = "pods";
  EXPECT_EQ(pods.path(), "/api/v1/pods");
  EXPECT_EQ(pods.in_namespace("a b").with_name("p").path(), "/api/v1/namespaces/a%20b/pods/p");
}

TEST(RestClient, ABearerTokenIsNotSentOverPlainHttpUnlessAllowed) {
  testing::IoThread io;
  RestConfig cfg;
  cfg.server = "http://127.0.0.1:1";
  std::string err;
  ASSERT_TRUE(parse_server_url(cfg.server, &cfg.endpoint, &err)) << err;
  cfg.token = TokenSource::fixed("s3cr3t-token");
  auto refused = RestClient::create(io.executor(), cfg);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("refusing to send a bearer token"), std::string::npos);
  cfg.allow_insecure_token = true;
  EXPECT_TRUE(RestClient::create(io.executor(), cfg));
  cfg.allow_insecure_token = false;
  cfg.token = nullptr;  // no token: nothing to leak
  EXPECT_TRUE(RestClient::create(io.executor(), cfg));
}

TEST(RestClient, QueryParametersAreEncoded) {
  ListOptions o;
  o.label_selector = "app in (a,b),tier!=x";
  o.field_selector = "spec.nodeName=n1";
  o.limit = 500;
  o.continue_token = "abc=";
  o.resource_version = "0";
  o.resource_version_match = "NotOlderThan";
  o.timeout_seconds = 300;
  o.allow_watch_bookmarks = true;
  o.send_initial_events = true;
  EXPECT_EQ(list_query(o, true),
            "?watch=true&labelSelector=app%20in%20%28a%2Cb%29%2Ctier%21%3Dx&fieldSelector=spec."
            "nodeName%3Dn1&limit=500&continue=abc%3D&resourceVersion=0&resourceVersionMatch="
            "NotOlderThan&timeoutSeconds=300&allowWatchBookmarks=true&sendInitialEvents=true");
  WriteOptions w{"nvdra", true, "Strict", true};
  EXPECT_EQ(write_query(w, true),
            "?fieldManager=nvdra&dryRun=All&fieldValidation=Strict&force=true");
  EXPECT_EQ(write_query(w, false), "?fieldManager=nvdra&dryRun=All&fieldValidation=Strict");
}

TEST(RestClient, SendsAuthAcceptAndContentTypes) {
  Harness h([](const httpd::Request&) {
    return Reply{200, {}, R"({"kind":"ResourceClaim","metadata":{"name":"c1","namespace":"ns1"}})"};
  });
  ASSERT_TRUE(h.io.run(h.client->get(claims("ns1", "c1"))));
  ASSERT_TRUE(h.io.run(h.client->patch(claims("ns1", "c1"), PatchType::kApply, "{}",
                                       WriteOptions{.field_manager = "nvdra", .force = true})));
  ASSERT_TRUE(h.io.run(h.client->patch(claims("ns1", "c1"), PatchType::kJson, "[]")));
  ASSERT_TRUE(h.io.run(h.client->patch(claims("ns1", "c1"), PatchType::kStrategicMerge, "{}")));
  ASSERT_TRUE(h.io.run(h.client->update_status(claims("ns1", "c1"), "{}")));
  auto reqs = h.log.all();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_EQ(find_header(reqs[0].headers, "Authorization"), "Bearer s3cr3t-token");
  EXPECT_EQ(find_header(reqs[0].headers, "Accept"), "application/json");
  EXPECT_EQ(reqs[1].method, "PATCH");
  EXPECT_EQ(find_header(reqs[1].headers, "Content-Type"), "application/apply-patch+yaml");
  EXPECT_EQ(reqs[1].query, "fieldManager=nvdra&force=true");
  EXPECT_EQ(find_header(reqs[2].headers, "Content-Type"), "application/json-patch+json");
  EXPECT_EQ(find_header(reqs[3].headers, "Content-Type"), "application/strategic-merge-patch+json");
  EXPECT_EQ(reqs[4].method, "PUT");
  EXPECT_EQ(reqs[4].path, "/apis/resource.k8s.io/v1/namespaces/ns1/resourceclaims/c1/status");
}

TEST(RestClient, DeleteSendsPreconditionsAndPropagation) {
  Harness h([](const httpd::Request&) {
    return Reply{
        200, {}, R"({"kind":"Status","apiVersion":"v1","status":"Success","metadata":{}})"};
  });
  DeleteOptions d;
  d.propagation_policy = "Foreground";
  d.precondition_uid = "u1";
  d.precondition_resource_version = "7";
  d.dry_run = true;
  auto r = h.io.run(h.client->remove(claims("ns1", "c1"), d));
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, nullptr);
  auto body = json::parse(h.log.all()[0].body);
  ASSERT_TRUE(body);
  EXPECT_EQ(json::string_or(*body, "propagationPolicy"), "Foreground");
  EXPECT_EQ(json::string_or(*json::find(*body, "preconditions"), "uid"), "u1");
  EXPECT_EQ(json::string_or(*json::find(*body, "preconditions"), "resourceVersion"), "7");
  EXPECT_TRUE((*json::find(*body, "dryRun"))[0] == "All");
}

// Every Status reason the API server uses maps to its code and predicate.
TEST(RestClient, EveryErrorCodeIsMapped) {
  struct Case {
    int code;
    std::string reason;
    std::function<bool(const Error&)> pred;
  };
  std::vector<Case> cases = {
      {400, "BadRequest", is_bad_request},
      {401, "Unauthorized", is_unauthorized},
      {403, "Forbidden", is_forbidden},
      {404, "NotFound", is_not_found},
      {405, "MethodNotAllowed", is_api_error},
      {406, "NotAcceptable", is_api_error},
      {409, "AlreadyExists", is_already_exists},
      {409, "Conflict", is_conflict},
      {410, "Gone", is_gone},
      {410, "Expired", is_gone},
      {413, "RequestEntityTooLarge", is_api_error},
      {415, "UnsupportedMediaType", is_api_error},
      {422, "Invalid", is_invalid},
      {429, "TooManyRequests", is_too_many_requests},
      {500, "InternalError", is_server_error},
      {503, "ServiceUnavailable", is_server_error},
      {504, "Timeout", is_server_error},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.reason);
    Harness h([&](const httpd::Request&) {
      return Reply{
          c.code,
          {},
          status_body(
              c.code, c.reason, "boom",
              R"({"name":"c1","group":"resource.k8s.io","kind":"resourceclaims","uid":"u","causes":[{"reason":"FieldValueInvalid","message":"bad","field":"spec.x"}]})")};
    });
    // POST is not retried on 5xx, so every case is one request (429 is retried; cap it).
    h.client = std::make_shared<RestClient>(
        h.transport,
        RestClientOptions{.qps = 0,
                          .sleep = [](std::chrono::nanoseconds) -> awaitable<void> { co_return; },
                          .max_retries = 0});
    auto r = h.io.run(h.client->create(claims(), "{}"));
    ASSERT_FALSE(r);
    const Error& e = r.error();
    EXPECT_EQ(e.code, ErrorCode::kApi);
    EXPECT_EQ(e.http_status, c.code);
    EXPECT_EQ(e.reason, c.reason);
    EXPECT_EQ(e.message, "boom");
    EXPECT_EQ(e.details_name, "c1");
    EXPECT_EQ(e.details_kind, "resourceclaims");
    ASSERT_EQ(e.causes.size(), 1u);
    EXPECT_EQ(e.causes[0].field, "spec.x");
    EXPECT_TRUE(c.pred(e));
  }
}

TEST(RestClient, NonStatusErrorBodiesStillMap) {
  Harness h([](const httpd::Request&) {
    return Reply{404, {{"Content-Type", "text/plain"}}, "nope"};
  });
  auto r = h.io.run(h.client->get(claims("ns1", "x")));
  ASSERT_FALSE(r);
  EXPECT_TRUE(is_not_found(r.error()));
  EXPECT_EQ(r.error().reason, "NotFound");
}

TEST(RestClient, RetryAfterIsHonoured) {
  std::atomic<int> n{0};
  Harness h([&](const httpd::Request&) {
    if (n++ < 2) {
      return Reply{429,
                   {{"Content-Type", "application/json"}, {"Retry-After", "3"}},
                   status_body(429, "TooManyRequests", "slow down")};
    }
    return Reply{200, {}, R"({"metadata":{"name":"c1"}})"};
  });
  auto r = h.io.run(h.client->get(claims("ns1", "c1")));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(n.load(), 3);
  ASSERT_EQ(h.sleeps.size(), 2u);
  EXPECT_EQ(h.sleeps[0], std::chrono::seconds(3));
  EXPECT_EQ(h.sleeps[1], std::chrono::seconds(3));
}

TEST(RestClient, RetryAfterInDetailsIsHonoured) {
  std::atomic<int> n{0};
  Harness h([&](const httpd::Request&) {
    if (n++ < 1)
      return Reply{
          503, {}, status_body(503, "ServiceUnavailable", "x", R"({"retryAfterSeconds":7})")};
    return Reply{200, {}, R"({"metadata":{"name":"c1"}})"};
  });
  ASSERT_TRUE(h.io.run(h.client->get(claims("ns1", "c1"))));
  ASSERT_EQ(h.sleeps.size(), 1u);
  EXPECT_EQ(h.sleeps[0], std::chrono::seconds(7));
}

TEST(RestClient, ServerErrorsRetryWithCappedBackoffThenFail) {
  std::atomic<int> n{0};
  Harness h([&](const httpd::Request&) {
    ++n;
    return Reply{500, {}, status_body(500, "InternalError", "kaput")};
  });
  auto r = h.io.run(h.client->get(claims("ns1", "c1")));
  ASSERT_FALSE(r);
  EXPECT_TRUE(is_server_error(r.error()));
  EXPECT_EQ(n.load(), RestClient::kMaxRetries + 1);
  ASSERT_EQ(h.sleeps.size(), static_cast<size_t>(RestClient::kMaxRetries));
  for (size_t i = 1; i < h.sleeps.size(); ++i) {
    EXPECT_GE(h.sleeps[i] * 11 / 10 + std::chrono::milliseconds(1), h.sleeps[i - 1]);  // grows
    EXPECT_LE(h.sleeps[i], std::chrono::milliseconds(11'000));                         // capped
  }
}

TEST(RestClient, CreateIsNotRepeatedAfterA500) {
  std::atomic<int> n{0};
  Harness h([&](const httpd::Request&) {
    ++n;
    return Reply{500, {}, status_body(500, "InternalError", "kaput")};
  });
  auto r = h.io.run(h.client->create(claims(), "{}"));
  ASSERT_FALSE(r);
  EXPECT_EQ(n.load(), 1);
}

TEST(RestClient, ListAllFollowsContinueTokens) {
  Harness h([](const httpd::Request& r) {
    auto cont = r.query_param("continue").value_or("");
    EXPECT_EQ(r.query_param("limit"), "2");
    std::string next = cont.empty() ? "p2" : cont == "p2" ? "p3" : "";
    int base = cont.empty() ? 0 : cont == "p2" ? 2 : 4;
    std::string items;
    for (int i = base; i < base + (next.empty() ? 1 : 2); ++i) {
      if (!items.empty()) items += ",";
      items += R"({"metadata":{"name":"c)" + std::to_string(i) + R"(","namespace":"ns1"}})";
    }
    return Reply{
        200,
        {},
        R"({"kind":"ResourceClaimList","apiVersion":"resource.k8s.io/v1","metadata":{"resourceVersion":"99","continue":")" +
            next + R"("},"items":[)" + items + "]}"};
  });
  ListOptions o;
  o.limit = 2;
  auto all = h.io.run(h.client->list_all(claims(), o));
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->items.size(), 5u);
  EXPECT_EQ(all->items[4]->name(), "c4");
  EXPECT_EQ(all->resource_version, "99");
  EXPECT_EQ(h.log.size(), 3u);
}

TEST(RestClient, ListAllRestartsWhenTheContinueTokenExpires) {
  std::atomic<int> n{0};
  Harness h([&](const httpd::Request& r) {
    int i = n++;
    auto cont = r.query_param("continue").value_or("");
    if (i == 1) return Reply{410, {}, status_body(410, "Expired", "continue expired")};
    std::string next = cont.empty() ? "p2" : "";
    return Reply{
        200,
        {},
        R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5","continue":")" +
            next + R"("},"items":[{"metadata":{"name":"p)" + std::to_string(i) + R"("}}]})"};
  });
  auto all = h.io.run(h.client->list_all(claims()));
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(all->items.size(), 2u);  // the restarted list, not pages of two snapshots
  EXPECT_EQ(all->items[0]->name(), "p2");
}

TEST(RestClient, QpsLimiterSpacesRequestsAfterTheBurst) {
  FakeClock clock;
  Harness h([](const httpd::Request&) { return Reply{200, {}, R"({"metadata":{}})"}; });
  RestClientOptions o;
  o.qps = 5;
  o.burst = 10;
  o.clock = &clock;
  o.sleep = [&h](std::chrono::nanoseconds d) -> awaitable<void> {
    h.sleeps.push_back(d);
    co_return;
  };
  RestClient client(h.transport, o);
  for (int i = 0; i < 12; ++i)
    ASSERT_TRUE(h.io.run(client.get(claims("ns1", "c"))));
  ASSERT_EQ(h.sleeps.size(), 2u);  // the first 10 ride the burst
  EXPECT_EQ(h.sleeps[0], std::chrono::milliseconds(200));
  EXPECT_EQ(h.sleeps[1], std::chrono::milliseconds(400));
}

TEST(RestClient, WarningHeadersDoNotFailTheRequest) {
  Harness h([](const httpd::Request&) {
    return Reply{200,
                 {{"Content-Type", "application/json"}, {"Warning", "299 - \"unknown field\""}},
                 R"({"metadata":{"name":"c1"}})"};
  });
  EXPECT_TRUE(h.io.run(h.client->get(claims("ns1", "c1"))));
}

TEST(RestClient, TokensNeverReachTheLogsEvenAtHighVerbosity) {
  std::ostringstream out;
  log::init({log::Format::kText, 10}, std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  {
    Harness h([](const httpd::Request&) {
      return Reply{200, {}, R"({"metadata":{"name":"c1"}})"};
    });
    ASSERT_TRUE(h.io.run(h.client->get(claims("ns1", "c1"))));
  }
  log::init({});
  const std::string logs = out.str();
  EXPECT_NE(logs.find("Authorization: Bearer <redacted>"), std::string::npos) << logs;
  EXPECT_EQ(logs.find("s3cr3t-token"), std::string::npos) << logs;
}

}  // namespace
}  // namespace nvdra::k8s
