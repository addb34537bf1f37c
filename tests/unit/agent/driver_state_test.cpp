#include "agent/prepare/driver_state.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/device/sim_backend.h"
#include "agent/prepare/cd_handler.h"
#include "agent/prepare/gpu_handler.h"
#include "agent_test_support.h"
#include "base/atomic_file.h"

namespace nvdra::agent {
namespace {

using testing::claim_json;
using testing::count_files;

// The file's text, "" when it cannot be read.
std::string read_text(const std::string& path) {
  return read_file(path).value_or("");
}

constexpr const char* kMps =
    R"({"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultActiveThreadPercentage":50,"defaultPinnedDeviceMemoryLimit":"2Gi"}}})";

// One node (root folder, sim backend) and the GPU driver's pipeline over it; `restart()` builds
// a new pipeline on the same folder, as a restarted agent would.
class GpuDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = testing::temp_root("gpu");
    node_yaml =
        testing::write_node(root, "nodeName: node-a\ngpu: A100-40GB\ngpus: 2\nmig: dynamic\n");
    restart();
  }
  void TearDown() override { std::filesystem::remove_all(root); }

  void restart() {
    auto s = try_restart();
    ASSERT_TRUE(s) << s.error().message;
  }
  Status try_restart() {
    state.reset();
    backend = std::move(*SimBackend::load(node_yaml, root));
    GpuHandlerOptions o{root + "/plugins/gpu.nvidia.com", root + "/dev", "", FeatureGates{}};
    state = std::make_unique<DriverState>(DriverStateOptions{checkpoint_path(), "boot-1", "node-a"},
                                          std::make_unique<GpuHandler>(*backend, o), cluster,
                                          CdiWriter(root + "/cdi"));
    return state->start();
  }
  std::string checkpoint_path() const {
    return root + "/plugins/gpu.nvidia.com/nvdra-checkpoint.json";
  }
  void add_claim(const std::string& uid, const std::string& name,
                 const std::vector<testing::Result_>& results,
                 const std::vector<std::string>& configs = {}) {
    cluster.claims["ns/" + name] = claim_json(uid, name, results, configs);
  }
  std::string tools_log() { return read_text(root + "/var/log/nvdra-sim-tools.log"); }
  size_t mig_devices() { return backend->discover()->mig_devices.size(); }

  std::string root, node_yaml;
  testing::FakeCluster cluster;
  std::unique_ptr<SimBackend> backend;
  std::unique_ptr<DriverState> state;
};

TEST_F(GpuDriverTest, PreparesAFullGpuOnceAndAnswersRepeatsFromTheCheckpoint) {
  add_claim("u1", "c1", {{"gpu", "gpu-0"}});
  auto r = state->prepare("ns", "c1", "u1");
  ASSERT_EQ(r.error, "");
  ASSERT_EQ(r.devices.size(), 1u);
  EXPECT_EQ(r.devices[0].cdi_ids, std::vector<std::string>{"k8s.gpu.nvidia.com/claim=u1-gpu-0"});
  EXPECT_EQ(r.devices[0].requests, std::vector<std::string>{"gpu"});
  EXPECT_TRUE(std::filesystem::exists(root + "/cdi/k8s.gpu.nvidia.com-claim_u1.json"));
  const std::string log = tools_log();
  EXPECT_NE(log.find("--set-timeslice 0"), std::string::npos);  // the default TimeSlicing config
  auto again = state->prepare("ns", "c1", "u1");
  EXPECT_EQ(again.error, "");
  EXPECT_EQ(again.devices, r.devices);
  EXPECT_EQ(tools_log(), log);  // no side effects the second time
  restart();
  EXPECT_EQ(state->prepare("ns", "c1", "u1").devices, r.devices);  // also after a restart
}

TEST_F(GpuDriverTest, RefusesADeviceHeldByAnotherClaim) {
  add_claim("u1", "c1", {{"gpu", "gpu-1"}});
  add_claim("u2", "c2", {{"gpu", "gpu-1"}});
  ASSERT_EQ(state->prepare("ns", "c1", "u1").error, "");
  EXPECT_EQ(state->prepare("ns", "c2", "u2").error,
            "requested device gpu-1 is already allocated to different claim u1");
}

TEST_F(GpuDriverTest, ClaimProblemsArePerClaimErrors) {
  EXPECT_NE(state->prepare("ns", "gone", "u9").error.find("error fetching ResourceClaim"),
            std::string::npos);
  add_claim("u1", "c1", {{"gpu", "gpu-0"}});
  EXPECT_NE(state->prepare("ns", "c1", "other-uid").error.find("was replaced"), std::string::npos);
  add_claim("u2", "c2", {{"gpu", "gpu-7"}});
  EXPECT_EQ(state->prepare("ns", "c2", "u2").error,
            "error preparing devices: requested device is not allocatable: gpu-7");
  add_claim(
      "u3", "c3", {{"gpu", "gpu-0"}},
      {R"({"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","unexpectedField":1})"});
  EXPECT_NE(state->prepare("ns", "c3", "u3")
                .error.find("strict decoding error: unknown field \"unexpectedField\""),
            std::string::npos);
  add_claim("u4", "c4", {{"gpu", "gpu-0"}},
            {R"({"apiVersion":"resource.nvidia.com/v1beta1","kind":"MigDeviceConfig"})"});
  EXPECT_EQ(
      state->prepare("ns", "c4", "u4").error,
      "error preparing devices: cannot apply MigDeviceConfig to device \"gpu-0\" of type \"gpu\" "
      "(request: gpu)");
  EXPECT_EQ(count_files(root + "/cdi"), 0u);
  EXPECT_TRUE(state->snapshot().claims.empty());
}

TEST_F(GpuDriverTest, CreatesMigDevicesOnDemandAndDestroysThemOnUnprepare) {
  add_claim("u1", "c1", {{"mig", "gpu-1-mig-3g20gb-9-4"}});
  auto r = state->prepare("ns", "c1", "u1");
  ASSERT_EQ(r.error, "");
  auto node = backend->discover();
  ASSERT_EQ(node->mig_devices.size(), 1u);
  EXPECT_TRUE(node->gpus[1].mig_enabled);
  EXPECT_EQ(node->mig_devices[0].placement_start, 4);
  EXPECT_EQ(state->unprepare("u1"), "");
  node = backend->discover();
  EXPECT_TRUE(node->mig_devices.empty());
  EXPECT_TRUE(node->gpus[1].mig_enabled);  // Ampere keeps MIG mode (a change needs a GPU reset)
  EXPECT_EQ(count_files(root + "/cdi"), 0u);
  EXPECT_EQ(state->unprepare("u1"), "");  // unknown now: success
  // Handed out whole, the GPU leaves MIG mode first.
  add_claim("u2", "c2", {{"gpu", "gpu-1"}});
  ASSERT_EQ(state->prepare("ns", "c2", "u2").error, "");
  EXPECT_FALSE(backend->discover()->gpus[1].mig_enabled);
}

TEST_F(GpuDriverTest, MigDevicesGetTheirCapabilityNodesWhereTheKernelDriverHasThem) {
  // A fake /proc as NVIDIA's kernel driver lays it out.
  const std::string proc = root + "/proc";
  std::filesystem::create_directories(proc + "/driver/nvidia/capabilities/gpu1/mig/gi0/ci0");
  std::ofstream(proc + "/devices")
      << "Character devices:\n195 nvidia\n237 nvidia-caps\n\nBlock devices:\n237 nope\n";
  std::ofstream(proc + "/driver/nvidia/capabilities/gpu1/mig/gi0/access")
      << "DeviceFileMinor: 12\nDeviceFileMode: 292\n";
  std::ofstream(proc + "/driver/nvidia/capabilities/gpu1/mig/gi0/ci0/access")
      << "DeviceFileMinor: 13\nDeviceFileMode: 292\n";
  state.reset();
  GpuHandlerOptions o{root + "/plugins/gpu.nvidia.com", root + "/dev", "", FeatureGates{}, proc};
  state = std::make_unique<DriverState>(
      DriverStateOptions{root + "/plugins/gpu.nvidia.com/nvdra-checkpoint.json", "boot-1",
                         "node-a"},
      std::make_unique<GpuHandler>(*backend, o), cluster, CdiWriter(root + "/cdi"));
  ASSERT_TRUE(state->start());
  add_claim("u1", "c1", {{"mig", "gpu-1-mig-1g5gb-19-0"}});
  ASSERT_EQ(state->prepare("ns", "c1", "u1").error, "");
  const std::string spec = read_text(root + "/cdi/k8s.gpu.nvidia.com-claim_u1.json");
  EXPECT_NE(spec.find(R"("path":"/dev/nvidia-caps/nvidia-cap12")"), std::string::npos) << spec;
  EXPECT_NE(spec.find(R"("path":"/dev/nvidia-caps/nvidia-cap13")"), std::string::npos);
  EXPECT_NE(spec.find(R"("major":237,"minor":13)"), std::string::npos);
}

TEST_F(GpuDriverTest, AFailedMigCreationLeavesNothingBehind) {
  // The second device overlaps the first: the first is created, then rolled back.
  add_claim("u1", "c1", {{"a", "gpu-0-mig-1g5gb-19-0"}, {"b", "gpu-0-mig-2g10gb-14-0"}});
  auto r = state->prepare("ns", "c1", "u1");
  EXPECT_NE(r.error.find("overlap"), std::string::npos) << r.error;
  EXPECT_EQ(mig_devices(), 0u);
  EXPECT_TRUE(state->snapshot().claims.empty());
  // The fault hook: MIG creation fails with NVML's message.
  std::filesystem::create_directories(root + "/faults");
  std::ofstream(root + "/faults/mig-create-fails") << "";
  add_claim("u2", "c2", {{"a", "gpu-0-mig-1g5gb-19-0"}});
  EXPECT_NE(state->prepare("ns", "c2", "u2").error.find("Insufficient Resources"),
            std::string::npos);
  EXPECT_EQ(mig_devices(), 0u);
  std::filesystem::remove(root + "/faults/mig-create-fails");
  EXPECT_EQ(state->prepare("ns", "c2", "u2").error, "");
  EXPECT_EQ(mig_devices(), 1u);
}

TEST_F(GpuDriverTest, MpsDaemonPerClaimWithLimitsAndMounts) {
  add_claim("u1", "c1", {{"gpu", "gpu-0"}}, {kMps});
  auto r = state->prepare("ns", "c1", "u1");
  ASSERT_EQ(r.error, "");
  const std::string id = state->snapshot().claims.at("u1").mps_id;
  EXPECT_EQ(id.rfind("u1-", 0), 0u);
  const std::string dir = root + "/plugins/gpu.nvidia.com/mps/" + id;
  EXPECT_TRUE(std::filesystem::exists(dir + "/pipe/control"));
  const std::string log = tools_log();
  EXPECT_NE(log.find("-c EXCLUSIVE_PROCESS"), std::string::npos);
  EXPECT_NE(log.find("set_default_active_thread_percentage 50"), std::string::npos);
  EXPECT_NE(log.find("set_default_device_pinned_mem_limit GPU-"), std::string::npos);
  EXPECT_NE(log.find(" 2048M"), std::string::npos);
  const std::string spec = read_text(root + "/cdi/k8s.gpu.nvidia.com-claim_u1.json");
  EXPECT_NE(spec.find("CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps"), std::string::npos);
  EXPECT_NE(spec.find("\"containerPath\":\"/dev/shm\""), std::string::npos);
  EXPECT_EQ(state->unprepare("u1"), "");
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_NE(tools_log().find("<<< quit"), std::string::npos);
}

TEST_F(GpuDriverTest, RestartRollsBackHalfDoneClaimsAndRemovesOrphans) {
  add_claim("u1", "c1", {{"mig", "gpu-0-mig-2g10gb-14-0"}});
  ASSERT_EQ(state->prepare("ns", "c1", "u1").error, "");
  // A half-done claim (as a crash leaves it), an orphaned MIG device, CDI spec and MPS folder.
  Checkpoint cp = state->snapshot();
  PreparedClaim half;
  half.namespace_ = "ns";
  half.name = "c2";
  ASSERT_TRUE(backend->set_mig_mode(1, true));
  auto made = backend->create_mig_device(1, backend->discover()->gpus[1].mig_profiles[0], 6);
  ASSERT_TRUE(made) << made.error().message;
  half.devices.push_back({{"m"},
                          "node-a",
                          "gpu-1-mig-1g5gb-19-6",
                          {},
                          "mig",
                          made->uuid,
                          CreatedMig{1, "1g.5gb", 6, made->gi_id, made->uuid}});
  cp.claims["u2"] = half;
  ASSERT_TRUE(save_checkpoint(root + "/plugins/gpu.nvidia.com/nvdra-checkpoint.json", cp));
  ASSERT_TRUE(backend->set_mig_mode(0, true));
  ASSERT_TRUE(backend->create_mig_device(0, backend->discover()->gpus[0].mig_profiles[0], 6));
  std::ofstream(root + "/cdi/k8s.gpu.nvidia.com-claim_orphan.json") << "{}";
  std::filesystem::create_directories(root + "/plugins/gpu.nvidia.com/mps/orphan-00000/pipe");
  restart();
  const auto snap = state->snapshot();
  EXPECT_EQ(snap.claims.size(), 1u);
  EXPECT_TRUE(snap.claims.contains("u1"));
  auto node = backend->discover();
  ASSERT_EQ(node->mig_devices.size(), 1u);  // only u1's
  EXPECT_EQ(node->mig_devices[0].uuid, snap.claims.at("u1").devices[0].uuid);
  EXPECT_FALSE(std::filesystem::exists(root + "/cdi/k8s.gpu.nvidia.com-claim_orphan.json"));
  EXPECT_FALSE(std::filesystem::exists(root + "/plugins/gpu.nvidia.com/mps/orphan-00000"));
}

TEST_F(GpuDriverTest, AnUnreadableCheckpointIsKeptAsideAndClaimsAreRecoveredFromCdiSpecs) {
  add_claim(
      "u1", "c1", {{"mig", "gpu-0-mig-3g20gb-9-0"}},
      {R"({"apiVersion":"resource.nvidia.com/v1beta1","kind":"MigDeviceConfig","sharing":{"strategy":"MPS"}})"});
  add_claim("u2", "c2", {{"gpu", "gpu-1"}});
  ASSERT_EQ(state->prepare("ns", "c1", "u1").error, "");
  ASSERT_EQ(state->prepare("ns", "c2", "u2").error, "");
  const auto before = state->snapshot();
  const std::string path = root + "/plugins/gpu.nvidia.com/nvdra-checkpoint.json";
  std::string text = read_text(path);
  text[text.size() / 2] ^= 1;
  std::ofstream(path, std::ios::trunc) << text;
  // A MIG device no CDI spec names (a claim half prepared when the file went bad): the sweep
  // would destroy it, but after a bad checkpoint there is no sweep.
  ASSERT_TRUE(backend->set_mig_mode(1, true));
  ASSERT_TRUE(backend->create_mig_device(1, backend->discover()->gpus[1].mig_profiles[0], 6));
  restart();
  EXPECT_EQ(mig_devices(), 2u);
  EXPECT_EQ(cluster.events, std::vector<std::string>{"CheckpointUnreadable"});
  bool kept = false;
  for (const auto& e : std::filesystem::directory_iterator(root + "/plugins/gpu.nvidia.com"))
    kept = kept || e.path().filename().string().starts_with("nvdra-checkpoint.json.bad-");
  EXPECT_TRUE(kept);
  // Both claims are back, with their MIG device and MPS daemon; nothing was swept.
  const auto after = state->snapshot();
  ASSERT_EQ(after.claims.size(), 2u);
  const auto& mig = after.claims.at("u1");
  EXPECT_EQ(mig.state, ClaimState::kPrepareCompleted);
  ASSERT_EQ(mig.devices.size(), 1u);
  EXPECT_EQ(mig.devices[0].device, "gpu-0-mig-3g20gb-9-0");
  EXPECT_EQ(mig.devices[0].created_mig, before.claims.at("u1").devices[0].created_mig);
  EXPECT_EQ(mig.devices[0].cdi_ids, before.claims.at("u1").devices[0].cdi_ids);
  EXPECT_EQ(mig.mps_id, before.claims.at("u1").mps_id);
  EXPECT_EQ(after.claims.at("u2").devices[0].uuid, before.claims.at("u2").devices[0].uuid);
  // Unprepare still cleans up everything.
  EXPECT_EQ(state->unprepare("u1"), "");
  EXPECT_EQ(mig_devices(), 1u);
  EXPECT_FALSE(std::filesystem::exists(root + "/plugins/gpu.nvidia.com/mps/" + mig.mps_id));
  EXPECT_EQ(state->unprepare("u2"), "");
  EXPECT_EQ(count_files(root + "/cdi"), 0u);
}

TEST_F(GpuDriverTest, ACheckpointThatExistsButCannotBeOpenedStopsTheStartAndRemovesNothing) {
  add_claim(
      "u1", "c1", {{"mig", "gpu-0-mig-3g20gb-9-0"}},
      {R"({"apiVersion":"resource.nvidia.com/v1beta1","kind":"MigDeviceConfig","sharing":{"strategy":"MPS"}})"});
  ASSERT_EQ(state->prepare("ns", "c1", "u1").error, "");
  const std::string mps = state->snapshot().claims.at("u1").mps_id;
  // The file cannot be opened (ELOOP here; EACCES, EMFILE or EIO on a real node): it is not
  // "missing", and starting empty would sweep the running claim's devices.
  const std::string path = checkpoint_path();
  std::filesystem::rename(path, path + ".real");
  std::filesystem::create_symlink(path, path);
  auto s = try_restart();
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("exists but cannot be read"), std::string::npos)
      << s.error().message;
  EXPECT_EQ(cluster.events, std::vector<std::string>{"CheckpointUnreadable"});
  EXPECT_TRUE(std::filesystem::exists(root + "/cdi/k8s.gpu.nvidia.com-claim_u1.json"));
  EXPECT_TRUE(std::filesystem::exists(root + "/plugins/gpu.nvidia.com/mps/" + mps));
  EXPECT_EQ(mig_devices(), 1u);
  EXPECT_TRUE(std::filesystem::is_symlink(path)) << "the file is left as it is";
  // Once it can be read again, the next start finds the claim.
  std::filesystem::remove(path);
  std::filesystem::rename(path + ".real", path);
  restart();
  EXPECT_TRUE(state->snapshot().claims.contains("u1"));
  EXPECT_EQ(state->unprepare("u1"), "");
  EXPECT_EQ(mig_devices(), 0u);
}

TEST_F(GpuDriverTest, ConcurrentClaimsOnDifferentDevices) {
  for (int i = 0; i < 2; ++i)
    add_claim("u" + std::to_string(i), "c" + std::to_string(i),
              {{"gpu", "gpu-" + std::to_string(i)}});
  std::vector<std::thread> threads;
  std::vector<std::string> errors(2);
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&, i] {
      errors[i] = state->prepare("ns", "c" + std::to_string(i), "u" + std::to_string(i)).error;
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(errors, (std::vector<std::string>{"", ""}));
  EXPECT_EQ(state->snapshot().claims.size(), 2u);
}

class CdDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = testing::temp_root("cd");
    CdHandlerOptions o{root + "/plugins/compute-domain.nvidia.com",
                       root + "/dev",
                       root + "/no-proc-devices",
                       "node-a",
                       "cluster.1",
                       FeatureGates{}};
    state = std::make_unique<DriverState>(
        DriverStateOptions{root + "/plugins/compute-domain.nvidia.com/nvdra-checkpoint.json", "b",
                           "node-a"},
        std::make_unique<CdHandler>(cluster, o), cluster, CdiWriter(root + "/cdi"));
    ASSERT_TRUE(state->start());
    cluster.domains["cd1"] =
        R"({"metadata":{"namespace":"ns","name":"dom","uid":"cd1"},"status":{"nodes":[{"name":"node-a","status":"Ready"}]}})";
  }
  void TearDown() override { std::filesystem::remove_all(root); }
  std::string channel(const std::string& domain, const std::string& mode = "") {
    return fmt::format(
        R"({{"apiVersion":"resource.nvidia.com/v1beta1","kind":"ComputeDomainChannelConfig","domainID":"{}"{}}})",
        domain, mode.empty() ? "" : R"(,"allocationMode":")" + mode + "\"");
  }
  std::string root;
  testing::FakeCluster cluster;
  std::unique_ptr<DriverState> state;
};

TEST_F(CdDriverTest, ChannelLabelsTheNodeAndInjectsTheChannel) {
  cluster.claims["ns/w"] = claim_json("u1", "w", {{"channel", "channel-0"}}, {channel("cd1")},
                                      "compute-domain.nvidia.com");
  auto r = state->prepare("ns", "w", "u1");
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(cluster.labels["resource.nvidia.com/computeDomain"], "cd1");
  EXPECT_TRUE(std::filesystem::exists(root + "/dev/nvidia-caps-imex-channels/channel0"));
  EXPECT_NE(read_text(root + "/cdi/k8s.compute-domain.nvidia.com-claim_u1.json")
                .find("/dev/nvidia-caps-imex-channels/channel0"),
            std::string::npos);
  EXPECT_EQ(state->unprepare("u1"), "");
  EXPECT_FALSE(cluster.labels.contains("resource.nvidia.com/computeDomain"));
  EXPECT_FALSE(std::filesystem::exists(root + "/dev/nvidia-caps-imex-channels/channel0"));
}

TEST_F(CdDriverTest, AllocationModeAllInjectsEveryChannel) {
  cluster.claims["ns/w"] = claim_json("u1", "w", {{"channel", "channel-0"}},
                                      {channel("cd1", "All")}, "compute-domain.nvidia.com");
  ASSERT_EQ(state->prepare("ns", "w", "u1").error, "");
  EXPECT_EQ(count_files(root + "/dev/nvidia-caps-imex-channels"), 2048u);
  EXPECT_NE(
      read_text(root + "/cdi/k8s.compute-domain.nvidia.com-claim_u1.json").find("channel2047"),
      std::string::npos);
}

TEST_F(CdDriverTest, ChannelNodesAreOwnerOnlyAndOnlyTheOnesNvdraMadeAreRemoved) {
  // channel1 is the NVIDIA driver's (there before nvdra): it stays, whatever happens.
  const std::string dir = root + "/dev/nvidia-caps-imex-channels";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/channel1") << "";
  cluster.claims["ns/w"] = claim_json("u1", "w", {{"channel", "channel-0"}},
                                      {channel("cd1", "All")}, "compute-domain.nvidia.com");
  ASSERT_EQ(state->prepare("ns", "w", "u1").error, "");
  const auto perms = std::filesystem::status(dir + "/channel0").permissions();
  EXPECT_EQ(perms & std::filesystem::perms::others_all, std::filesystem::perms::none);
  EXPECT_EQ(perms & std::filesystem::perms::group_all, std::filesystem::perms::none);
  // In the container the node is 0666, as NVIDIA's.
  EXPECT_NE(read_text(root + "/cdi/k8s.compute-domain.nvidia.com-claim_u1.json")
                .find(R"("fileMode":438)"),
            std::string::npos);
  EXPECT_EQ(state->unprepare("u1"), "");
  EXPECT_FALSE(std::filesystem::exists(dir + "/channel0"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/channel2047"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/channel1"));
}

TEST_F(CdDriverTest, ADaemonClaimOutsideTheDomainsAndTheDriversNamespaceIsRefused) {
  const std::string daemon =
      R"({"apiVersion":"resource.nvidia.com/v1beta1","kind":"ComputeDomainDaemonConfig","domainID":"cd1"})";
  cluster.claims["other/d"] = claim_json("u1", "d", {{"daemon", "daemon-0"}}, {daemon},
                                         "compute-domain.nvidia.com", "other");
  EXPECT_EQ(state->prepare("other", "d", "u1").error,
            "error preparing devices: the ResourceClaim's namespace is different than the "
            "ComputeDomain's namespace");
  EXPECT_FALSE(std::filesystem::exists(root + "/plugins/compute-domain.nvidia.com/domains/cd1"));
  // The controller's daemon claims are in the driver's namespace.
  cluster.claims["nvdra-system/d"] = claim_json("u2", "d", {{"daemon", "daemon-0"}}, {daemon},
                                                "compute-domain.nvidia.com", "nvdra-system");
  EXPECT_EQ(state->prepare("nvdra-system", "d", "u2").error, "");
}

TEST_F(CdDriverTest, NvidiaErrorsForBadChannelClaims) {
  cluster.claims["ns/a"] = claim_json("u1", "a", {{"channel", "channel-0"}}, {channel("nope")},
                                      "compute-domain.nvidia.com");
  EXPECT_EQ(state->prepare("ns", "a", "u1").error,
            "error preparing devices: ComputeDomain not found: nope");
  cluster.domains["cd2"] = R"({"metadata":{"namespace":"other","name":"d2","uid":"cd2"}})";
  cluster.claims["ns/b"] = claim_json("u2", "b", {{"channel", "channel-0"}}, {channel("cd2")},
                                      "compute-domain.nvidia.com");
  EXPECT_EQ(state->prepare("ns", "b", "u2").error,
            "error preparing devices: the ResourceClaim's namespace is different than the "
            "ComputeDomain's namespace");
  cluster.labels["resource.nvidia.com/computeDomain"] = "cd-other";
  cluster.claims["ns/c"] = claim_json("u3", "c", {{"channel", "channel-0"}}, {channel("cd1")},
                                      "compute-domain.nvidia.com");
  EXPECT_EQ(state->prepare("ns", "c", "u3").error,
            "error preparing devices: label already exists for a different ComputeDomain");
  cluster.labels.clear();
  cluster.domains["cd1"] = R"({"metadata":{"namespace":"ns","name":"dom","uid":"cd1"}})";
  EXPECT_EQ(state->prepare("ns", "c", "u3").error,
            "error preparing devices: current node not ready in ComputeDomain");
  // Not yet: the label stays, so that the domain's IMEX daemon can start on this node.
  EXPECT_EQ(cluster.labels["resource.nvidia.com/computeDomain"], "cd1");
  // Kubelet retries once the node is Ready in the domain's status: no rollback in between.
  cluster.domains["cd1"] = R"({"metadata":{"namespace":"ns","name":"dom","uid":"cd1"},)"
                           R"("status":{"nodes":[{"name":"node-a","status":"Ready"}]}})";
  EXPECT_EQ(state->prepare("ns", "c", "u3").error, "");
  EXPECT_EQ(cluster.labels["resource.nvidia.com/computeDomain"], "cd1");
  EXPECT_EQ(state->unprepare("u3"), "");
  EXPECT_TRUE(cluster.labels.empty());
}

TEST_F(CdDriverTest, DaemonClaimGetsTheDomainFolderAndIdentity) {
  cluster.claims["ns/d"] = claim_json(
      "u1", "d", {{"daemon", "daemon-0"}},
      {R"({"apiVersion":"resource.nvidia.com/v1beta1","kind":"ComputeDomainDaemonConfig","domainID":"cd1"})"},
      "compute-domain.nvidia.com");
  ASSERT_EQ(state->prepare("ns", "d", "u1").error, "");
  const std::string dir = root + "/plugins/compute-domain.nvidia.com/domains/cd1";
  EXPECT_NE(read_text(dir + "/imexd.cfg.tmpl").find("SERVER_PORT=50000"), std::string::npos);
  const std::string spec = read_text(root + "/cdi/k8s.compute-domain.nvidia.com-claim_u1.json");
  for (const char* env : {"CLIQUE_ID=cluster.1", "COMPUTE_DOMAIN_UUID=cd1",
                          "COMPUTE_DOMAIN_NAME=dom", "COMPUTE_DOMAIN_NAMESPACE=ns"})
    EXPECT_NE(spec.find(env), std::string::npos) << env;
  EXPECT_NE(spec.find("\"containerPath\":\"/imexd\""), std::string::npos);
  EXPECT_EQ(state->unprepare("u1"), "");
  EXPECT_FALSE(std::filesystem::exists(dir));
}

// PassthroughSupport on an H100 node: gpu-<n> and gpu-vfio-<n> are one GPU.
class VfioDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = testing::temp_root("vfio");
    node_yaml = testing::write_node(root, "nodeName: node-a\ngpu: H100-80GB\ngpus: 2\n");
    backend = std::move(*SimBackend::load(node_yaml, root));
    start_driver(true);
  }
  void TearDown() override { std::filesystem::remove_all(root); }
  // A (new) GPU driver pipeline on the node's folder, as a (re)started agent has it.
  void start_driver(bool passthrough) {
    state.reset();
    GpuHandlerOptions o{root + "/plugins/gpu.nvidia.com", root + "/dev", "", FeatureGates{}};
    o.gates.passthrough_support = passthrough;
    state = std::make_unique<DriverState>(
        DriverStateOptions{root + "/plugins/gpu.nvidia.com/nvdra-checkpoint.json", "boot-1",
                           "node-a"},
        std::make_unique<GpuHandler>(*backend, o), cluster, CdiWriter(root + "/cdi"));
    ASSERT_TRUE(state->start());
  }
  bool bound(int minor) { return backend->discover()->gpu_by_minor(minor)->vfio_bound; }
  std::string spec(const std::string& uid) {
    return read_text(root + "/cdi/k8s.gpu.nvidia.com-claim_" + uid + ".json");
  }

  std::string root, node_yaml;
  testing::FakeCluster cluster;
  std::unique_ptr<SimBackend> backend;
  std::unique_ptr<DriverState> state;
};

TEST_F(VfioDriverTest, BindsTheGpuToVfioPciAndGivesItBackOnUnprepare) {
  cluster.claims["ns/v"] = claim_json("u1", "v", {{"gpu", "gpu-vfio-1"}});
  auto r = state->prepare("ns", "v", "u1");
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.devices[0].cdi_ids,
            std::vector<std::string>{"k8s.gpu.nvidia.com/claim=u1-gpu-vfio-1"});
  EXPECT_TRUE(bound(1));
  EXPECT_FALSE(bound(0));
  const std::string cdi = spec("u1");
  // The VFIO group (the simulated H100's GPU 1 is in IOMMU group 33), no NVIDIA device nodes,
  // no IOMMU API device unless asked for.
  EXPECT_NE(cdi.find(R"("path":"/dev/vfio/33")"), std::string::npos) << cdi;
  EXPECT_NE(cdi.find("NVIDIA_VISIBLE_DEVICES=void"), std::string::npos) << cdi;
  EXPECT_EQ(cdi.find("nvidiactl"), std::string::npos) << cdi;
  EXPECT_EQ(cdi.find("/dev/vfio/vfio"), std::string::npos) << cdi;
  EXPECT_TRUE(std::filesystem::exists(root + "/dev/vfio/33"));
  const auto snap = state->snapshot();
  EXPECT_EQ(snap.claims.at("u1").devices[0].pci_bus_id, "0000:20:00.0");
  EXPECT_EQ(snap.claims.at("u1").devices[0].type, "vfio");

  ASSERT_EQ(state->unprepare("u1"), "");
  EXPECT_FALSE(bound(1));
  EXPECT_FALSE(std::filesystem::exists(root + "/dev/vfio/33"));
}

TEST_F(VfioDriverTest, TheApiDeviceComesWithEnableAPIDevice) {
  cluster.claims["ns/v"] = claim_json(
      "u1", "v", {{"gpu", "gpu-vfio-0"}},
      {R"({"apiVersion":"resource.nvidia.com/v1beta1","kind":"VfioDeviceConfig","iommu":{"backendPolicy":"LegacyOnly","enableAPIDevice":true}})"});
  ASSERT_EQ(state->prepare("ns", "v", "u1").error, "");
  EXPECT_NE(spec("u1").find(R"("path":"/dev/vfio/vfio")"), std::string::npos) << spec("u1");
  cluster.claims["ns/bad"] = claim_json(
      "u2", "bad", {{"gpu", "gpu-vfio-1"}},
      {R"({"apiVersion":"resource.nvidia.com/v1beta1","kind":"VfioDeviceConfig","iommu":{"backendPolicy":"Sometimes"}})"});
  EXPECT_NE(state->prepare("ns", "bad", "u2").error.find("unknown IOMMU backend policy: Sometimes"),
            std::string::npos);
  EXPECT_FALSE(bound(1)) << "a refused config changes nothing";
}

TEST_F(VfioDriverTest, OneGpuServesOneClaimUnderEitherName) {
  cluster.claims["ns/g"] = claim_json("u1", "g", {{"gpu", "gpu-0"}});
  cluster.claims["ns/v"] = claim_json("u2", "v", {{"gpu", "gpu-vfio-0"}});
  ASSERT_EQ(state->prepare("ns", "g", "u1").error, "");
  EXPECT_EQ(state->prepare("ns", "v", "u2").error,
            "requested device gpu-vfio-0 is already allocated to different claim u1");
  EXPECT_FALSE(bound(0));
  ASSERT_EQ(state->unprepare("u1"), "");
  ASSERT_EQ(state->prepare("ns", "v", "u2").error, "");
  cluster.claims["ns/g2"] = claim_json("u3", "g2", {{"gpu", "gpu-0"}});
  EXPECT_EQ(state->prepare("ns", "g2", "u3").error,
            "requested device gpu-0 is already allocated to different claim u2");
}

TEST_F(VfioDriverTest, ABusyGpuIsRefusedAndAnOrphanedBindingIsUndoneOnRestart) {
  std::filesystem::create_directories(root + "/faults");
  std::ofstream(root + "/faults/gpu-busy-1") << "1";
  cluster.claims["ns/v"] = claim_json("u1", "v", {{"gpu", "gpu-vfio-1"}});
  EXPECT_NE(state->prepare("ns", "v", "u1").error.find("GPU 1 (0000:20:00.0) is in use"),
            std::string::npos);
  EXPECT_FALSE(bound(1));
  EXPECT_TRUE(state->snapshot().claims.empty());
  std::filesystem::remove(root + "/faults/gpu-busy-1");
  // A binding no checkpoint knows (the checkpoint was lost): the restarted driver undoes it.
  ASSERT_TRUE(backend->bind_vfio(*backend->discover()->gpu_by_minor(0)));
  start_driver(true);
  EXPECT_FALSE(bound(0));
}

TEST_F(VfioDriverTest, WithoutTheGateAVfioDeviceIsNotAllocatable) {
  start_driver(false);
  cluster.claims["ns/v"] = claim_json("u1", "v", {{"gpu", "gpu-vfio-0"}});
  EXPECT_EQ(state->prepare("ns", "v", "u1").error,
            "error preparing devices: requested device is not allocatable: gpu-vfio-0");
}

}  // namespace
}  // namespace nvdra::agent

namespace nvdra::agent {
namespace {

// A handler whose device work only records devices, and whose unprepare of claim "u1" fails
// while `failures` is above zero (a stuck MIG device, a daemon that does not stop).
class FlakyHandler final : public DeviceHandler {
 public:
  explicit FlakyHandler(std::atomic<int>& failures) : failures_(failures) {}
  std::string_view driver() const override { return "gpu.nvidia.com"; }
  std::string_view cdi_kind() const override { return "k8s.gpu.nvidia.com/claim"; }
  Status prepare(const ClaimInfo& claim, PreparedClaim& entry, CdiSpec&,
                 const std::function<Status()>&) override {
    for (const auto& d : claim.devices)
      entry.devices.push_back({{d.request}, d.pool, d.device, {}, "gpu", "", {}, ""});
    return ok();
  }
  Status unprepare(const std::string& uid, const PreparedClaim&) override {
    if (uid == "u1" && failures_.fetch_sub(1) > 0)
      return unexpected(ErrorCode::kIo, "the device is stuck");
    return ok();
  }
  void sweep_orphans(const Checkpoint&) override {}
  void recover(const std::string&, PreparedClaim&) override {}

 private:
  std::atomic<int>& failures_;
};

TEST(RollbackTest, AFailedRollbackAtStartMarksTheClaimAndTheRestAreServed) {
  const std::string root = testing::temp_root("rollback");
  const std::string path = root + "/nvdra-checkpoint.json";
  testing::FakeCluster cluster;
  Checkpoint cp;
  cp.boot_id = "boot-1";
  PreparedClaim half;  // a crash left it half done
  half.namespace_ = "ns";
  half.name = "c1";
  half.devices.push_back({{"gpu"}, "node-a", "gpu-0", {}, "gpu", "", {}, ""});
  cp.claims["u1"] = half;
  PreparedClaim done = half;
  done.state = ClaimState::kPrepareCompleted;
  done.name = "c2";
  done.devices[0].device = "gpu-1";
  cp.claims["u2"] = done;
  ASSERT_TRUE(save_checkpoint(path, cp));

  std::atomic<int> failures{2};  // at start and at the first retry
  std::atomic<size_t> pending{99};
  DriverStats stats;
  stats.rollbacks_pending = [&](size_t n) { pending = n; };
  DriverStateOptions o{path, "boot-1", "node-a"};
  o.rollback_retry_initial = std::chrono::milliseconds(100);
  o.rollback_retry_max = std::chrono::milliseconds(200);
  DriverState state(o, std::make_unique<FlakyHandler>(failures), cluster, CdiWriter(root + "/cdi"),
                    stats);
  auto started = state.start();
  ASSERT_TRUE(started) << started.error().message;
  EXPECT_EQ(cluster.events, std::vector<std::string>{"RollbackFailed"});
  EXPECT_EQ(pending.load(), 1u);
  // The failed claim answers an error; its device stays taken; the others are served.
  cluster.claims["ns/c1"] = testing::claim_json("u1", "c1", {{"gpu", "gpu-0"}});
  cluster.claims["ns/c3"] = testing::claim_json("u3", "c3", {{"gpu", "gpu-0"}});
  EXPECT_NE(state.prepare("ns", "c1", "u1")
                .error.find("rolling back its earlier, half-done "
                            "prepare failed (the device is stuck)"),
            std::string::npos);
  EXPECT_NE(state.unprepare("u1").find("is failed"), std::string::npos);
  EXPECT_EQ(state.prepare("ns", "c3", "u3").error,
            "requested device gpu-0 is already allocated to different claim u1");
  EXPECT_EQ(state.unprepare("u2"), "");
  // A retry in the background works; the claim can then be prepared again.
  for (int i = 0; i < 100 && state.snapshot().claims.contains("u1"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(state.snapshot().claims.contains("u1"));
  EXPECT_EQ(pending.load(), 0u);
  EXPECT_EQ(state.prepare("ns", "c1", "u1").error, "");
  EXPECT_TRUE(load_checkpoint(path)->claims.contains("u1"));
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace nvdra::agent
