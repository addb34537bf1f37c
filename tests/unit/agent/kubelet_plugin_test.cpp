// The agent's kubelet plugin over real unix sockets, driven by a gRPC client playing kubelet.
#include "agent/plugin/kubelet_plugin.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "agent/device/sim_backend.h"
#include "agent/prepare/gpu_handler.h"
#include "agent_test_support.h"
#include "dra/v1/api.grpc.pb.h"
#include "dra/v1beta1/api.grpc.pb.h"
#include "pluginregistration/v1/api.grpc.pb.h"

namespace nvdra::agent {
namespace {

namespace v1 = ::k8s::io::kubelet::pkg::apis::dra::v1;
namespace v1beta1 = ::k8s::io::kubelet::pkg::apis::dra::v1beta1;

class KubeletPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = testing::temp_root("grpc");
    backend = std::move(*SimBackend::load(
        testing::write_node(root, "nodeName: node-a\ngpu: H100-80GB\ngpus: 2\n"), root));
    state = std::make_unique<DriverState>(
        DriverStateOptions{root + "/p/gpu.nvidia.com/cp.json", "b", "node-a"},
        std::make_unique<GpuHandler>(*backend,
                                     GpuHandlerOptions{root + "/p/gpu.nvidia.com", root + "/dev"}),
        cluster, CdiWriter(root + "/cdi"));
    ASSERT_TRUE(state->start());
    plugin = std::make_unique<KubeletPlugin>(*state, root + "/reg", root + "/p/gpu.nvidia.com");
    ASSERT_TRUE(plugin->start());
  }
  void TearDown() override {
    plugin.reset();
    std::filesystem::remove_all(root);
  }
  std::shared_ptr<grpc::Channel> dial(const std::string& socket) {
    return grpc::CreateChannel("unix://" + socket, grpc::InsecureChannelCredentials());
  }

  std::string root;
  testing::FakeCluster cluster;
  std::unique_ptr<SimBackend> backend;
  std::unique_ptr<DriverState> state;
  std::unique_ptr<KubeletPlugin> plugin;
};

TEST_F(KubeletPluginTest, RegistersAsADraPluginListingV1First) {
  auto reg = pluginregistration::Registration::NewStub(dial(root + "/reg/gpu.nvidia.com-reg.sock"));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));  // kubelet's limit
  pluginregistration::PluginInfo info;
  ASSERT_TRUE(reg->GetInfo(&ctx, {}, &info).ok());
  EXPECT_EQ(info.type(), "DRAPlugin");
  EXPECT_EQ(info.name(), "gpu.nvidia.com");
  EXPECT_EQ(info.endpoint(), root + "/p/gpu.nvidia.com/dra.sock");
  ASSERT_EQ(info.supported_versions_size(), 2);
  EXPECT_EQ(info.supported_versions(0), "v1.DRAPlugin");
  EXPECT_EQ(info.supported_versions(1), "v1beta1.DRAPlugin");
  EXPECT_FALSE(plugin->registered());
  grpc::ClientContext ctx2;
  pluginregistration::RegistrationStatus status;
  status.set_plugin_registered(true);
  pluginregistration::RegistrationStatusResponse resp;
  ASSERT_TRUE(reg->NotifyRegistrationStatus(&ctx2, status, &resp).ok());
  EXPECT_TRUE(plugin->registered());
}

TEST_F(KubeletPluginTest, PreparesAndUnpreparesOverV1AndV1beta1) {
  cluster.claims["ns/a"] = testing::claim_json("ua", "a", {{"gpu", "gpu-0"}});
  cluster.claims["ns/b"] = testing::claim_json("ub", "b", {{"gpu", "gpu-0"}});  // same device
  auto dra = v1::DRAPlugin::NewStub(dial(plugin->endpoint()));
  v1::NodePrepareResourcesRequest req;
  for (const char* n : {"a", "b"}) {
    auto* c = req.add_claims();
    c->set_namespace_("ns");
    c->set_name(n);
    c->set_uid(std::string("u") + n);
  }
  grpc::ClientContext ctx;
  v1::NodePrepareResourcesResponse resp;
  ASSERT_TRUE(dra->NodePrepareResources(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.claims_size(), 2);
  // The two claims race for gpu-0: exactly one wins, the other gets NVIDIA's per-claim error.
  const auto& a = resp.claims().at("ua");
  const auto& b = resp.claims().at("ub");
  EXPECT_NE(a.error().empty(), b.error().empty());
  const auto& winner = a.error().empty() ? a : b;
  ASSERT_EQ(winner.devices_size(), 1);
  EXPECT_EQ(winner.devices(0).pool_name(), "node-a");
  EXPECT_EQ(winner.devices(0).device_name(), "gpu-0");
  EXPECT_EQ(winner.devices(0).request_names(0), "gpu");
  EXPECT_NE((a.error() + b.error()).find("is already allocated to different claim"),
            std::string::npos);

  // v1beta1 answers the same way (an older kubelet).
  auto beta = v1beta1::DRAPlugin::NewStub(dial(plugin->endpoint()));
  v1beta1::NodeUnprepareResourcesRequest ureq;
  for (const char* uid : {"ua", "ub", "unknown"}) {
    auto* c = ureq.add_claims();
    c->set_namespace_("ns");
    c->set_name("x");
    c->set_uid(uid);
  }
  grpc::ClientContext uctx;
  v1beta1::NodeUnprepareResourcesResponse uresp;
  ASSERT_TRUE(beta->NodeUnprepareResources(&uctx, ureq, &uresp).ok());
  EXPECT_EQ(uresp.claims_size(), 3);
  for (const auto& [uid, r] : uresp.claims())
    EXPECT_EQ(r.error(), "") << uid;
  EXPECT_TRUE(state->snapshot().claims.empty());
}

TEST_F(KubeletPluginTest, StopRemovesTheSockets) {
  plugin->stop();
  EXPECT_FALSE(std::filesystem::exists(root + "/reg/gpu.nvidia.com-reg.sock"));
  EXPECT_FALSE(std::filesystem::exists(root + "/p/gpu.nvidia.com/dra.sock"));
}

}  // namespace
}  // namespace nvdra::agent
