// The reconciler against nvdra-sim's API server in this process: objects, status, deletion,
// bad input, orphans, and a controller killed at random points that still converges.
#include "controller/controller.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "base/atomic_file.h"
#include "sim/yaml_json.h"
#include "support/in_process_sim.h"

namespace nvdra::controller {
namespace {

using k8s::ResourceRef;

const ResourceRef kDomains{"resource.nvidia.com", "v1beta1", "computedomains"};
const ResourceRef kTemplates{"resource.k8s.io", "v1", "resourceclaimtemplates"};
const ResourceRef kDaemonSets{"apps", "v1", "daemonsets"};
const ResourceRef kPods{"", "v1", "pods"};
const ResourceRef kNodes{"", "v1", "nodes"};
const ResourceRef kSlices{"resource.k8s.io", "v1", "resourceslices"};

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto text =
        read_file(std::string(NVDRA_SOURCE_DIR) + "/crds/computedomains.resource.nvidia.com.yaml");
    ASSERT_TRUE(text);
    auto crd = sim::parse_json_or_yaml(*text);
    ASSERT_TRUE(crd);
    ASSERT_TRUE(create(ResourceRef{"apiextensions.k8s.io", "v1", "customresourcedefinitions"},
                       json::write(*crd)));
    ASSERT_TRUE(create(ResourceRef{"", "v1", "namespaces"}, R"({"metadata":{"name":"drv"}})"));
    // Two nodes in clique c.1 with 4 GPUs each, one without fabric.
    for (const char* n : {"n1", "n2", "n3"}) {
      ASSERT_TRUE(create(kNodes, fmt::format(R"({{"metadata":{{"name":"{}"}}}})", n)));
      const std::string clique =
          std::string_view(n) == "n3" ? "" : R"(,"cliqueID":{"string":"c.1"})";
      ASSERT_TRUE(create(
          kSlices,
          fmt::format(
              R"({{"metadata":{{"name":"{0}-cd"}},"spec":{{"driver":"compute-domain.nvidia.com",)"
              R"("nodeName":"{0}","pool":{{"name":"{0}","generation":1,"resourceSliceCount":1}},)"
              R"("devices":[{{"name":"channel-0","attributes":{{"type":{{"string":"channel"}}{1}}}}}]}}}})",
              n, clique)));
      std::string gpus;
      for (int g = 0; g < 4; ++g)
        gpus += fmt::format(R"({}{{"name":"gpu-{}","attributes":{{"type":{{"string":"gpu"}}}}}})",
                            g ? "," : "", g);
      ASSERT_TRUE(create(
          kSlices,
          fmt::format(
              R"({{"metadata":{{"name":"{0}-gpu"}},"spec":{{"driver":"gpu.nvidia.com","nodeName":"{0}",)"
              R"("pool":{{"name":"{0}","generation":1,"resourceSliceCount":1}},"devices":[{1}]}}}})",
              n, gpus)));
    }
  }
  void TearDown() override { stop(); }

  void start() {
    ControllerOptions o;
    o.daemon.ns = "drv";
    o.workers = 2;
    o.coalesce = std::chrono::milliseconds(20);
    cancel = std::make_unique<Cancellation>();
    controller = std::make_unique<Controller>(sim.client, o, registry);
    running = sim.io.spawn(controller->run(cancel.get()));
  }
  void stop() {
    if (!controller) return;
    cancel->cancel();
    running.wait();
    controller.reset();
  }

  Result<k8s::ObjectPtr> create(const ResourceRef& ref, std::string body) {
    return sim.io.run(sim.client->create(ref, std::move(body)));
  }
  k8s::ObjectPtr get(const ResourceRef& ref) {
    auto r = sim.io.run(sim.client->get(ref));
    return r ? *r : nullptr;
  }
  size_t count(const ResourceRef& ref, const std::string& selector = "") {
    k8s::ListOptions o;
    o.label_selector = selector;
    auto r = sim.io.run(sim.client->list_all(ref, o));
    return r ? r->items.size() : 0;
  }
  // Waits (10 s) until `pred` holds.
  template <class Pred>
  bool eventually(Pred pred) {
    for (int i = 0; i < 1000; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
  }
  std::string field(const k8s::ObjectPtr& o, std::initializer_list<std::string_view> path) {
    if (!o) return "<none>";
    auto d = o->doc();
    const json::Value* v = json::find_path(*d, path);
    if (!v) return "";
    return v->IsString() ? v->GetString() : json::write(*v);
  }
  ResourceRef domain(const std::string& name) {
    return kDomains.in_namespace("default").with_name(name);
  }
  std::string make_domain(const std::string& name, int nodes, std::string extra = "") {
    auto d =
        create(kDomains.in_namespace("default"),
               fmt::format(R"({{"apiVersion":"resource.nvidia.com/v1beta1","kind":"ComputeDomain",)"
                           R"("metadata":{{"name":"{}"}},"spec":{{"numNodes":{},"channel":)"
                           R"({{"resourceClaimTemplate":{{"name":"{}-ch"}}}}{}}}}})",
                           name, nodes, name, extra));
    EXPECT_TRUE(d);
    return d ? std::string((*d)->uid()) : "";
  }
  // A daemon pod as the DaemonSet controller and kubelet would leave it.
  void daemon_pod(const std::string& uid, const std::string& node, const std::string& ip,
                  bool ready) {
    const std::string name = "daemon-" + node;
    auto ref = kPods.in_namespace("drv");
    if (!get(ref.with_name(name))) {
      ASSERT_TRUE(create(
          ref,
          fmt::format(
              R"({{"metadata":{{"name":"{}","labels":{{"resource.nvidia.com/computeDomain":"{}"}}}},)"
              R"("spec":{{"nodeName":"{}","containers":[{{"name":"c","image":"i"}}]}}}})",
              name, uid, node)));
    }
    ASSERT_TRUE(sim.io.run(sim.client->patch(
        ref.with_name(name).sub("status"), k8s::PatchType::kMerge,
        fmt::format(R"({{"status":{{"phase":"Running","podIP":"{}","conditions":[{{"type":"Ready",)"
                    R"("status":"{}"}}]}}}})",
                    ip, ready ? "True" : "False"))));
  }

  testing::InProcessSim sim;
  metrics::Registry registry;
  std::unique_ptr<Cancellation> cancel;
  std::unique_ptr<Controller> controller;
  std::future<void> running;
};

TEST_F(ControllerTest, CreatesTheDomainsObjectsWritesItsStatusAndCleansUp) {
  start();
  const std::string uid = make_domain("cd", 2);
  const std::string daemon = "computedomain-daemon-" + uid;
  ASSERT_TRUE(eventually([&] {
    return get(kTemplates.in_namespace("default").with_name("cd-ch")) &&
           get(kTemplates.in_namespace("drv").with_name(daemon)) &&
           get(kDaemonSets.in_namespace("drv").with_name(daemon));
  }));
  auto cd = get(domain("cd"));
  EXPECT_EQ(field(cd, {"metadata", "finalizers"}), R"(["resource.nvidia.com/computeDomain"])");
  // Placement: both nodes of clique c.1, so the template is narrowed to it.
  EXPECT_NE(field(get(kTemplates.in_namespace("default").with_name("cd-ch")),
                  {"spec", "spec", "devices", "requests"})
                .find("c.1"),
            std::string::npos);
  ASSERT_TRUE(eventually([&] {
    return field(get(domain("cd")), {"status", "placement", "cliques"}) == R"(["c.1"])";
  }));

  // Daemons come up: the controller alone writes the status, from their readiness.
  daemon_pod(uid, "n1", "10.0.0.1", true);
  daemon_pod(uid, "n2", "10.0.0.2", false);
  ASSERT_TRUE(eventually([&] {
    return field(get(domain("cd")), {"status", "nodes"}).find("10.0.0.2") != std::string::npos;
  }));
  EXPECT_EQ(field(get(domain("cd")), {"status", "status"}), "NotReady");
  daemon_pod(uid, "n2", "10.0.0.2", true);
  ASSERT_TRUE(eventually([&] {
    return field(get(domain("cd")), {"status", "status"}) == "Ready";
  }));
  auto nodes = parse_status_nodes(*get(domain("cd"))->doc());
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0], (NodeStatus{"n1", "10.0.0.1", "c.1", 0, true}));
  EXPECT_EQ(nodes[1], (NodeStatus{"n2", "10.0.0.2", "c.1", 1, true}));

  // An agent labelled n1 for the domain; deleting the domain removes all of it, then the domain.
  ASSERT_TRUE(sim.io.run(sim.client->patch(
      kNodes.with_name("n1"), k8s::PatchType::kMerge,
      fmt::format(R"({{"metadata":{{"labels":{{"resource.nvidia.com/computeDomain":"{}"}}}}}})",
                  uid))));
  ASSERT_TRUE(sim.io.run(sim.client->remove(domain("cd"))));
  ASSERT_TRUE(eventually([&] { return !get(domain("cd")); }));
  EXPECT_EQ(count(kTemplates), 0u);
  EXPECT_EQ(count(kDaemonSets), 0u);
  EXPECT_EQ(count(kNodes, "resource.nvidia.com/computeDomain"), 0u);
}

TEST_F(ControllerTest, ARowWrittenBeforeItsNodesSliceGetsTheCliqueWhenTheSliceArrives) {
  ASSERT_TRUE(create(kNodes, R"({"metadata":{"name":"late"}})"));
  start();
  const std::string uid = make_domain("cd", 1);
  daemon_pod(uid, "late", "10.0.0.9", true);
  ASSERT_TRUE(eventually([&] {
    return field(get(domain("cd")), {"status", "nodes"}).find("10.0.0.9") != std::string::npos;
  }));
  auto nodes = parse_status_nodes(*get(domain("cd"))->doc());
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].clique, "");  // its agent has not published yet
  // The agent publishes; nothing else about the domain changes.
  ASSERT_TRUE(create(
      kSlices, R"({"metadata":{"name":"late-cd"},"spec":{"driver":"compute-domain.nvidia.com",)"
               R"("nodeName":"late","pool":{"name":"late","generation":1,"resourceSliceCount":1},)"
               R"("devices":[{"name":"channel-0","attributes":{"type":{"string":"channel"},)"
               R"("cliqueID":{"string":"c.9"}}}]}})"));
  ASSERT_TRUE(eventually([&] {
    auto n = parse_status_nodes(*get(domain("cd"))->doc());
    return n.size() == 1 && n[0].clique == "c.9" && n[0].index == 0;
  }));
}

TEST_F(ControllerTest, BadInputGetsAConditionAndNoWorkloadTemplate) {
  ASSERT_TRUE(create(kTemplates.in_namespace("default"),
                     R"({"metadata":{"name":"taken-ch"},"spec":{"spec":{"devices":{"requests":[)"
                     R"({"name":"g","exactly":{"deviceClassName":"gpu.nvidia.com"}}]}}}})"));
  start();
  make_domain("taken", 1);
  make_domain("big", 3, R"(,"placement":{"policy":"SingleClique"})");
  auto reason = [&](const std::string& name, std::string_view type) {
    auto cd = get(domain(name));
    if (!cd) return std::string();
    auto d = cd->doc();
    const json::Value* conds = json::find_path(*d, {"status", "conditions"});
    if (!conds || !conds->IsArray()) return std::string();
    for (const auto& c : conds->GetArray())
      if (json::string_or(c, "type") == type) return std::string(json::string_or(c, "reason"));
    return std::string();
  };
  EXPECT_TRUE(eventually([&] { return reason("taken", "Provisioned") == "TemplateConflict"; }));
  EXPECT_TRUE(eventually([&] { return reason("big", "Placed") == "CannotFit"; }));
  EXPECT_FALSE(get(kTemplates.in_namespace("default").with_name("big-ch")));
  EXPECT_EQ(reason("big", "Provisioned"), "WaitingForPlacement");
  // Someone else's template is left as it was.
  EXPECT_EQ(
      field(get(kTemplates.in_namespace("default").with_name("taken-ch")), {"metadata", "labels"}),
      "");
}

TEST_F(ControllerTest, OrphansOfVanishedDomainsAreSweptAtStart) {
  ASSERT_TRUE(create(
      kDaemonSets.in_namespace("drv"),
      R"({"metadata":{"name":"computedomain-daemon-gone","labels":{"resource.nvidia.com/computeDomain":"gone"}},)"
      R"("spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},)"
      R"("spec":{"containers":[{"name":"c","image":"i"}]}}}})"));
  ASSERT_TRUE(sim.io.run(sim.client->patch(
      kNodes.with_name("n2"), k8s::PatchType::kMerge,
      R"({"metadata":{"labels":{"resource.nvidia.com/computeDomain":"gone"}}})")));
  start();
  EXPECT_TRUE(eventually([&] {
    return count(kDaemonSets) == 0 && count(kNodes, "resource.nvidia.com/computeDomain") == 0;
  }));
}

TEST_F(ControllerTest, ConvergesAcrossRestartsAtRandomPoints) {
  std::mt19937 rng(7);
  const std::string uid = make_domain("cd", 2);
  // Runs stopped at random points (up to 60 ms into a run), then one left to finish. SIGKILLs
  // mid-request are the end-to-end test's (compute_domain_test.sh).
  for (int i = 0; i < 15; ++i) {
    start();
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 60));
    stop();
  }
  start();
  ASSERT_TRUE(eventually([&] { return count(kTemplates) == 2 && count(kDaemonSets) == 1; }));
  daemon_pod(uid, "n1", "10.0.0.1", true);
  daemon_pod(uid, "n2", "10.0.0.2", true);
  ASSERT_TRUE(eventually([&] {
    return field(get(domain("cd")), {"status", "status"}) == "Ready";
  }));
  stop();
  EXPECT_EQ(count(kTemplates), 2u);
  EXPECT_EQ(count(kDaemonSets), 1u);

  ASSERT_TRUE(sim.io.run(sim.client->remove(domain("cd"))));
  for (int i = 0; i < 15; ++i) {
    start();
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 60));
    stop();
  }
  start();
  ASSERT_TRUE(eventually([&] { return !get(domain("cd")); }));
  EXPECT_EQ(count(kTemplates), 0u);
  EXPECT_EQ(count(kDaemonSets), 0u);
}

}  // namespace
}  // namespace nvdra::controller
