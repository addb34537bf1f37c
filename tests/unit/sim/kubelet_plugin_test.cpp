// Simulated kubelets and a test DRA driver speaking the real gRPC protocols.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "sim/cluster/claim_controller.h"
#include "sim/cluster/kubelet.h"
#include "sim/cluster/node_slices.h"
#include "sim/cluster/scheduler.h"
#include "sim/yaml_json.h"
#include "support/cluster_seed.h"
#include "support/test_dra_plugin.h"

namespace nvdra::sim::cluster {
namespace {

using json::Value;
using testing::TestDraPlugin;

class KubeletPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Short: unix socket paths are limited to 107 bytes.
    static int n = 0;
    root_ = std::filesystem::temp_directory_path() /
            ("nvk-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::filesystem::remove_all(root_);
    testing::seed_cluster(cluster_.api());
    auto topo = parse_topology(
        "controlPlane: false\nnodeGroups:\n- {name: n, count: 1, gpus: 2, gpu: H100-80GB}\n");
    ASSERT_TRUE(topo);
    node_ = topo->nodes[0];
    cluster_.add(std::make_unique<ClaimController>(cluster_));
    cluster_.add(std::make_unique<Scheduler>(
        cluster_, SchedulerOptions{.claim_grace = std::chrono::milliseconds(0)}));
    KubeletOptions k;
    k.publish_slices = false;
    k.root = root_.string();
    cluster_.add(std::make_unique<Kubelets>(cluster_, std::move(*topo), k));
    cluster_.step();  // the kubelet starts (and wipes the node's slices)
    // What the node's driver would publish.
    for (const auto& s : node_slices(node_))
      ASSERT_TRUE(cluster_.api().create(kSlices, "", std::move(*json::parse(s))));
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::string kubelet_dir() const { return (root_ / "n-0/var/lib/kubelet").string(); }

  template <class Pred>
  bool eventually(Pred pred) {
    for (int i = 0; i < 250; ++i) {
      cluster_.step();
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  void create(const Kind& k, const std::string& body) {
    auto r = cluster_.api().create(k, "default", std::move(*json::parse(body)));
    ASSERT_TRUE(r) << r.error().message;
  }

  std::string phase(const std::string& pod) {
    auto r = store_.get(*cluster_.api().type(kPods), "default", pod);
    if (!r) return "<gone>";
    auto d = json::parse(*r);
    return std::string(json::string_or(*json::find(*d, "status"), "phase"));
  }

  std::string events() {
    auto list = store_.list(*registry_.find("", "v1", "events"), "default", ListQuery{});
    std::string all;
    for (const auto& e : list->items)
      all += e;
    return all;
  }

  void claim_and_pod() {
    create(kClaims, R"({"metadata":{"name":"fixed"},"spec":{"devices":{"requests":[{"name":"gpu",
      "exactly":{"deviceClassName":"gpu.nvidia.com"}}]}}})");
    create(kPods, R"({"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}],
      "resourceClaims":[{"name":"gpu","resourceClaimName":"fixed"}]}})");
  }

  std::filesystem::path root_;
  ResourceRegistry registry_;
  Store store_;
  Cluster cluster_{store_, registry_};
  NodeSpec node_;
};

TEST_F(KubeletPluginTest, RegistersPreparesBeforeStartAndUnpreparesAfterStop) {
  store_.set_graceful_pod_deletion(true);
  TestDraPlugin plugin(kubelet_dir(), "gpu.nvidia.com", {"v1.DRAPlugin", "v1beta1.DRAPlugin"});
  claim_and_pod();
  ASSERT_TRUE(eventually([&] { return phase("p") == "Running"; })) << events();
  auto regs = plugin.registrations();
  ASSERT_EQ(regs.size(), 1u);
  EXPECT_TRUE(regs[0].first);
  auto calls = plugin.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].method, "prepare");
  EXPECT_EQ(calls[0].version, "v1");  // the newest version both sides speak
  EXPECT_EQ(calls[0].ns, "default");
  EXPECT_EQ(calls[0].name, "fixed");
  EXPECT_FALSE(calls[0].uid.empty());

  ASSERT_TRUE(cluster_.api().remove(kPods, "default", "p", DeleteRequest{}));
  ASSERT_TRUE(eventually([&] { return phase("p") == "<gone>"; }));
  calls = plugin.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].method, "unprepare");
  EXPECT_EQ(calls[1].uid, calls[0].uid);
}

TEST_F(KubeletPluginTest, FallsBackToV1beta1) {
  TestDraPlugin plugin(kubelet_dir(), "gpu.nvidia.com", {"v1beta1.DRAPlugin"});
  claim_and_pod();
  ASSERT_TRUE(eventually([&] { return phase("p") == "Running"; })) << events();
  ASSERT_FALSE(plugin.calls().empty());
  EXPECT_EQ(plugin.calls()[0].version, "v1beta1");
}

TEST_F(KubeletPluginTest, PrepareErrorsBecomeEventsAndAreRetried) {
  TestDraPlugin plugin(kubelet_dir(), "gpu.nvidia.com", {"v1.DRAPlugin"});
  plugin.fail_claim("fixed", true);
  claim_and_pod();
  ASSERT_TRUE(
      eventually([&] { return events().find("injected failure for fixed") != std::string::npos; }));
  EXPECT_NE(events().find("FailedPrepareDynamicResources"), std::string::npos);
  EXPECT_EQ(phase("p"), "Pending");
  plugin.fail_claim("fixed", false);
  ASSERT_TRUE(eventually([&] { return phase("p") == "Running"; }));  // retried with backoff
  EXPECT_GE(plugin.calls().size(), 2u);
}

TEST_F(KubeletPluginTest, UnsupportedVersionsAreRefusedAndPodsWaitForADriver) {
  TestDraPlugin plugin(kubelet_dir(), "gpu.nvidia.com", {"v9.DRAPlugin"});
  claim_and_pod();
  ASSERT_TRUE(eventually([&] { return !plugin.registrations().empty(); }));
  EXPECT_FALSE(plugin.registrations()[0].first);
  EXPECT_NE(plugin.registrations()[0].second.find("none of the versions v9.DRAPlugin is supported"),
            std::string::npos);
  ASSERT_TRUE(eventually(
      [&] { return events().find("is not registered on node n-0") != std::string::npos; }));
  EXPECT_EQ(phase("p"), "Pending");
  EXPECT_TRUE(plugin.calls().empty());
}

TEST_F(KubeletPluginTest, ClaimsOfAPodDeletedWhilePreparingAreReleased) {
  TestDraPlugin plugin(kubelet_dir(), "gpu.nvidia.com", {"v1.DRAPlugin"});
  claim_and_pod();
  ASSERT_TRUE(eventually([&] { return !plugin.calls().empty(); }));
  // Force-delete (grace 0), as `kubectl delete --force` does: no kubelet round trip.
  DeleteRequest now;
  now.grace_period_seconds = 0;
  ASSERT_TRUE(cluster_.api().remove(kPods, "default", "p", now));
  ASSERT_TRUE(eventually([&] {
    auto c = plugin.calls();
    return std::any_of(c.begin(), c.end(),
                       [](const TestDraPlugin::Call& x) { return x.method == "unprepare"; });
  }));
}

// A pod deleted while its prepare call is in flight, and a new pod of the same name that is not
// scheduled yet (its claim template does not exist): the late answer for the old pod must not
// touch the new one, whose kubelet work waits for a node (this stopped the simulated cluster).
TEST_F(KubeletPluginTest, ALateAnswerForADeletedPodLeavesItsSuccessorAlone) {
  TestDraPlugin plugin(kubelet_dir(), "gpu.nvidia.com", {"v1.DRAPlugin"});
  plugin.hold_prepares(true);
  claim_and_pod();
  ASSERT_TRUE(eventually([&] { return !plugin.calls().empty(); }));
  DeleteRequest now;
  now.grace_period_seconds = 0;
  ASSERT_TRUE(cluster_.api().remove(kPods, "default", "p", now));
  create(kPods, R"({"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}],
    "resourceClaims":[{"name":"gpu","resourceClaimTemplateName":"later"}]}})");
  cluster_.step();
  plugin.hold_prepares(false);  // the old pod's prepare answers now
  for (int i = 0; i < 20; ++i) {
    ASSERT_NO_THROW(cluster_.step());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(phase("p"), "Pending");
  create(kClaimTemplates, R"({"metadata":{"name":"later"},"spec":{"spec":{"devices":{"requests":[
    {"name":"gpu","exactly":{"deviceClassName":"gpu.nvidia.com"}}]}}}})");
  EXPECT_TRUE(eventually([&] { return phase("p") == "Running"; }));
}

TEST_F(KubeletPluginTest, PreparedClaimsSurviveASimulatorRestart) {
  store_.set_graceful_pod_deletion(true);
  TestDraPlugin plugin(kubelet_dir(), "gpu.nvidia.com", {"v1.DRAPlugin"});
  claim_and_pod();
  ASSERT_TRUE(eventually([&] { return phase("p") == "Running"; }));
  // A new control plane over the same store and node folders, as after `nvdra-sim up` restarts.
  Cluster restarted(store_, registry_);
  restarted.add(std::make_unique<ClaimController>(restarted));
  KubeletOptions k;
  k.publish_slices = false;
  k.root = root_.string();
  restarted.add(std::make_unique<Kubelets>(restarted,
                                           *parse_topology("controlPlane: false\nnodeGroups:\n"
                                                           "- {name: n, count: 1, gpus: 2}\n"),
                                           k));
  restarted.step();
  ASSERT_TRUE(restarted.api().remove(kPods, "default", "p", DeleteRequest{}));
  bool unprepared = false;
  for (int i = 0; i < 250 && !unprepared; ++i) {
    restarted.step();
    auto c = plugin.calls();
    unprepared = std::any_of(c.begin(), c.end(),
                             [](const TestDraPlugin::Call& x) { return x.method == "unprepare"; });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(unprepared);
}

}  // namespace
}  // namespace nvdra::sim::cluster
