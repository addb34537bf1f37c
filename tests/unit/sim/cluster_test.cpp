// The simulated control plane in process: claims from templates, DRA scheduling, kubelets.
#include "sim/cluster/cluster.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "sim/cluster/claim_controller.h"
#include "sim/cluster/kubelet.h"
#include "sim/cluster/scheduler.h"
#include "sim/cluster/workloads.h"
#include "sim/yaml_json.h"
#include "support/cluster_seed.h"

namespace nvdra::sim::cluster {
namespace {

using json::Value;

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::seed_cluster(cluster_.api());
    auto topo = parse_topology(R"(
name: test
controlPlane: false
racks:
- {name: rack, nodes: 2, gpusPerNode: 2, gpu: GB200}
nodeGroups:
- {name: mig, count: 1, gpus: 1, gpu: A100-40GB, mig: dynamic, taints: [{key: mig, effect: NoSchedule}]}
)");
    ASSERT_TRUE(topo) << topo.error().message;
    cluster_.add(std::make_unique<ClaimController>(cluster_));
    auto sched = std::make_unique<Scheduler>(
        cluster_, SchedulerOptions{.claim_grace = std::chrono::milliseconds(0)});
    scheduler_ = sched.get();
    cluster_.add(std::move(sched));
    auto kubelets = std::make_unique<Kubelets>(cluster_, std::move(*topo), KubeletOptions{});
    kubelets_ = kubelets.get();
    cluster_.add(std::move(kubelets));
    cluster_.add(std::make_unique<PodGarbageCollector>(cluster_, std::chrono::milliseconds(0)));
    cluster_.add(std::make_unique<ReplicaSetController>(cluster_));
    cluster_.add(std::make_unique<DeploymentController>(cluster_));
    cluster_.add(std::make_unique<JobController>(cluster_));
    cluster_.add(std::make_unique<DaemonSetController>(cluster_));
    cluster_.add(std::make_unique<MpiJobController>(cluster_));
    cluster_.step();
  }

  void create(const Kind& k, const std::string& body) {
    auto d = json::parse(body);
    ASSERT_TRUE(d) << body;
    auto r = cluster_.api().create(k, "default", std::move(*d));
    ASSERT_TRUE(r) << r.error().message;
  }

  Doc get(const Kind& k, const std::string& name) {
    auto t = cluster_.api().type(k);
    auto r = store_.get(*t, t->namespaced ? "default" : "", name);
    if (!r) return nullptr;
    return std::make_shared<json::Document>(std::move(*json::parse(*r)));
  }

  std::string pod_field(const std::string& pod, std::initializer_list<std::string_view> path) {
    Doc p = get(kPods, pod);
    if (!p) return "<gone>";
    const Value* v = json::find_path(*p, path);
    return v && v->IsString() ? v->GetString() : "";
  }

  ResourceRegistry registry_;
  Store store_;
  Cluster cluster_{store_, registry_};
  Scheduler* scheduler_ = nullptr;
  Kubelets* kubelets_ = nullptr;
};

const char* kTemplate = R"({"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaimTemplate",
  "metadata":{"name":"one-gpu"},"spec":{"spec":{"devices":{"requests":[
  {"name":"gpu","exactly":{"deviceClassName":"gpu.nvidia.com"}}]}}}})";

std::string pod(const std::string& name, const std::string& extra_spec = "") {
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + name +
         R"("},"spec":{"containers":[{"name":"ctr","image":"ubuntu","resources":{"claims":[{"name":"gpu"}]}}],)"
         R"("resourceClaims":[{"name":"gpu","resourceClaimTemplateName":"one-gpu"}])" +
         extra_spec + "}}";
}

TEST_F(ClusterTest, NodesRegisterWithTheirSlicesAndLeases) {
  EXPECT_EQ(cluster_.cache().all(kNodes).size(), 3u);
  Doc node = get(kNodes, "rack-node-0");
  ASSERT_TRUE(node);
  EXPECT_EQ(
      json::string_or(*json::find_path(*node, {"metadata", "labels"}), "nvidia.com/gpu.clique"),
      "5c3a1d2e-8f4b-4e6a-9b7c-0d1e2f3a4b5c.1");
  // rack nodes: a gpu and a compute-domain slice each; the MIG node one slice per GPU.
  EXPECT_EQ(cluster_.cache().all(kSlices).size(), 5u);
  EXPECT_TRUE(get(kLeases, "rack-node-1") == nullptr);  // leases live in kube-node-lease
  auto lease = store_.get(*cluster_.api().type(kLeases), "kube-node-lease", "rack-node-1");
  EXPECT_TRUE(lease);
}

TEST_F(ClusterTest, ARestartedKubeletKeepsCordonsAndOtherLabels) {
  ASSERT_TRUE(cluster_.api().modify(kNodes, "", "rack-node-0", false, [](json::Document& o, bool) {
    auto& a = o.GetAllocator();
    json::set_string(o["metadata"]["labels"], "example.com/team", "ml", a);
    json::set_bool(json::ensure_object(o, "spec", a), "unschedulable", true, a);
    return ok();
  }));
  Cluster restarted(store_, registry_);
  restarted.add(std::make_unique<Kubelets>(
      restarted,
      *parse_topology(
          "controlPlane: false\nracks:\n- {name: rack, nodes: 2, gpusPerNode: 2, gpu: GB200}\n"),
      KubeletOptions{}));
  restarted.step();
  Doc node = get(kNodes, "rack-node-0");
  EXPECT_EQ(json::string_or(*json::find_path(*node, {"metadata", "labels"}), "example.com/team"),
            "ml");
  EXPECT_EQ(
      json::string_or(*json::find_path(*node, {"metadata", "labels"}), "nvidia.com/gpu.present"),
      "true");
  EXPECT_TRUE(json::get_bool(*json::find(*node, "spec"), "unschedulable").value_or(false));
}

TEST_F(ClusterTest, PodWithATemplateClaimRunsAndReleasesItsDeviceWhenDeleted) {
  create(kClaimTemplates, kTemplate);
  create(kPods, pod("p1"));
  cluster_.step();
  EXPECT_EQ(pod_field("p1", {"status", "phase"}), "Running");
  const std::string node = pod_field("p1", {"spec", "nodeName"});
  EXPECT_TRUE(node.starts_with("rack-node-")) << node;  // the MIG node is tainted
  Doc p = get(kPods, "p1");
  const Value* statuses = json::find_path(*p, {"status", "resourceClaimStatuses"});
  ASSERT_TRUE(statuses && statuses->Size() == 1);
  const std::string claim_name = (*statuses)[0]["resourceClaimName"].GetString();
  EXPECT_TRUE(claim_name.starts_with("p1-gpu-"));
  Doc claim = get(kClaims, claim_name);
  ASSERT_TRUE(claim);
  EXPECT_EQ(json::write(*json::find_path(*claim, {"status", "reservedFor"})),
            R"([{"resource":"pods","name":"p1","uid":")" + std::string(uid_of(*p)) + R"("}])");
  const Value* results = json::find_path(*claim, {"status", "allocation", "devices", "results"});
  ASSERT_TRUE(results && results->Size() == 1);
  EXPECT_EQ(json::string_or((*results)[0], "pool"), node);
  EXPECT_STREQ((*json::find_path(*claim, {"metadata", "finalizers"}))[0].GetString(),
               "resource.kubernetes.io/delete-protection");

  // Graceful deletion: the kubelet stops it, the claim is released and deleted.
  store_.set_graceful_pod_deletion(true);
  ASSERT_TRUE(cluster_.api().remove(kPods, "default", "p1", DeleteRequest{}));
  cluster_.step();
  EXPECT_EQ(get(kPods, "p1"), nullptr);
  EXPECT_EQ(get(kClaims, claim_name), nullptr);
}

TEST_F(ClusterTest, PodsBeyondCapacityWaitWithAReasonAndRunWhenRoomOpens) {
  create(kClaimTemplates, kTemplate);
  for (int i = 0; i < 5; ++i)
    create(kPods, pod("p" + std::to_string(i)));
  cluster_.step();
  int running = 0;
  for (int i = 0; i < 5; ++i)
    running += pod_field("p" + std::to_string(i), {"status", "phase"}) == "Running";
  EXPECT_EQ(running, 4);  // 2 rack nodes × 2 GPUs
  Doc waiting = get(kPods, "p4");
  const Value* cond = json::find_path(*waiting, {"status", "conditions"});
  ASSERT_TRUE(cond && cond->IsArray() && cond->Size() == 1);
  const std::string msg(json::string_or((*cond)[0], "message"));
  EXPECT_EQ(json::string_or((*cond)[0], "reason"), "Unschedulable");
  EXPECT_NE(msg.find("0/3 nodes are available: 2 cannot allocate all claims, 1 node(s) had "
                     "untolerated taint."),
            std::string::npos)
      << msg;
  ASSERT_TRUE(cluster_.api().remove(kPods, "default", "p0", DeleteRequest{}));
  cluster_.step();
  EXPECT_EQ(pod_field("p4", {"status", "phase"}), "Running");
}

TEST_F(ClusterTest, TolerationsAndSelectorsReachTheMigNode) {
  create(kClaimTemplates, R"({"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaimTemplate",
    "metadata":{"name":"mig"},"spec":{"spec":{"devices":{"requests":[{"name":"mig","exactly":{
    "deviceClassName":"mig.nvidia.com","selectors":[{"cel":{"expression":
    "device.attributes['gpu.nvidia.com'].profile == '3g.20gb'"}}]}}]}}}})");
  create(
      kPods,
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"m","annotations":{"sim.nvdra.io/run-seconds":"0"}},
    "spec":{"restartPolicy":"Never","tolerations":[{"key":"mig","operator":"Exists"}],"containers":[{"name":"c","image":"i"}],
    "resourceClaims":[{"name":"mig","resourceClaimTemplateName":"mig"}]}})");
  cluster_.step();
  EXPECT_EQ(pod_field("m", {"spec", "nodeName"}), "mig-0");
  // Run time 0: the next round completes it, and its claim goes.
  cluster_.step();
  EXPECT_EQ(pod_field("m", {"status", "phase"}), "Succeeded");
  cluster_.step();
  EXPECT_TRUE(cluster_.cache().all(kClaims).empty());
}

TEST_F(ClusterTest, SharedClaimPinsEveryConsumerToItsNode) {
  create(kClaims,
         R"({"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaim","metadata":{"name":"shared"},
    "spec":{"devices":{"requests":[{"name":"gpu","exactly":{"deviceClassName":"gpu.nvidia.com"}}]}}})");
  for (const char* n : {"a", "b", "c"}) {
    create(
        kPods,
        std::string(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")") + n +
            R"("},"spec":{"containers":[{"name":"c","image":"i"}],"resourceClaims":[{"name":"gpu","resourceClaimName":"shared"}]}})");
  }
  cluster_.step();
  const std::string node = pod_field("a", {"spec", "nodeName"});
  EXPECT_FALSE(node.empty());
  EXPECT_EQ(pod_field("b", {"spec", "nodeName"}), node);
  EXPECT_EQ(pod_field("c", {"spec", "nodeName"}), node);
  Doc claim = get(kClaims, "shared");
  EXPECT_EQ(json::find_path(*claim, {"status", "reservedFor"})->Size(), 3u);
}

TEST_F(ClusterTest, MissingTemplateWaitsAndIsPickedUpWhenCreated) {
  create(kPods, pod("early"));
  cluster_.step();
  EXPECT_NE(pod_field("early", {"status", "conditions"}), "<gone>");
  Doc p = get(kPods, "early");
  EXPECT_NE(
      json::write(*json::find(*p, "status")).find("waiting for ResourceClaim of gpu to be created"),
      std::string::npos);
  create(kClaimTemplates, kTemplate);
  cluster_.step();
  EXPECT_EQ(pod_field("early", {"status", "phase"}), "Running");
}

int count_pods(Cluster& c, std::string_view phase, std::string_view prefix) {
  int n = 0;
  for (const auto& [key, p] : c.cache().all(kPods)) {
    const Value* st = json::find(*p, "status");
    if (std::string(name_of(*p)).starts_with(prefix) && !terminating(*p) && st &&
        json::string_or(*st, "phase") == phase)
      ++n;
  }
  return n;
}

// Deployment "web": `replicas` pods with a GPU each.
std::string web_deployment(int replicas) {
  return fmt::format(
      R"({{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"web"}},"spec":{{
    "replicas":{},"selector":{{"matchLabels":{{"app":"web"}}}},"template":{{"metadata":{{"labels":{{"app":"web"}}}},
    "spec":{{"containers":[{{"name":"c","image":"i"}}],"resourceClaims":[{{"name":"gpu","resourceClaimTemplateName":"one-gpu"}}]}}}}}}}})",
      replicas);
}

TEST_F(ClusterTest, DeploymentsRunTheirReplicasThroughAReplicaSetAndScale) {
  create(kClaimTemplates, kTemplate);
  create(kDeployments, web_deployment(3));
  cluster_.step();
  EXPECT_EQ(count_pods(cluster_, "Running", "web-"), 3);
  Doc d = get(kDeployments, "web");
  EXPECT_EQ(json::get_int(*json::find(*d, "status"), "readyReplicas"), 3);
  ASSERT_TRUE(
      cluster_.api().modify(kDeployments, "default", "web", false, [](json::Document& o, bool) {
        o["spec"]["replicas"] = 1;
        return ok();
      }));
  cluster_.step();
  EXPECT_EQ(count_pods(cluster_, "Running", "web-"), 1);
  EXPECT_EQ(cluster_.cache().all(kClaims).size(), 1u);  // the claims of removed pods went with them
}

TEST_F(ClusterTest, ARemovedMachinesPodsAreCollectedAndReplacedElsewhere) {
  create(kClaimTemplates, kTemplate);
  create(kDeployments, web_deployment(2));
  cluster_.step();
  ASSERT_EQ(count_pods(cluster_, "Running", "web-"), 2);
  std::string victim;
  for (const auto& [key, p] : cluster_.cache().all(kPods))
    victim = json::string_or(*json::find(*p, "spec"), "nodeName");
  ASSERT_FALSE(victim.empty());
  EXPECT_FALSE(kubelets_->remove_machine("no-such-node"));
  ASSERT_TRUE(kubelets_->remove_machine(victim));
  for (int i = 0; i < 5; ++i)
    cluster_.step();
  EXPECT_FALSE(get(kNodes, victim)) << "the Node is deleted and not registered again";
  EXPECT_FALSE(store_.get(*cluster_.api().type(kLeases), "kube-node-lease", victim));
  EXPECT_EQ(count_pods(cluster_, "Running", "web-"), 2);
  for (const auto& [key, p] : cluster_.cache().all(kPods))
    EXPECT_NE(json::string_or(*json::find(*p, "spec"), "nodeName"), victim) << key;
  for (const auto& [key, c] : cluster_.cache().all(kClaims))
    EXPECT_EQ(json::write(*c).find(victim), std::string::npos) << "claim " << key << " released";
  EXPECT_FALSE(kubelets_->remove_machine(victim));
}

TEST_F(ClusterTest, JobsRunToCompletion) {
  create(
      kJobs,
      R"({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"train"},"spec":{"completions":3,
    "parallelism":2,"template":{"metadata":{"annotations":{"sim.nvdra.io/run-seconds":"0"}},"spec":{
    "restartPolicy":"Never","containers":[{"name":"c","image":"i"}]}}}})");
  for (int i = 0; i < 10; ++i)
    cluster_.step();
  Doc job = get(kJobs, "train");
  EXPECT_EQ(json::get_int(*json::find(*job, "status"), "succeeded"), 3);
  EXPECT_NE(json::write(*json::find(*job, "status")).find(R"("type":"Complete","status":"True")"),
            std::string::npos);
}

TEST_F(ClusterTest, DaemonSetsFollowNodeLabels) {
  create(kDaemonSets,
         R"({"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"agent"},"spec":{
    "selector":{"matchLabels":{"app":"agent"}},"template":{"metadata":{"labels":{"app":"agent"}},"spec":{
    "nodeSelector":{"nvidia.com/gpu.present":"true"},"containers":[{"name":"c","image":"i"}]}}}})");
  cluster_.step();
  EXPECT_EQ(count_pods(cluster_, "Running", "agent-"), 2);  // the tainted MIG node is not tolerated
  ASSERT_TRUE(cluster_.api().modify(kNodes, "", "rack-node-1", false, [](json::Document& o, bool) {
    o["metadata"]["labels"].RemoveMember("nvidia.com/gpu.present");
    return ok();
  }));
  cluster_.step();
  EXPECT_EQ(count_pods(cluster_, "Running", "agent-"), 1);
  Doc ds = get(kDaemonSets, "agent");
  EXPECT_EQ(json::get_int(*json::find(*ds, "status"), "desiredNumberScheduled"), 1);
}

TEST_F(ClusterTest, MpiJobStartsItsLauncherOnceWorkersAreReady) {
  ResourceType mpi;
  mpi.group = "kubeflow.org";
  mpi.version = "v2beta1";
  mpi.resource = "mpijobs";
  mpi.kind = "MPIJob";
  mpi.status_subresource = true;
  registry_.add(mpi);
  create(kMpiJobs,
         R"({"apiVersion":"kubeflow.org/v2beta1","kind":"MPIJob","metadata":{"name":"nb"},"spec":{
    "launcherCreationPolicy":"WaitForWorkersReady","mpiReplicaSpecs":{
    "Launcher":{"replicas":1,"template":{"metadata":{"annotations":{"sim.nvdra.io/run-seconds":"0"}},"spec":{"containers":[{"name":"l","image":"i"}]}}},
    "Worker":{"replicas":2,"template":{"spec":{"containers":[{"name":"w","image":"i"}]}}}}}})");
  for (int i = 0; i < 6; ++i)
    cluster_.step();
  EXPECT_EQ(pod_field("nb-launcher", {"status", "phase"}), "Succeeded");
  Doc job = get(kMpiJobs, "nb");
  EXPECT_NE(json::write(*json::find(*job, "status")).find(R"("type":"Succeeded","status":"True")"),
            std::string::npos);
  EXPECT_EQ(count_pods(cluster_, "Running", "nb-worker-"), 0);  // cleanPodPolicy Running
}

}  // namespace
}  // namespace nvdra::sim::cluster
