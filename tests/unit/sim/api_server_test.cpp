// Our own k8sclient against nvdra-sim's API server, over TLS, in one process.
#include "sim/api_server.h"

#include <gtest/gtest.h>

#include "k8sclient/cache/informer.h"
#include "k8sclient/rest/rest_client.h"
#include "k8sclient/rest/status.h"
#include "support/test_server.h"

namespace nvdra::sim {
namespace {

using namespace std::chrono_literals;

struct Sim {
  testing::IoThread io;
  ResourceRegistry registry;
  Store store;
  testing::TestPki pki = testing::TestPki::make();
  std::unique_ptr<ApiServer> api;
  std::unique_ptr<testing::TestServer> server;
  std::shared_ptr<k8s::RestClient> client;

  explicit Sim(std::chrono::milliseconds bookmarks = 60s) {
    auto ns = json::parse(R"({"metadata":{"name":"default"}})");
    EXPECT_TRUE(store.create(*registry.find("", "v1", "namespaces"), "", std::move(*ns)));
    api = std::make_unique<ApiServer>(
        store, registry, ApiServerOptions{.admin_token = "admin", .bookmark_interval = bookmarks});
    server = std::make_unique<testing::TestServer>(
        io, [this](const httpd::Request& r, httpd::ResponseWriter& w) { return api->handle(r, w); },
        httpd::TlsServerConfig{pki.server.cert_pem, pki.server.key_pem, ""});
    client = make_client("admin");
  }
  std::shared_ptr<k8s::RestClient> make_client(const std::string& token) {
    k8s::RestConfig cfg;
    cfg.server = server->url(true);
    std::string err;
    k8s::parse_server_url(cfg.server, &cfg.endpoint, &err);
    cfg.tls.ca_pem = pki.ca.cert_pem;
    cfg.token = k8s::TokenSource::fixed(token);
    cfg.qps = 0;
    return *k8s::RestClient::create(io.executor(), cfg);
  }
};

k8s::ResourceRef configmaps(std::string name = "") {
  k8s::ResourceRef r;
  r.resource = "configmaps";
  r.namespace_ = "default";
  r.name = std::move(name);
  return r;
}

std::string cm(const std::string& name, const std::string& v) {
  return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name +
         R"("},"data":{"v":")" + v + "\"}}";
}

TEST(SimApi, BadTokenIs401) {
  Sim sim;
  auto bad = sim.make_client("nope");
  auto r = sim.io.run(bad->get(configmaps("x")));
  ASSERT_FALSE(r);
  EXPECT_TRUE(k8s::is_unauthorized(r.error()));
}

TEST(SimApi, CrudAndStatusErrors) {
  Sim sim;
  auto created = sim.io.run(sim.client->create(configmaps(), cm("a", "1")));
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_TRUE(
      k8s::is_already_exists(sim.io.run(sim.client->create(configmaps(), cm("a", "1"))).error()));
  auto got = sim.io.run(sim.client->get(configmaps("a")));
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)->uid(), (*created)->uid());
  EXPECT_TRUE(k8s::is_not_found(sim.io.run(sim.client->get(configmaps("zzz"))).error()));
  // A stale resourceVersion in a merge patch is a conflict.
  std::string stale = R"({"metadata":{"resourceVersion":"1"},"data":{"v":"2"}})";
  auto c = sim.io.run(sim.client->patch(configmaps("a"), k8s::PatchType::kMerge, stale));
  ASSERT_FALSE(c);
  EXPECT_TRUE(k8s::is_conflict(c.error()));
  auto inv = sim.io.run(sim.client->create(configmaps(), cm("Not_Valid", "1")));
  ASSERT_FALSE(inv);
  EXPECT_TRUE(k8s::is_invalid(inv.error()));
  ASSERT_EQ(inv.error().causes.size(), 1u);
  EXPECT_EQ(inv.error().causes[0].field, "metadata.name");
  auto garbage = sim.io.run(sim.client->create(configmaps(), "{not json"));
  ASSERT_FALSE(garbage);
  EXPECT_TRUE(k8s::is_bad_request(garbage.error()));
  auto removed = sim.io.run(sim.client->remove(configmaps("a")));
  ASSERT_TRUE(removed);
  EXPECT_TRUE(k8s::is_not_found(sim.io.run(sim.client->get(configmaps("a"))).error()));
}

TEST(SimApi, InformerSyncsAndFollowsChanges) {
  Sim sim;
  ASSERT_TRUE(sim.io.run(sim.client->create(configmaps(), cm("a", "1"))));
  auto lw = std::make_shared<k8s::RestListerWatcher>(sim.client, configmaps());
  k8s::ReflectorOptions opts;
  opts.backoff_initial = 1ms;
  k8s::Informer inf(lw, opts);
  std::mutex mu;
  std::vector<std::string> seen;
  inf.add_handlers({[&](const k8s::ObjectPtr& o) {
                      std::lock_guard l(mu);
                      seen.push_back("add " + std::string(o->name()));
                    },
                    [&](const k8s::ObjectPtr&, const k8s::ObjectPtr& o) {
                      std::lock_guard l(mu);
                      seen.push_back("update " + std::string(o->name()));
                    },
                    [&](const k8s::ObjectPtr& o) {
                      std::lock_guard l(mu);
                      seen.push_back("delete " + std::string(o->name()));
                    }});
  Cancellation cancel;
  auto done = sim.io.spawn(inf.run(&cancel));
  auto wait_for = [&](size_t n) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard l(mu);
        if (seen.size() >= n) return true;
      }
      std::this_thread::sleep_for(5ms);
    }
    return false;
  };
  ASSERT_TRUE(wait_for(1));
  EXPECT_TRUE(inf.has_synced());
  ASSERT_TRUE(sim.io.run(sim.client->create(configmaps(), cm("b", "1"))));
  ASSERT_TRUE(sim.io.run(
      sim.client->patch(configmaps("a"), k8s::PatchType::kMerge, R"({"data":{"v":"2"}})")));
  ASSERT_TRUE(sim.io.run(sim.client->remove(configmaps("b"))));
  ASSERT_TRUE(wait_for(4));
  // The watch drops and the server refuses the resume as too old: the informer relists.
  sim.api->force_gone_on_resume(1);
  sim.server->drop_connections();
  for (int i = 0; i < 400 && inf.reflector().stats().relists_after_gone.load() == 0; ++i) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_GE(inf.reflector().stats().relists_after_gone.load(), 1)
      << "watches " << inf.reflector().stats().watches.load() << " watch-lists "
      << inf.reflector().stats().watch_lists.load();
  ASSERT_TRUE(sim.io.run(sim.client->create(configmaps(), cm("c", "1"))));
  ASSERT_TRUE(wait_for(5));
  EXPECT_EQ(inf.reflector().stats().watch_lists.load(), 2);  // the sim supports watch-list
  cancel.cancel();
  done.wait();
  std::lock_guard l(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"add a", "add b", "update a", "delete b", "add c"}));
}

TEST(SimApi, WatchFromAnOldResourceVersionGetsGone) {
  Sim sim;
  ASSERT_TRUE(sim.io.run(sim.client->create(configmaps(), cm("a", "1"))));
  sim.store.compact_history();
  k8s::ListOptions o;
  o.resource_version = "1";
  o.timeout_seconds = 1;
  std::string body;
  Cancellation cancel;
  auto st = sim.io.run(sim.client->watch(
      configmaps(), o,
      [&](std::string_view b) {
        body.append(b);
        return true;
      },
      &cancel));
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_NE(body.find("\"ERROR\""), std::string::npos);
  EXPECT_NE(body.find("\"code\":410"), std::string::npos);
}

TEST(SimApi, WatchListSendsInitialEventsThenABookmark) {
  Sim sim(50ms);
  ASSERT_TRUE(sim.io.run(sim.client->create(configmaps(), cm("a", "1"))));
  k8s::ListOptions o;
  o.send_initial_events = true;
  o.resource_version_match = "NotOlderThan";
  o.resource_version = "";
  o.allow_watch_bookmarks = true;
  o.timeout_seconds = 1;
  std::string body;
  auto st = sim.io.run(sim.client->watch(
      configmaps(), o,
      [&](std::string_view b) {
        body.append(b);
        return true;
      },
      nullptr));
  ASSERT_TRUE(st) << st.error().message;
  size_t added = body.find("\"ADDED\"");
  size_t end = body.find("k8s.io/initial-events-end");
  ASSERT_NE(added, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  EXPECT_LT(added, end);
  // Without resourceVersionMatch the request is refused as kube-apiserver does.
  o.resource_version_match.clear();
  auto bad = sim.io.run(sim.client->watch(
      configmaps(), o, [](std::string_view) { return true; }, nullptr));
  ASSERT_FALSE(bad);
  EXPECT_TRUE(k8s::is_invalid(bad.error()));
}

}  // namespace
}  // namespace nvdra::sim
