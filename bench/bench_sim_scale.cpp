// Scale scenario for nvdra-sim's scheduler: 1,000 simulated nodes × 8 GPUs (ResourceSlices as
// NVIDIA's plugin publishes them), pods with one-GPU claims from a template arriving in waves.
// Reports scheduled pods/s and the allocator's latency per pod (p50/p99), against a baseline
// measured in the same run: the same store writes a scheduler makes per pod (finalizer, claim
// status, binding) without deciding anything.
//
//   bench_sim_scale [NODES] [PODS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "base/log.h"
#include "sim/cluster/claim_controller.h"
#include "sim/cluster/cluster.h"
#include "sim/cluster/kubelet.h"
#include "sim/cluster/scheduler.h"
#include "sim/pod_binding.h"

using namespace nvdra;
using namespace nvdra::sim::cluster;
using Steady = std::chrono::steady_clock;

namespace {

void create(ClusterApi& api, const Kind& k, const std::string& ns, const std::string& body) {
  auto d = json::parse(body);
  if (!d || !api.create(k, ns, std::move(*d))) {
    std::fprintf(stderr, "create failed: %s\n", body.c_str());
    std::exit(1);
  }
}

std::string pod(int i) {
  return fmt::format(
      R"({{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p{}"}},"spec":{{"containers":[{{"name":"c",)"
      R"("image":"i","resources":{{"claims":[{{"name":"gpu"}}]}}}}],"resourceClaims":[{{"name":"gpu",)"
      R"("resourceClaimTemplateName":"one-gpu"}}]}}}})",
      i);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  const int nodes = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int pods = argc > 2 ? std::atoi(argv[2]) : 4000;
  nvdra::log::init(nvdra::log::Options{});
  sim::ResourceRegistry registry;
  sim::Store store(SystemClock::instance(), 1'000'000);
  Cluster cluster(store, registry);
  for (const char* ns : {"default", "kube-node-lease"})
    create(cluster.api(), kNamespaces, "", fmt::format(R"({{"metadata":{{"name":"{}"}}}})", ns));
  create(cluster.api(), kDeviceClasses, "",
         R"({"metadata":{"name":"gpu.nvidia.com"},"spec":{"selectors":[{"cel":{"expression":
         "device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type == 'gpu'"}}]}})");
  create(cluster.api(), kClaimTemplates, "default",
         R"({"metadata":{"name":"one-gpu"},"spec":{"spec":{"devices":{"requests":[{"name":"gpu",
         "exactly":{"deviceClassName":"gpu.nvidia.com"}}]}}}})");
  auto topo =
      parse_topology(fmt::format("name: scale\ncontrolPlane: false\nnodeGroups:\n- {{name: n, "
                                 "count: {}, gpus: 8, gpu: H100-80GB}}\n",
                                 nodes));
  if (!topo) {
    std::fprintf(stderr, "%s\n", topo.error().message.c_str());
    return 1;
  }
  cluster.add(std::make_unique<ClaimController>(cluster));
  auto sched = std::make_unique<Scheduler>(cluster);
  Scheduler* scheduler = sched.get();
  cluster.add(std::move(sched));
  cluster.add(std::make_unique<Kubelets>(cluster, std::move(*topo), KubeletOptions{}));
  auto t0 = Steady::now();
  cluster.step();
  const double setup = std::chrono::duration<double>(Steady::now() - t0).count();

  // Pods arrive in waves of 500; each wave is created, then the control plane catches up.
  auto start = Steady::now();
  for (int i = 0; i < pods;) {
    for (int j = 0; j < 500 && i < pods; ++j, ++i)
      create(cluster.api(), kPods, "default", pod(i));
    cluster.step();
  }
  const double secs = std::chrono::duration<double>(Steady::now() - start).count();
  const auto& stats = scheduler->stats();

  // Baseline: the writes alone (a claim, its finalizer and status, the pod and its binding).
  sim::Store bare_store(SystemClock::instance(), 1'000'000);
  Cluster bare(bare_store, registry);
  create(bare.api(), kNamespaces, "", R"({"metadata":{"name":"default"}})");
  auto b0 = Steady::now();
  for (int i = 0; i < pods; ++i) {
    create(bare.api(), kPods, "default", pod(i));
    create(bare.api(), kClaims, "default",
           fmt::format(R"({{"metadata":{{"name":"c{}"}},"spec":{{"devices":{{"requests":[]}}}}}})",
                       i));
    const std::string name = fmt::format("c{}", i);
    (void)bare.api().modify(kClaims, "default", name, false, [](json::Document& o, bool) {
      json::ensure_array(o["metadata"], "finalizers", o.GetAllocator())
          .PushBack("resource.kubernetes.io/delete-protection", o.GetAllocator());
      return ok();
    });
    (void)bare.api().modify(kClaims, "default", name, true, [](json::Document& o, bool) {
      json::set_string(json::ensure_object(o, "status", o.GetAllocator()), "x", "y",
                       o.GetAllocator());
      return ok();
    });
    (void)sim::bind_pod(bare_store, *bare.api().type(kPods), "default", fmt::format("p{}", i),
                        "n-0");
  }
  const double bare_secs = std::chrono::duration<double>(Steady::now() - b0).count();

  const double rate = static_cast<double>(stats.scheduled) / secs;
  const double bare_rate = pods / bare_secs;
  std::printf("nvdra-sim scheduler at scale (%d nodes x 8 GPUs, %d one-GPU pods, one process)\n",
              nodes, pods);
  std::printf("  cluster set-up (nodes, slices, leases)   %8.2f s\n", setup);
  std::printf("  scheduled                                %8lu pods (%lu attempts)\n",
              static_cast<unsigned long>(stats.scheduled),
              static_cast<unsigned long>(stats.attempts));
  std::printf("  throughput (claim, schedule, bind, run)  %8.0f pods/s\n", rate);
  std::printf("  baseline: the same writes, no decisions  %8.0f pods/s  -> %.2f x the baseline\n",
              bare_rate, rate / bare_rate);
  std::printf("  allocation latency per pod               p50 %.1f us, p99 %.1f us\n",
              percentile(stats.allocation_seconds, 0.5) * 1e6,
              percentile(stats.allocation_seconds, 0.99) * 1e6);
  std::printf("  anchor: upstream scheduler_perf DRA runs reach about 250-470 pods/s\n");
  return stats.scheduled == static_cast<uint64_t>(std::min(pods, nodes * 8)) ? 0 : 1;
}
