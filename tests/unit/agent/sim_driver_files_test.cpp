// The simulated driver's files (nvdra-agent --sim-root): real device nodes that a container
// runtime can inject, and the /proc files the agent reads majors and MIG capabilities from.
#include "agent/device/sim_driver_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>

#include "agent/device/host_devices.h"
#include "agent/device/sim_backend.h"
#include "agent/prepare/driver_state.h"
#include "agent/prepare/gpu_handler.h"
#include "agent_test_support.h"
#include "base/atomic_file.h"

namespace nvdra::agent {
namespace {

namespace fs = std::filesystem;

// "c MAJOR:MINOR" of a character device node, or what the path is instead.
std::string node_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return "missing";
  if (!S_ISCHR(st.st_mode)) return "not a character device";
  return "c " + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
}

class SimDriverFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Device nodes need CAP_MKNOD: the tests run as root in CI and in `make test`.
    if (::geteuid() != 0) GTEST_SKIP() << "creating device nodes needs root (CAP_MKNOD)";
    root = testing::temp_root("simdrv");
    sim = root + "/sim";
    node_yaml =
        testing::write_node(root, "nodeName: node-a\ngpu: A100-40GB\ngpus: 2\nmig: dynamic\n");
  }
  void TearDown() override { fs::remove_all(root); }
  std::string root, sim, node_yaml;
};

TEST_F(SimDriverFilesTest, TheDriverHasDeviceNodesAndProcDevicesNamesTheirMajors) {
  auto backend = SimBackend::load(node_yaml, sim, true);
  ASSERT_TRUE(backend) << backend.error().message;
  EXPECT_EQ(node_of(sim + "/dev/nvidia0"), "c 195:0");
  EXPECT_EQ(node_of(sim + "/dev/nvidia1"), "c 195:1");
  EXPECT_EQ(node_of(sim + "/dev/nvidia2"), "missing");
  EXPECT_EQ(node_of(sim + "/dev/nvidiactl"), "c 195:255");
  EXPECT_EQ(node_of(sim + "/dev/nvidia-uvm"), "c 510:0");
  EXPECT_EQ(node_of(sim + "/dev/nvidia-uvm-tools"), "c 510:1");
  // The agent finds the majors where it finds a real driver's.
  EXPECT_EQ(char_device_major(sim + "/proc/devices", "nvidia-caps"), SimDriverFiles::kCapsMajor);
  EXPECT_EQ(char_device_major(sim + "/proc/devices", "nvidia-caps-imex-channels"),
            SimDriverFiles::kImexChannelsMajor);
  // Without driver files (nvdra-sim's layout) nothing is made.
  auto plain = SimBackend::load(node_yaml, root + "/plain");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(fs::exists(root + "/plain/dev/nvidia0"));
}

TEST_F(SimDriverFilesTest, AnotherFileInTheWayIsReplacedAndAGoodNodeKept) {
  fs::create_directories(sim + "/dev");
  ASSERT_TRUE(write_file_atomic(sim + "/dev/nvidia0", "not a device"));
  ASSERT_TRUE(SimBackend::load(node_yaml, sim, true));
  EXPECT_EQ(node_of(sim + "/dev/nvidia0"), "c 195:0");
  struct stat before {
  }, after{};
  ::stat((sim + "/dev/nvidia1").c_str(), &before);
  ASSERT_TRUE(SimBackend::load(node_yaml, sim, true));  // an agent restart
  ::stat((sim + "/dev/nvidia1").c_str(), &after);
  EXPECT_EQ(before.st_ino, after.st_ino);
}

TEST_F(SimDriverFilesTest, AMigClaimsCdiSpecNamesItsCapabilityNodesAndUnprepareRemovesThem) {
  auto backend = SimBackend::load(node_yaml, sim, true);
  ASSERT_TRUE(backend);
  testing::FakeCluster cluster;
  cluster.claims["ns/c1"] = testing::claim_json("u1", "c1", {{"mig", "gpu-1-mig-1g5gb-19-0"}}, {});
  // The agent's paths with --sim-root: /dev and /proc are the simulated driver's.
  GpuHandlerOptions o{root + "/plugins/gpu.nvidia.com", sim + "/dev", "", FeatureGates{},
                      sim + "/proc"};
  DriverState state(DriverStateOptions{root + "/plugins/gpu.nvidia.com/nvdra-checkpoint.json",
                                       "boot-1", "node-a"},
                    std::make_unique<GpuHandler>(**backend, o), cluster, CdiWriter(root + "/cdi"));
  ASSERT_TRUE(state.start());
  ASSERT_EQ(state.prepare("ns", "c1", "u1").error, "");
  const int gi_cap = SimDriverFiles::gi_capability_minor(1, 0);
  const int ci_cap = SimDriverFiles::ci_capability_minor(1, 0, 0);
  const std::string gi_node = sim + "/dev/nvidia-caps/nvidia-cap" + std::to_string(gi_cap);
  const std::string ci_node = sim + "/dev/nvidia-caps/nvidia-cap" + std::to_string(ci_cap);
  EXPECT_EQ(node_of(gi_node), "c 511:" + std::to_string(gi_cap));
  EXPECT_EQ(node_of(ci_node), "c 511:" + std::to_string(ci_cap));
  EXPECT_EQ(capability_minor(sim + "/proc/driver/nvidia/capabilities/gpu1/mig/gi0/access"), gi_cap);
  const std::string spec = read_file(root + "/cdi/k8s.gpu.nvidia.com-claim_u1.json").value_or("");
  // Every host path the spec names is a real node on this machine.
  for (const std::string& host : {sim + "/dev/nvidia1", gi_node, ci_node, sim + "/dev/nvidiactl"}) {
    EXPECT_NE(spec.find("\"hostPath\":\"" + host + "\""), std::string::npos) << host << "\n"
                                                                             << spec;
  }
  ASSERT_EQ(state.unprepare("u1"), "");
  EXPECT_EQ(node_of(gi_node), "missing");
  EXPECT_EQ(node_of(ci_node), "missing");
  EXPECT_FALSE(fs::exists(sim + "/proc/driver/nvidia/capabilities/gpu1/mig/gi0"));
}

}  // namespace
}  // namespace nvdra::agent
