// Our own k8sclient against nvdra-sim's API server, over TLS, in one process.
#include "sim/api_server.h"

#include <gtest/gtest.h>

#include "k8sclient/cache/informer.h"
#include "k8sclient/rest/rest_client.h"
#include "k8sclient/rest/status.h"
#include "support/in_process_sim.h"

namespace nvdra::sim {
namespace {

using namespace std::chrono_literals;

using Sim = testing::InProcessSim;

using testing::configmaps;
using testing::watch_body;

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

TEST(SimApi, PodBindingSetsTheNodeOnceAndMarksThePodScheduled) {
  Sim sim;
  k8s::ResourceRef pods = configmaps();
  pods.resource = "pods";
  ASSERT_TRUE(sim.io.run(sim.client->create(
      pods,
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}})")));
  auto bind = [&](const std::string& pod, const std::string& body) {
    return sim.io.run(sim.client->raw("POST", "/api/v1/namespaces/default/pods/" + pod + "/binding",
                                      body, "application/json"));
  };
  const std::string to_a =
      R"({"apiVersion":"v1","kind":"Binding","metadata":{"name":"p"},"target":{"kind":"Node","name":"node-a"}})";
  auto r = bind("p", to_a);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 201);
  auto pod = sim.io.run(sim.client->get(pods.with_name("p")));
  ASSERT_TRUE(pod);
  auto doc = json::parse((*pod)->json());
  EXPECT_EQ(json::string_or(*json::find_path(*doc, {"spec"}), "nodeName"), "node-a");
  const json::Value* conds = json::find_path(*doc, {"status", "conditions"});
  ASSERT_TRUE(conds && conds->IsArray() && conds->Size() == 1);
  EXPECT_EQ(json::string_or((*conds)[0], "type"), "PodScheduled");
  EXPECT_EQ(json::string_or((*conds)[0], "status"), "True");

  auto again = bind("p", R"({"target":{"name":"node-b"}})");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().http_status, 409);
  EXPECT_NE(again.error().message.find(R"(pod p is already assigned to node "node-a")"),
            std::string::npos)
      << again.error().message;
  auto no_target = bind("p", R"({"target":{}})");
  ASSERT_FALSE(no_target);
  EXPECT_EQ(no_target.error().http_status, 422);
  EXPECT_NE(no_target.error().message.find("target.name"), std::string::npos);
  auto missing = bind("nope", R"({"target":{"name":"node-a"}})");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().http_status, 404);
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
  auto watched = watch_body(sim, o);
  ASSERT_TRUE(watched) << watched.error().message;
  const std::string& body = *watched;
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
  auto watched = watch_body(sim, o);
  ASSERT_TRUE(watched) << watched.error().message;
  const std::string& body = *watched;
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

TEST(SimApi, SelectedWatchSeesObjectsEnterAndLeaveTheSelection) {
  Sim sim;
  ASSERT_TRUE(sim.io.run(sim.client->create(configmaps(), cm("a", "1"))));
  auto start = sim.io.run(sim.client->list(configmaps(), k8s::ListOptions{}));
  ASSERT_TRUE(start);
  for (const char* team : {"\"x\"", "\"y\"", "\"x\"", "null"}) {  // in, out, in, out
    const std::string body = std::string(R"({"metadata":{"labels":{"team":)") + team + "}}}";
    ASSERT_TRUE(sim.io.run(sim.client->patch(configmaps("a"), k8s::PatchType::kMerge, body)));
  }
  k8s::ListOptions o;
  o.label_selector = "team=x";
  o.resource_version = start->resource_version;
  o.timeout_seconds = 1;
  auto watched = watch_body(sim, o);
  ASSERT_TRUE(watched) << watched.error().message;
  const std::string& body = *watched;
  std::vector<std::string> types;
  const std::string key = R"({"type":")";
  for (size_t p = 0; (p = body.find(key, p)) != std::string::npos; ++p)
    types.push_back(body.substr(p + key.size(), body.find('"', p + key.size()) - p - key.size()));
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "DELETED", "ADDED", "DELETED"}));
}

std::shared_ptr<k8s::RestClient> no_retry_client(Sim& sim) {
  k8s::TransportOptions topt;
  std::string err;
  k8s::parse_server_url(sim.server->url(true), &topt.endpoint, &err);
  topt.tls.ca_pem = sim.pki.ca.cert_pem;
  return std::make_shared<k8s::RestClient>(
      *k8s::make_beast_transport(sim.io.executor(), topt),
      k8s::RestClientOptions{
          .qps = 0, .token = k8s::TokenSource::fixed("admin"), .max_retries = 0});
}

TEST(SimFaults, ErrorRateAndClientQpsAnswerLikeTheRealServer) {
  Sim sim;
  auto client = no_retry_client(sim);
  Faults f;
  f.error_rate = 1;
  f.error_code = 500;
  sim.api->set_faults(f);
  auto r = sim.io.run(client->get(configmaps("x")));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status, 500);
  f.spare_admin = true;  // only the components under test see errors, not the operator
  sim.api->set_faults(f);
  EXPECT_TRUE(k8s::is_not_found(sim.io.run(client->get(configmaps("x"))).error()));
  f = Faults{};
  f.client_qps = 2;
  sim.api->set_faults(f);
  int throttled = 0;
  for (int i = 0; i < 6; ++i) {
    auto g = sim.io.run(client->get(configmaps("x")));
    if (!g && k8s::is_too_many_requests(g.error())) {
      ++throttled;
      EXPECT_EQ(g.error().retry_after, std::chrono::seconds(1));
    }
  }
  EXPECT_GE(throttled, 3);
  // Every injected answer is counted, so a test can tell the faults reached its components.
  EXPECT_GE(sim.api->faults().injected, throttled);
  // Through the admin endpoint, as tests and operators change them at run time.
  std::string body = R"({"errorRate":0,"clientQPS":0,"latencyMs":1})";
  std::string ct = "application/json";
  auto put = sim.io.run(client->raw("PUT", "/nvdra-sim/faults", body, ct));
  ASSERT_TRUE(put) << put.error().message;
  EXPECT_NE(put->body.find(R"("injected":)"), std::string::npos) << put->body;
  EXPECT_EQ(sim.api->faults().latency_ms, 1);
  EXPECT_TRUE(k8s::is_not_found(sim.io.run(client->get(configmaps("x"))).error()));
  std::string bad = R"({"errorRate":7})";
  auto rejected = sim.io.run(client->raw("PUT", "/nvdra-sim/faults", bad, ct));
  ASSERT_FALSE(rejected);
  EXPECT_TRUE(k8s::is_bad_request(rejected.error()));
}

TEST(SimFaults, InformerConvergesWhileWatchesKeepDropping) {
  Sim sim;
  Faults f;
  f.watch_close_seconds = 0.1;
  sim.api->set_faults(f);
  auto lw = std::make_shared<k8s::RestListerWatcher>(sim.client, configmaps());
  k8s::ReflectorOptions opts;
  opts.backoff_initial = 1ms;
  opts.backoff_cap = 10ms;
  k8s::Informer inf(lw, opts);
  Cancellation cancel;
  auto done = sim.io.spawn(inf.run(&cancel));
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(sim.io.run(sim.client->create(configmaps(), cm("c" + std::to_string(i), "1"))));
    std::this_thread::sleep_for(10ms);
  }
  for (int i = 0; i < 300 && inf.store().size() < 30; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(inf.store().size(), 30u);
  EXPECT_GE(inf.reflector().stats().watches.load(), 2);  // it really was cut and resumed
  cancel.cancel();
  done.wait();
}

}  // namespace
}  // namespace nvdra::sim

namespace nvdra::sim {
namespace {

// Creates objects through the admin client.
void apply(Sim& sim, const std::string& group, const std::string& resource, const std::string& ns,
           const std::string& body) {
  auto st = sim.create(group, resource, ns, body);
  ASSERT_TRUE(st) << st.error().message;
}

std::string token_for(Sim& sim, const std::string& ns, const std::string& name) {
  k8s::ResourceRef r;
  r.resource = "serviceaccounts";
  r.namespace_ = ns;
  r.name = name;
  r.subresource = "token";
  std::string body = R"({"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{}})";
  std::string ct = "application/json";
  auto res = sim.io.run(sim.client->raw("POST", r.path(), body, ct));
  EXPECT_TRUE(res) << (res ? "" : res.error().message);
  auto doc = json::parse(res->body);
  return std::string(json::string_or(*json::find(*doc, "status"), "token"));
}

TEST(SimRbac, ServiceAccountsGetExactlyWhatTheirRolesGrant) {
  Sim sim;
  apply(sim, "", "serviceaccounts", "default",
        R"({"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"agent"}})");
  apply(
      sim, "rbac.authorization.k8s.io", "roles", "default",
      R"({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"cm-reader"},"rules":[{"apiGroups":[""],"resources":["configmaps"],"verbs":["get","list","watch"]}]})");
  apply(
      sim, "rbac.authorization.k8s.io", "rolebindings", "default",
      R"({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"agent-reads"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"cm-reader"},"subjects":[{"kind":"ServiceAccount","name":"agent","namespace":"default"}]})");
  apply(
      sim, "rbac.authorization.k8s.io", "clusterroles", "",
      R"({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"slices"},"rules":[{"apiGroups":["resource.k8s.io"],"resources":["resourceslices"],"verbs":["*"]}]})");
  apply(
      sim, "rbac.authorization.k8s.io", "clusterrolebindings", "",
      R"({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"agent-slices"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"slices"},"subjects":[{"kind":"ServiceAccount","name":"agent","namespace":"default"}]})");
  ASSERT_TRUE(sim.io.run(sim.client->create(configmaps(), cm("a", "1"))));

  auto agent = sim.make_client(token_for(sim, "default", "agent"));
  EXPECT_TRUE(sim.io.run(agent->get(configmaps("a"))));
  EXPECT_TRUE(sim.io.run(agent->list(configmaps(), k8s::ListOptions{})));
  auto denied = sim.io.run(agent->create(configmaps(), cm("b", "1")));
  ASSERT_FALSE(denied);
  EXPECT_TRUE(k8s::is_forbidden(denied.error()));
  EXPECT_NE(
      denied.error().message.find(
          "User \"system:serviceaccount:default:agent\" cannot create resource \"configmaps\""),
      std::string::npos)
      << denied.error().message;
  k8s::ResourceRef slices;
  slices.group = "resource.k8s.io";
  slices.version = "v1";
  slices.resource = "resourceslices";
  EXPECT_TRUE(sim.io.run(agent->list(slices, k8s::ListOptions{})));
  k8s::ResourceRef secrets = configmaps();
  secrets.resource = "secrets";
  EXPECT_TRUE(k8s::is_forbidden(sim.io.run(agent->list(secrets, k8s::ListOptions{})).error()));
  // Forged or revoked tokens are not accepted.
  auto forged = sim.make_client(token_for(sim, "default", "agent") + "0");
  EXPECT_TRUE(k8s::is_unauthorized(sim.io.run(forged->get(configmaps("a"))).error()));
  k8s::ResourceRef sa = configmaps("agent");
  sa.resource = "serviceaccounts";
  ASSERT_TRUE(sim.io.run(sim.client->remove(sa)));
  EXPECT_TRUE(k8s::is_unauthorized(sim.io.run(agent->get(configmaps("a"))).error()));
}

// Query parameters as kube-apiserver decodes and validates them (k8s_diff_test.py's query.*,
// bad.*, list.* and delete.* checks).
const std::string kConfigMaps = "/api/v1/namespaces/default/configmaps";

struct Answer {
  int status = 0;
  std::string reason, details_group, details_kind, body;
  std::vector<ErrorCause> causes;
};

Answer ask(Sim& sim, const std::string& method, const std::string& target,
           const std::string& body = "", const std::string& ct = "application/json") {
  auto r = sim.io.run(sim.client->raw(method, target, body, body.empty() ? "" : ct));
  Answer a;
  if (r) {
    a.status = r->status;
    a.body = r->body;
  } else {
    a.status = r.error().http_status;
    a.reason = r.error().reason;
    a.details_group = r.error().details_group;
    a.details_kind = r.error().details_kind;
    a.causes = r.error().causes;
    a.body = r.error().message;
  }
  return a;
}

TEST(SimQuery, BooleansAreReadAsKubeApiserverReadsThem) {
  Sim sim;
  ASSERT_TRUE(sim.create("", "configmaps", "default", cm("w", "1")));
  // Only "0" and "false" in any case are false: "t", "True", "yes" watch as "true" does.
  for (std::string v : {"1", "t", "T", "True", "TRUE", "yes"}) {
    auto a = ask(sim, "GET", kConfigMaps + "?watch=" + v + "&timeoutSeconds=1");
    EXPECT_EQ(a.status, 200) << v;
    EXPECT_TRUE(a.body.starts_with(R"({"type":"ADDED")")) << v << ": " << a.body.substr(0, 80);
  }
  for (std::string v : {"0", "false", "False", "FALSE"}) {
    auto a = ask(sim, "GET", kConfigMaps + "?watch=" + v);
    EXPECT_EQ(a.status, 200) << v;
    EXPECT_NE(a.body.find(R"("kind":"ConfigMapList")"), std::string::npos) << v;
  }
  // force=True forces an apply past a conflict.
  const std::string apply = "application/apply-patch+yaml";
  auto one =
      ask(sim, "PATCH", kConfigMaps + "/ssa?fieldManager=one",
          "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"1\"\n", apply);
  EXPECT_EQ(one.status, 201) << one.body;  // created by the apply
  const std::string two =
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"2\"\n";
  EXPECT_EQ(ask(sim, "PATCH", kConfigMaps + "/ssa?fieldManager=two", two, apply).status, 409);
  auto forced = ask(sim, "PATCH", kConfigMaps + "/ssa?fieldManager=two&force=True", two, apply);
  EXPECT_EQ(forced.status, 200) << forced.body;
  EXPECT_NE(forced.body.find(R"("a":"2")"), std::string::npos) << forced.body;
}

TEST(SimQuery, BadOptionsAreRefusedLikeKubeApiserver) {
  Sim sim;
  for (std::string n : {"del1", "del2", "del3"})
    ASSERT_TRUE(sim.create("", "configmaps", "default", cm(n, "1")));
  struct Case {
    std::string method, target, body;
    int status;
    std::string reason, kind, cause_reason, cause_field;
  };
  const std::vector<Case> cases = {
      {"POST", kConfigMaps + "?fieldValidation=Bogus", cm("a", "1"), 422, "Invalid",
       "CreateOptions", "FieldValueNotSupported", "fieldValidation"},
      {"POST", kConfigMaps + "?dryRun=Bogus", cm("dr", "1"), 422, "Invalid", "CreateOptions",
       "FieldValueNotSupported", "dryRun"},
      {"POST", kConfigMaps + "?fieldManager=" + std::string(200, 'm'), cm("fm", "1"), 422,
       "Invalid", "CreateOptions", "FieldValueTooLong", "fieldManager"},
      {"PUT", kConfigMaps + "/del3?dryRun=Bogus", cm("del3", "2"), 422, "Invalid", "UpdateOptions",
       "FieldValueNotSupported", "dryRun"},
      {"DELETE", kConfigMaps + "/del1?propagationPolicy=Bogus", "", 422, "Invalid", "DeleteOptions",
       "FieldValueNotSupported", "propagationPolicy"},
      {"DELETE", kConfigMaps + "/del1?dryRun=Bogus", "", 422, "Invalid", "DeleteOptions",
       "FieldValueNotSupported", "dryRun"},
      {"DELETE", kConfigMaps + "/del2?gracePeriodSeconds=abc", "", 400, "BadRequest", "", "", ""},
      {"GET", kConfigMaps + "?limit=abc", "", 400, "BadRequest", "", "", ""},
      {"GET", kConfigMaps + "?resourceVersion=0&resourceVersionMatch=Bogus", "", 422, "Invalid",
       "ListOptions", "FieldValueNotSupported", "resourceVersionMatch"},
      {"GET", kConfigMaps + "?resourceVersionMatch=Exact", "", 422, "Invalid", "ListOptions",
       "FieldValueForbidden", "resourceVersionMatch"},
      {"GET", kConfigMaps + "?resourceVersion=0&sendInitialEvents=true", "", 422, "Invalid",
       "ListOptions", "FieldValueForbidden", "sendInitialEvents"},
      {"GET", kConfigMaps + "?watch=true&sendInitialEvents=true&allowWatchBookmarks=true", "", 422,
       "Invalid", "ListOptions", "FieldValueForbidden", "resourceVersionMatch"},
      {"GET", kConfigMaps + "?watch=true&resourceVersionMatch=NotOlderThan", "", 422, "Invalid",
       "ListOptions", "FieldValueForbidden", "resourceVersionMatch"},
  };
  for (const auto& c : cases) {
    auto a = ask(sim, c.method, c.target, c.body);
    const std::string what = c.method + " " + c.target.substr(0, 100);
    EXPECT_EQ(a.status, c.status) << what << ": " << a.body;
    EXPECT_EQ(a.reason, c.reason) << what;
    EXPECT_EQ(a.details_kind, c.kind) << what;
    if (!c.kind.empty()) {
      EXPECT_EQ(a.details_group, "meta.k8s.io") << what;
    }
    if (c.cause_reason.empty()) {
      EXPECT_TRUE(a.causes.empty()) << what;
    } else {
      ASSERT_EQ(a.causes.size(), 1u) << what << ": " << a.body;
      EXPECT_EQ(a.causes[0].reason, c.cause_reason) << what;
      EXPECT_EQ(a.causes[0].field, c.cause_field) << what;
    }
  }
  // Nothing was written or deleted.
  for (std::string n : {"a", "dr", "fm"})
    EXPECT_EQ(ask(sim, "GET", kConfigMaps + "/" + n).status, 404) << n;
  for (std::string n : {"del1", "del2", "del3"})
    EXPECT_EQ(ask(sim, "GET", kConfigMaps + "/" + n).status, 200) << n;
  // Good values still pass.
  EXPECT_EQ(ask(sim, "POST",
                kConfigMaps + "?fieldValidation=Strict&fieldManager=" + std::string(128, 'm'),
                cm("ok", "1"))
                .status,
            201);
  EXPECT_EQ(
      ask(sim, "GET", kConfigMaps + "?resourceVersion=0&resourceVersionMatch=NotOlderThan").status,
      200);
  EXPECT_EQ(ask(sim, "DELETE", kConfigMaps + "/del1?propagationPolicy=Foreground").status, 200);
  EXPECT_EQ(ask(sim, "DELETE", kConfigMaps + "/del2?gracePeriodSeconds=0").status, 200);
  // An apply without a fieldManager is a 422 too, and force belongs to apply only.
  auto no_manager =
      ask(sim, "PATCH", kConfigMaps + "/del3", "data: {}\n", "application/apply-patch+yaml");
  EXPECT_EQ(no_manager.status, 422) << no_manager.body;
  EXPECT_EQ(no_manager.details_kind, "PatchOptions");
  ASSERT_EQ(no_manager.causes.size(), 1u);
  EXPECT_EQ(no_manager.causes[0].reason, "FieldValueRequired");
  EXPECT_EQ(no_manager.causes[0].field, "fieldManager");
  auto forced_merge = ask(sim, "PATCH", kConfigMaps + "/del3?force=true", R"({"data":{}})",
                          "application/merge-patch+json");
  EXPECT_EQ(forced_merge.status, 422) << forced_merge.body;
  ASSERT_EQ(forced_merge.causes.size(), 1u);
  EXPECT_EQ(forced_merge.causes[0].field, "force");
}

TEST(SimQuery, PutMayNotNameAnotherObject) {
  Sim sim;
  ASSERT_TRUE(sim.create("", "configmaps", "default", cm("a", "1")));
  auto other = ask(sim, "PUT", kConfigMaps + "/a", cm("b", "2"));
  EXPECT_EQ(other.status, 400) << other.body;
  EXPECT_EQ(other.reason, "BadRequest");
  auto missing = ask(sim, "PUT", kConfigMaps + "/other", cm("a", "2"));
  EXPECT_EQ(missing.status, 400) << missing.body;
  auto ns =
      ask(sim, "PUT", kConfigMaps + "/a",
          R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"x"}})");
  EXPECT_EQ(ns.status, 400) << ns.body;
  auto same = ask(sim, "PUT", kConfigMaps + "/a", cm("a", "3"));
  EXPECT_EQ(same.status, 200) << same.body;
}

TEST(SimQuery, DeleteAnswersAStatusWhenTheObjectIsGone) {
  Sim sim;
  ASSERT_TRUE(sim.create("", "configmaps", "default", cm("a", "1")));
  auto gone = ask(sim, "DELETE", kConfigMaps + "/a");
  EXPECT_EQ(gone.status, 200);
  auto doc = json::parse(gone.body);
  ASSERT_TRUE(doc) << gone.body;
  EXPECT_EQ(json::string_or(*doc, "kind"), "Status");
  EXPECT_EQ(json::string_or(*doc, "status"), "Success");
  const json::Value* details = json::find(*doc, "details");
  ASSERT_TRUE(details) << gone.body;
  EXPECT_EQ(json::string_or(*details, "name"), "a");
  EXPECT_EQ(json::string_or(*details, "kind"), "configmaps");  // the resource, as kube-apiserver
  EXPECT_FALSE(json::string_or(*details, "uid").empty());
  // An object its finalizers keep is answered as it now is.
  ASSERT_TRUE(sim.create(
      "", "configmaps", "default",
      R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"f","finalizers":["x.io/y"]}})"));
  auto kept = ask(sim, "DELETE", kConfigMaps + "/f");
  EXPECT_EQ(kept.status, 200);
  EXPECT_NE(kept.body.find(R"("kind":"ConfigMap")"), std::string::npos) << kept.body;
  EXPECT_NE(kept.body.find("deletionTimestamp"), std::string::npos) << kept.body;
  // Pods answer with the deleted object (ReturnDeletedObject).
  ASSERT_TRUE(sim.create(
      "", "pods", "default",
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}})"));
  auto pod = ask(sim, "DELETE", "/api/v1/namespaces/default/pods/p");
  EXPECT_EQ(pod.status, 200);
  EXPECT_NE(pod.body.find(R"("kind":"Pod")"), std::string::npos) << pod.body;
}

TEST(SimQuery, OpenApiV3OnlyForServedGroupVersions) {
  Sim sim;
  EXPECT_EQ(ask(sim, "GET", "/openapi/v3/api/v1").status, 200);
  EXPECT_EQ(ask(sim, "GET", "/openapi/v3/apis/resource.k8s.io/v1").status, 200);
  EXPECT_EQ(ask(sim, "GET", "/openapi/v3/apis/nope.example.com/v1").status, 404);
  EXPECT_EQ(ask(sim, "GET", "/openapi/v3/apis/resource.k8s.io/v9").status, 404);
}

TEST(SimQuery, StatusDetailsNameWhatKubeApiserverNames) {
  Sim sim;
  auto invalid = ask(sim, "POST", kConfigMaps, cm("Not_Valid", "1"));
  EXPECT_EQ(invalid.status, 422);
  EXPECT_EQ(invalid.details_kind, "ConfigMap");  // NewInvalid: the kind
  auto no_ns = ask(sim, "POST", "/api/v1/namespaces/nope/configmaps", cm("x", "1"));
  EXPECT_EQ(no_ns.status, 404);
  EXPECT_EQ(no_ns.details_kind, "namespaces");
  ASSERT_TRUE(sim.create("", "configmaps", "default", cm("a", "1")));
  auto pre = ask(sim, "DELETE", kConfigMaps + "/a",
                 R"({"preconditions":{"uid":"00000000-0000-0000-0000-000000000000"}})");
  EXPECT_EQ(pre.status, 409);
  EXPECT_EQ(pre.details_kind, "ConfigMap");  // BeforeDelete: GroupResource{group, Kind}
  EXPECT_EQ(ask(sim, "GET", kConfigMaps + "/a").status, 200);
  ASSERT_TRUE(sim.create(
      "", "pods", "default",
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}})"));
  const std::string bind = R"({"target":{"name":"node-a"}})";
  EXPECT_EQ(ask(sim, "POST", "/api/v1/namespaces/default/pods/p/binding", bind).status, 201);
  auto twice = ask(sim, "POST", "/api/v1/namespaces/default/pods/p/binding", bind);
  EXPECT_EQ(twice.status, 409);
  EXPECT_EQ(twice.details_kind, "pods/binding");
}

TEST(SimQuery, FinalizersAndTerminatingNamespacesAnswerWithTheirCauses) {
  Sim sim;
  ASSERT_TRUE(sim.create("", "namespaces", "",
                         R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"t"}})"));
  const std::string cms = "/api/v1/namespaces/t/configmaps";
  ASSERT_EQ(
      ask(sim, "POST", cms,
          R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fin","finalizers":["x.io/a"]}})")
          .status,
      201);
  EXPECT_EQ(ask(sim, "DELETE", "/api/v1/namespaces/t").status, 200);
  auto fin = ask(sim, "GET", cms + "/fin");
  ASSERT_EQ(fin.status, 200);
  EXPECT_NE(fin.body.find("deletionTimestamp"), std::string::npos) << fin.body;
  // No new finalizers on an object being deleted: Forbidden, as ValidateNoNewFinalizers.
  auto doc = json::parse(fin.body);
  ASSERT_TRUE(doc);
  json::Value& finalizers = (*doc)["metadata"]["finalizers"];
  finalizers.PushBack(json::Value("x.io/b", doc->GetAllocator()), doc->GetAllocator());
  auto added = ask(sim, "PUT", cms + "/fin", json::write(*doc));
  EXPECT_EQ(added.status, 422) << added.body;
  ASSERT_EQ(added.causes.size(), 1u);
  EXPECT_EQ(added.causes[0].reason, "FieldValueForbidden");
  EXPECT_EQ(added.causes[0].field, "metadata.finalizers");
  // Nothing new in a terminating namespace.
  auto created = ask(sim, "POST", cms, cm("x", "1"));
  EXPECT_EQ(created.status, 403) << created.body;
  EXPECT_EQ(created.details_kind, "configmaps");
  ASSERT_EQ(created.causes.size(), 1u);
  EXPECT_EQ(created.causes[0].reason, "NamespaceTerminating");
  EXPECT_EQ(created.causes[0].field, "metadata.namespace");
}

TEST(SimQuery, CustomResourcesRefuseStrategicMergePatches) {
  Sim sim;
  auto crd = ask(
      sim, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
      R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.example.com"},"spec":{"group":"example.com","scope":"Namespaced","names":{"plural":"widgets","singular":"widget","kind":"Widget"},"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","properties":{"spec":{"type":"object","properties":{"size":{"type":"integer"}}}}}}}]}})");
  ASSERT_EQ(crd.status, 201) << crd.body;
  const std::string widgets = "/apis/example.com/v1/namespaces/default/widgets";
  auto created = ask(
      sim, "POST", widgets,
      R"({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":1}})");
  ASSERT_EQ(created.status, 201) << created.body;
  auto smp = ask(sim, "PATCH", widgets + "/w", R"({"metadata":{"labels":{"a":"b"}}})",
                 "application/strategic-merge-patch+json");
  EXPECT_EQ(smp.status, 415) << smp.body;
  EXPECT_EQ(smp.reason, "UnsupportedMediaType");
  auto merge = ask(sim, "PATCH", widgets + "/w", R"({"metadata":{"labels":{"a":"b"}}})",
                   "application/merge-patch+json");
  EXPECT_EQ(merge.status, 200) << merge.body;
  // Built-in types keep them.
  ASSERT_TRUE(sim.create("", "configmaps", "default", cm("a", "1")));
  EXPECT_EQ(ask(sim, "PATCH", kConfigMaps + "/a", R"({"data":{"b":"2"}})",
                "application/strategic-merge-patch+json")
                .status,
            200);
}

TEST(SimQuery, ResourceVersionZeroListsIgnoreTheLimit) {
  Sim sim;
  for (std::string n : {"a", "b", "c"})
    ASSERT_TRUE(sim.create("", "configmaps", "default", cm(n, "1")));
  auto paged = ask(sim, "GET", kConfigMaps + "?limit=2");
  ASSERT_EQ(paged.status, 200);
  auto doc = json::parse(paged.body);
  ASSERT_TRUE(doc);
  EXPECT_EQ((*doc)["items"].Size(), 2u);
  auto cached = ask(sim, "GET", kConfigMaps + "?limit=2&resourceVersion=0");
  ASSERT_EQ(cached.status, 200);
  doc = json::parse(cached.body);
  ASSERT_TRUE(doc);
  EXPECT_EQ((*doc)["items"].Size(), 3u);
  EXPECT_EQ(cached.body.find("continue"), std::string::npos);
}

}  // namespace
}  // namespace nvdra::sim
