// NodePrepareResources latency of nvdra-agent's pipeline over its real gRPC socket, with the sim
// device backend: a full GPU, a dynamically created MIG device and an MPS share, each prepared
// and unprepared N times. Prints p50/p99, the share of the time spent in fsync (checkpoint and
// CDI writes are durable before the reply) and the ratio to a baseline measured in the same run:
// an empty NodePrepareResources call on the same socket. Claims come from memory (the API GET
// kubelet's call costs on a real node is not included).
// Usage: bench_agent_prepare [iterations]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "agent/device/sim_backend.h"
#include "agent/plugin/kubelet_plugin.h"
#include "agent/prepare/gpu_handler.h"
#include "agent/agent_test_support.h"
#include "base/atomic_file.h"
#include "base/log.h"
#include "dra/v1/api.grpc.pb.h"

namespace v1 = ::k8s::io::kubelet::pkg::apis::dra::v1;
using namespace nvdra;
using namespace nvdra::agent;
using Clock = std::chrono::steady_clock;

namespace {

struct Sample {
  std::vector<double> micros;
  int64_t fsync_ns = 0;
  double total_ns = 0;
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 300;
  log::init(log::Options{log::Format::kText, -1});
  spdlog::set_level(spdlog::level::err);
  const std::string root = testing::temp_root("bench");
  testing::FakeCluster cluster;
  auto backend = std::move(*SimBackend::load(
      testing::write_node(root, "nodeName: node-a\ngpu: A100-40GB\ngpus: 8\nmig: dynamic\n"), root));
  GpuHandlerOptions o{root + "/p/gpu.nvidia.com", root + "/dev", "", FeatureGates{}};
  DriverState state(DriverStateOptions{root + "/p/gpu.nvidia.com/cp.json", "boot", "node-a"},
                    std::make_unique<GpuHandler>(*backend, o), cluster, CdiWriter(root + "/cdi"));
  if (!state.start()) return 1;
  KubeletPlugin plugin(state, root + "/reg", root + "/p/gpu.nvidia.com");
  if (!plugin.start()) return 1;
  auto stub = v1::DRAPlugin::NewStub(
      grpc::CreateChannel("unix://" + plugin.endpoint(), grpc::InsecureChannelCredentials()));

  auto call = [&](const std::string& uid, bool prepare) {
    grpc::ClientContext ctx;
    if (prepare) {
      v1::NodePrepareResourcesRequest req;
      if (!uid.empty()) {
        auto* c = req.add_claims();
        c->set_namespace_("ns");
        c->set_name(uid);
        c->set_uid(uid);
      }
      v1::NodePrepareResourcesResponse resp;
      auto s = stub->NodePrepareResources(&ctx, req, &resp);
      if (!s.ok() || (!uid.empty() && !resp.claims().at(uid).error().empty())) {
        std::fprintf(stderr, "prepare %s failed: %s\n", uid.c_str(),
                     s.ok() ? resp.claims().at(uid).error().c_str() : s.error_message().c_str());
        std::exit(1);
      }
    } else {
      v1::NodeUnprepareResourcesRequest req;
      auto* c = req.add_claims();
      c->set_namespace_("ns");
      c->set_name(uid);
      c->set_uid(uid);
      v1::NodeUnprepareResourcesResponse resp;
      stub->NodeUnprepareResources(&ctx, req, &resp);
    }
  };
  auto run = [&](const std::string& kind, auto claim_for) {
    Sample s;
    for (int i = 0; i < n; ++i) {
      const std::string uid = fmt::format("{}-{}", kind, i);
      cluster.claims["ns/" + uid] = claim_for(uid, i);
      const int64_t f0 = fsync_nanoseconds().load();
      const auto t0 = Clock::now();
      call(uid, true);
      const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
      s.fsync_ns += fsync_nanoseconds().load() - f0;
      s.total_ns += ns;
      s.micros.push_back(ns / 1000);
      call(uid, false);
    }
    return s;
  };
  const char* mps =
      R"({"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultActiveThreadPercentage":50}}})";
  Sample baseline;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    call("", true);
    baseline.micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  const Sample gpu = run("gpu", [](const std::string& uid, int i) {
    return testing::claim_json(uid, uid, {{"gpu", fmt::format("gpu-{}", i % 8)}});
  });
  const Sample mig = run("mig", [](const std::string& uid, int i) {
    return testing::claim_json(uid, uid, {{"mig", fmt::format("gpu-{}-mig-1g5gb-19-{}", i % 8, i % 7)}});
  });
  const Sample share = run("mps", [&](const std::string& uid, int i) {
    return testing::claim_json(uid, uid, {{"gpu", fmt::format("gpu-{}", i % 8)}}, {mps});
  });
  const double base = percentile(baseline.micros, 0.5);
  std::printf("NodePrepareResources over gRPC, sim backend, %d claims each (then unprepared)\n", n);
  std::printf("%-22s %10s %10s %12s %14s\n", "claim", "p50 us", "p99 us", "fsync share", "p50 / baseline");
  std::printf("%-22s %10.0f %10.0f %12s %14s\n", "baseline (no claims)", base,
              percentile(baseline.micros, 0.99), "-", "1.0x");
  for (const auto& [name, s] : {std::pair<const char*, const Sample&>{"full GPU", gpu},
                                {"MIG device (created)", mig},
                                {"MPS share", share}}) {
    const double p50 = percentile(s.micros, 0.5);
    std::printf("%-22s %10.0f %10.0f %11.0f%% %13.1fx\n", name, p50, percentile(s.micros, 0.99),
                100.0 * static_cast<double>(s.fsync_ns) / s.total_ns, p50 / base);
  }
  plugin.stop();
  std::filesystem::remove_all(root);
  return 0;
}
