// RBAC in nvdra-sim's API server: scoping of URLs, escalation prevention, and validation of
// the RBAC kinds on write (issue 17).
#include "sim/rbac.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "k8sclient/rest/status.h"
#include "sim/auth.h"
#include "support/in_process_sim.h"

namespace nvdra::sim {
namespace {

using Sim = testing::InProcessSim;
const std::string kRbac = "rbac.authorization.k8s.io";
const std::string kApis = "/apis/rbac.authorization.k8s.io/v1";

// The HTTP status of a raw request (200.. on success, the Status code on failure).
int status_of(const Result<k8s::HttpResponse>& r) {
  return r ? r->status : r.error().http_status;
}

std::string message_of(const Result<k8s::HttpResponse>& r) {
  return r ? r->body : r.error().message;
}

Result<k8s::HttpResponse> send(Sim& sim, k8s::RestClient& c, const std::string& method,
                               const std::string& path, const std::string& body = "",
                               const std::string& ct = "application/json") {
  return sim.io.run(c.raw(method, path, body, ct));
}

std::string role(const std::string& kind, const std::string& name, const std::string& rules) {
  return R"({"apiVersion":"rbac.authorization.k8s.io/v1","kind":")" + kind +
         R"(","metadata":{"name":")" + name + R"("},"rules":)" + rules + "}";
}

std::string binding(const std::string& kind, const std::string& name, const std::string& ref_kind,
                    const std::string& ref_name, const std::string& sa_ns, const std::string& sa) {
  return R"({"apiVersion":"rbac.authorization.k8s.io/v1","kind":")" + kind +
         R"(","metadata":{"name":")" + name +
         R"("},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":")" + ref_kind +
         R"(","name":")" + ref_name + R"("},"subjects":[{"kind":"ServiceAccount","name":")" + sa +
         R"(","namespace":")" + sa_ns + R"("}]})";
}

constexpr std::string_view kEverything = R"([{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}])";

// Every ordinary verb on everything, but not `bind` or `escalate` (a `*` verb includes those, in
// Kubernetes as here, and with them the right to grant what one does not hold).
constexpr std::string_view kNamespaceAdmin =
    R"([{"apiGroups":["*"],"resources":["*"],"verbs":["get","list","watch","create","update","patch","delete"]}])";

// A namespace "team" whose service account "boss" administers it through a Role, as the
// issue's namespace admin.
struct TeamSim : Sim {
  std::shared_ptr<k8s::RestClient> boss;
  TeamSim() {
    EXPECT_TRUE(create("", "namespaces", "", R"({"metadata":{"name":"team"}})"));
    EXPECT_TRUE(
        create(kRbac, "roles", "team", role("Role", "admin", std::string(kNamespaceAdmin))));
    EXPECT_TRUE(create(kRbac, "rolebindings", "team",
                       binding("RoleBinding", "boss-admin", "Role", "admin", "team", "boss")));
    boss = service_account_client("team", "boss");
  }
};

TEST(SimRbac, ClusterScopedTypesHaveNoNamespacedUrls) {
  TeamSim sim;
  // The issue's bypass: a ClusterRole and a ClusterRoleBinding written through the namespace.
  auto cr = send(sim, *sim.boss, "POST", kApis + "/namespaces/team/clusterroles",
                 role("ClusterRole", "all", std::string(kEverything)));
  EXPECT_EQ(status_of(cr), 404) << message_of(cr);
  auto crb =
      send(sim, *sim.boss, "POST", kApis + "/namespaces/team/clusterrolebindings",
           binding("ClusterRoleBinding", "mine", "ClusterRole", "cluster-admin", "team", "boss"));
  EXPECT_EQ(status_of(crb), 404) << message_of(crb);
  EXPECT_EQ(status_of(send(sim, *sim.boss, "GET", "/api/v1/namespaces/team/nodes")), 404);
  EXPECT_EQ(status_of(send(sim, *sim.client, "GET", "/api/v1/namespaces/team/nodes")), 404);
  // Cluster-wide URLs of namespaced types list (with the permission), but do not create.
  EXPECT_EQ(status_of(send(sim, *sim.client, "GET", "/api/v1/configmaps")), 200);
  auto no_ns = send(sim, *sim.client, "POST", "/api/v1/configmaps",
                    R"({"metadata":{"name":"x","namespace":"team"}})");
  EXPECT_EQ(status_of(no_ns), 405) << message_of(no_ns);
  EXPECT_EQ(status_of(send(sim, *sim.boss, "GET", "/api/v1/configmaps")), 403);
}

TEST(SimRbac, ANamespaceAdminGrantsOnlyWhatItHolds) {
  TeamSim sim;
  // Within its namespace it may hand out what it holds.
  auto sub =
      send(sim, *sim.boss, "POST", kApis + "/namespaces/team/roles",
           role("Role", "pods", R"([{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}])"));
  EXPECT_EQ(status_of(sub), 201) << message_of(sub);
  auto own = send(sim, *sim.boss, "POST", kApis + "/namespaces/team/rolebindings",
                  binding("RoleBinding", "pods", "Role", "pods", "team", "boss"));
  EXPECT_EQ(status_of(own), 201) << message_of(own);
  // cluster-admin also grants non-resource URLs, which it does not hold.
  ASSERT_TRUE(sim.create(
      kRbac, "clusterroles", "",
      role(
          "ClusterRole", "cluster-admin",
          R"([{"apiGroups":["*"],"resources":["*"],"verbs":["*"]},{"nonResourceURLs":["*"],"verbs":["*"]}])")));
  auto esc = send(sim, *sim.boss, "POST", kApis + "/namespaces/team/rolebindings",
                  binding("RoleBinding", "up", "ClusterRole", "cluster-admin", "team", "boss"));
  EXPECT_EQ(status_of(esc), 403) << message_of(esc);
  EXPECT_NE(message_of(esc).find("is attempting to grant RBAC permissions not currently held"),
            std::string::npos)
      << message_of(esc);
  EXPECT_NE(message_of(esc).find(R"({NonResourceURLs:["*"], Verbs:["*"]})"), std::string::npos)
      << message_of(esc);
  // A binding to a role that does not exist: 404, as the real server's role lookup.
  auto none = send(sim, *sim.boss, "POST", kApis + "/namespaces/team/rolebindings",
                   binding("RoleBinding", "x", "ClusterRole", "nope", "team", "boss"));
  EXPECT_EQ(status_of(none), 404) << message_of(none);
}

TEST(SimRbac, EscalateAndBindVerbsAllowWhatIsNotHeld) {
  Sim sim;
  // "writer" may write roles and bindings in default, and read pods; nothing else.
  ASSERT_TRUE(sim.create(
      kRbac, "roles", "default",
      role(
          "Role", "writer",
          R"([{"apiGroups":["rbac.authorization.k8s.io"],"resources":["roles","rolebindings"],"verbs":["create","update","patch","get"]},{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}])")));
  ASSERT_TRUE(sim.create(kRbac, "rolebindings", "default",
                         binding("RoleBinding", "writer", "Role", "writer", "default", "w")));
  auto w = sim.service_account_client("default", "w");
  const std::string secrets =
      role("Role", "secrets", R"([{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}])");
  auto denied = send(sim, *w, "POST", kApis + "/namespaces/default/roles", secrets);
  EXPECT_EQ(status_of(denied), 403) << message_of(denied);
  // A patch that widens a role it may write is judged on its result.
  ASSERT_TRUE(
      send(sim, *w, "POST", kApis + "/namespaces/default/roles",
           role("Role", "p", R"([{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}])")));
  auto widen = send(sim, *w, "PATCH", kApis + "/namespaces/default/roles/p",
                    R"({"rules":[{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}]})",
                    "application/merge-patch+json");
  EXPECT_EQ(status_of(widen), 403) << message_of(widen);
  auto same = send(sim, *w, "PATCH", kApis + "/namespaces/default/roles/p",
                   R"({"metadata":{"labels":{"a":"b"}}})", "application/merge-patch+json");
  EXPECT_EQ(status_of(same), 200) << message_of(same);

  // escalate on roles lifts the check for roles, bind on a role for bindings to it.
  ASSERT_TRUE(sim.create(
      kRbac, "roles", "default",
      role(
          "Role", "escalate",
          R"([{"apiGroups":["rbac.authorization.k8s.io"],"resources":["roles"],"verbs":["escalate"]},{"apiGroups":["rbac.authorization.k8s.io"],"resources":["roles"],"verbs":["bind"],"resourceNames":["secrets"]}])")));
  ASSERT_TRUE(sim.create(kRbac, "rolebindings", "default",
                         binding("RoleBinding", "escalate", "Role", "escalate", "default", "w")));
  auto escalated = send(sim, *w, "POST", kApis + "/namespaces/default/roles", secrets);
  EXPECT_EQ(status_of(escalated), 201) << message_of(escalated);
  auto bound = send(sim, *w, "POST", kApis + "/namespaces/default/rolebindings",
                    binding("RoleBinding", "s", "Role", "secrets", "default", "w"));
  EXPECT_EQ(status_of(bound), 201) << message_of(bound);
}

TEST(SimRbac, RoleRefCannotChange) {
  Sim sim;
  ASSERT_TRUE(sim.create(kRbac, "roles", "default", role("Role", "a", "[]")));
  ASSERT_TRUE(sim.create(kRbac, "roles", "default", role("Role", "b", "[]")));
  ASSERT_TRUE(sim.create(kRbac, "rolebindings", "default",
                         binding("RoleBinding", "x", "Role", "a", "default", "s")));
  auto r = send(sim, *sim.client, "PATCH", kApis + "/namespaces/default/rolebindings/x",
                R"({"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"b"}})",
                "application/merge-patch+json");
  ASSERT_EQ(status_of(r), 422) << message_of(r);
  ASSERT_FALSE(r);
  ASSERT_EQ(r.error().causes.size(), 1u);
  EXPECT_EQ(r.error().causes[0].field, "roleRef");
}

TEST(SimRbac, RbacObjectsAreValidatedOnWrite) {
  Sim sim;
  auto post = [&](const std::string& resource, const std::string& ns, const std::string& body) {
    std::string path = kApis + (ns.empty() ? "" : "/namespaces/" + ns) + "/" + resource;
    return send(sim, *sim.client, "POST", path, body);
  };
  // The issue's crash: a number where a URL belongs is the decoder's 400.
  auto number = post("clusterroles", "",
                     role("ClusterRole", "n", R"([{"nonResourceURLs":[12345],"verbs":["get"]}])"));
  EXPECT_EQ(status_of(number), 400) << message_of(number);
  EXPECT_EQ(status_of(post("clusterroles", "", role("ClusterRole", "n", R"("all")"))), 400);
  EXPECT_EQ(status_of(post("roles", "default", role("Role", "n", R"([{"verbs":"get"}])"))), 400);

  auto invalid = post(
      "roles", "default",
      role(
          "Role", "n",
          R"([{"nonResourceURLs":["/x"],"verbs":["get"]},{"apiGroups":[""],"resources":["pods"]}])"));
  ASSERT_EQ(status_of(invalid), 422) << message_of(invalid);
  std::vector<std::string> fields;
  for (const auto& c : invalid.error().causes)
    fields.push_back(c.field);
  EXPECT_EQ(fields, (std::vector<std::string>{"rules[0].nonResourceURLs", "rules[1].verbs"}));

  auto bad_ref = post("clusterrolebindings", "",
                      binding("ClusterRoleBinding", "b", "Role", "r", "default", "s"));
  ASSERT_EQ(status_of(bad_ref), 422) << message_of(bad_ref);
  EXPECT_EQ(bad_ref.error().causes[0].field, "roleRef.kind");
  auto bad_subject = post(
      "rolebindings", "default",
      R"({"metadata":{"name":"b"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"r"},"subjects":[{"kind":"Robot","name":"x"}]})");
  ASSERT_EQ(status_of(bad_subject), 422) << message_of(bad_subject);
  EXPECT_EQ(bad_subject.error().causes[0].field, "subjects[0].kind");
}

TEST(SimRbac, MistypedStoredRulesDoNotCrashTheAuthorizer) {
  Sim sim;
  // Written past validation, as a --data-dir from before it could hold.
  auto cr = json::parse(
      R"({"metadata":{"name":"bad"},"rules":[{"nonResourceURLs":[12345,{"a":1}],"verbs":["get",7]},"x"]})");
  ASSERT_TRUE(
      sim.store.create(*sim.registry.find(kRbac, "v1", "clusterroles"), "", std::move(*cr)));
  auto crb = json::parse(
      R"({"metadata":{"name":"bad"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"bad"},"subjects":[{"kind":"ServiceAccount","name":"s","namespace":"default"}]})");
  ASSERT_TRUE(sim.store.create(*sim.registry.find(kRbac, "v1", "clusterrolebindings"), "",
                               std::move(*crb)));
  auto s = sim.service_account_client("default", "s");
  EXPECT_EQ(status_of(send(sim, *s, "GET", "/metrics")), 403);
  EXPECT_EQ(status_of(send(sim, *sim.client, "GET", "/healthz")), 200);
}

TEST(SimRbac, AMistypedRoleInADataDirDoesNotCrashAfterARestart) {
  // What a --data-dir written before validation existed can hold: the issue's ClusterRole,
  // which crashed the server on the first non-resource request after every restart.
  const std::string dir =
      std::filesystem::temp_directory_path() / ("nvdra-rbac-data-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    std::ofstream snap(dir + "/snapshot.jsonl");
    snap
        << R"({"op":"put","rv":2,"k":"rbac.authorization.k8s.io/clusterroles","key":"bad","obj":{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"bad","resourceVersion":"2"},"rules":[{"nonResourceURLs":[12345],"verbs":["get"]}]}})"
        << "\n"
        << R"({"op":"put","rv":3,"k":"rbac.authorization.k8s.io/clusterrolebindings","key":"bad","obj":{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"bad","resourceVersion":"3"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"bad"},"subjects":[{"kind":"User","name":"u"}]}})"
        << "\n";
  }
  ResourceRegistry registry;
  Store store;
  ASSERT_TRUE(store.open_data_dir(dir));
  Authorizer authz(store, registry);
  RequestAttributes a;
  a.resource_request = false;
  a.verb = "get";
  a.path = "/metrics";
  EXPECT_FALSE(authz.allowed(UserInfo{"u", {}, false}, a));
  std::filesystem::remove_all(dir);
}

TEST(RbacRules, CoverageFollowsRbac) {
  std::vector<PolicyRule> owner = {{{"get", "list"}, {""}, {"pods", "*/status"}, {}, {}},
                                   {{"*"}, {}, {}, {}, {"/healthz", "/logs/*"}}};
  EXPECT_TRUE(covers(owner, {{{"get"}, {""}, {"pods"}, {"a"}, {}}}).covered());
  EXPECT_TRUE(covers(owner, {{{"list"}, {""}, {"nodes/status"}, {}, {}}}).covered());
  EXPECT_TRUE(covers(owner, {{{"get"}, {}, {}, {}, {"/logs/x/y"}}}).covered());
  auto c = covers(owner, {{{"get", "delete"}, {""}, {"pods"}, {}, {}}});
  ASSERT_EQ(c.missing.size(), 1u);
  EXPECT_EQ(rule_string(c.missing[0]), R"({APIGroups:[""], Resources:["pods"], Verbs:["delete"]})");
  // Names held do not cover every name.
  std::vector<PolicyRule> named = {{{"get"}, {""}, {"pods"}, {"a"}, {}}};
  EXPECT_FALSE(covers(named, {{{"get"}, {""}, {"pods"}, {}, {}}}).covered());
  // A breakdown past the budget is refused rather than computed.
  PolicyRule wide{{"a", "b", "c"}, {"x", "y"}, {"p", "q"}, {}, {}};
  EXPECT_TRUE(covers({{{"*"}, {"*"}, {"*"}, {}, {}}}, {wide}, 5).too_large);
}

}  // namespace
}  // namespace nvdra::sim

namespace nvdra::sim {
namespace {

TEST(SimAuth, TokensAreComparedWhole) {
  ResourceRegistry registry;
  Store store;
  Authenticator with_admin("admin-token", "secret", store, registry);
  EXPECT_TRUE(with_admin.authenticate("Bearer admin-token"));
  EXPECT_FALSE(with_admin.authenticate("Bearer admin-toke"));
  EXPECT_FALSE(with_admin.authenticate("Bearer admin-token0"));
  // Without an admin token nobody is the admin (an empty bearer token used to be).
  Authenticator without("", "secret", store, registry);
  EXPECT_FALSE(without.authenticate("Bearer "));
}

}  // namespace
}  // namespace nvdra::sim
