// The NVML backend against the stand-in libnvidia-ml.so.1 (tests/tools/mock_nvml.cpp) under a
// fake driver root: loading, discovery, fabric cliques and the MIG device lifecycle.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "agent/device/backend.h"
#include "agent/device/vfio_record.h"
#include "base/atomic_file.h"

namespace nvdra::agent {
namespace {

TEST(NvmlBackend, AMissingDriverIsAClearError) {
  auto b = make_nvml_backend(NvmlOptions{"/nonexistent-driver-root"});
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find(
                "cannot load libnvidia-ml.so.1 under driver root /nonexistent-driver-root"),
            std::string::npos)
      << b.error().message;
}

TEST(NvmlBackend, DiscoversGpusProfilesAndTheClique) {
  auto b = make_nvml_backend(NvmlOptions{NVDRA_MOCK_DRIVER_ROOT, true, true, true});
  ASSERT_TRUE(b) << b.error().message;
  auto node = (*b)->discover();
  ASSERT_TRUE(node) << node.error().message;
  EXPECT_EQ(node->driver_version, "570.158.01");
  EXPECT_EQ(node->cuda_driver_version, 12080);
  ASSERT_EQ(node->gpus.size(), 2u);
  const auto& g = node->gpus[1];
  EXPECT_EQ(g.index, 1);
  EXPECT_EQ(g.minor, 5);
  EXPECT_EQ(g.uuid, "GPU-mock-1");
  EXPECT_EQ(g.product_name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(g.brand, "Tesla");
  EXPECT_EQ(g.architecture, "Hopper");
  EXPECT_EQ(g.cuda_compute_capability, "9.0");
  EXPECT_EQ(g.pci_bus_id, "0000:3b:00.0");
  EXPECT_EQ(g.memory_bytes, 85520809984);
  EXPECT_TRUE(g.mig_capable);
  EXPECT_FALSE(g.mig_enabled);
  EXPECT_EQ(node->gpus[0].brand, "Nvidia") << "14 follows the VGaming alias of 11";
  EXPECT_EQ(node->gpus[0].addressing_mode, "HMM");
  EXPECT_EQ(g.addressing_mode, "") << "NOT_SUPPORTED: no attribute, as NVIDIA does";
  ASSERT_EQ(g.mig_profiles.size(), 2u);
  EXPECT_EQ(g.mig_profiles[0].name, "1g.10gb");
  EXPECT_EQ(g.mig_profiles[0].gi_profile_id, 19);
  EXPECT_EQ(g.mig_profiles[0].placements, (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(g.mig_profiles[1].name, "7g.80gb");
  EXPECT_EQ(g.mig_profiles[1].memory_slices, 8);
  EXPECT_EQ(node->clique_id(), "5c3a1d2e-8f4b-4e6a-9b7c-0d1e2f3a4b5c.7");
}

TEST(NvmlBackend, CreatesListsAndDestroysMigDevices) {
  auto b = make_nvml_backend(NvmlOptions{NVDRA_MOCK_DRIVER_ROOT, true, true, true});
  ASSERT_TRUE(b) << b.error().message;
  auto& backend = **b;
  auto node = backend.discover();
  ASSERT_TRUE(node);
  const auto profile = node->gpus[0].mig_profiles[0];
  EXPECT_FALSE(backend.create_mig_device(4, profile, 2));  // MIG mode is off
  ASSERT_TRUE(backend.set_mig_mode(4, true));
  auto m = backend.create_mig_device(4, profile, 2);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->parent_minor, 4);
  EXPECT_EQ(m->placement_start, 2);
  EXPECT_EQ(m->profile.name, "1g.10gb");
  EXPECT_EQ(m->uuid.rfind("MIG-", 0), 0u);
  auto again = backend.create_mig_device(4, profile, 2);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, "Insufficient Resources");
  node = backend.discover();
  ASSERT_EQ(node->mig_devices.size(), 1u);
  EXPECT_EQ(node->mig_devices[0].uuid, m->uuid);
  EXPECT_TRUE(node->gpus[0].mig_enabled);
  ASSERT_TRUE(backend.destroy_mig_device(*m));
  EXPECT_TRUE(backend.destroy_mig_device(*m));  // already gone: fine
  EXPECT_TRUE(backend.discover()->mig_devices.empty());
  ASSERT_TRUE(backend.set_mig_mode(4, false));
}

TEST(NvmlBackend, ReportsXidEventsAsHealthEvents) {
  ::setenv("NVDRA_MOCK_NVML_XID", "1:79", 1);
  auto b = make_nvml_backend(NvmlOptions{NVDRA_MOCK_DRIVER_ROOT, false, true, true});
  ASSERT_TRUE(b) << b.error().message;
  ASSERT_TRUE((*b)->discover());
  auto events = (*b)->health_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].minor, 5);
  EXPECT_EQ(events[0].xid, 79);
  EXPECT_FALSE(events[0].lost);
  EXPECT_TRUE((*b)->health_events().empty());
  ::unsetenv("NVDRA_MOCK_NVML_XID");
}

// A fake sysfs with the mock's GPU 0 (0000:1a:00.0) on the nvidia driver, in IOMMU group 17, and
// a stand-in kernel that binds the device to whatever driver_override names once drivers_probe
// is written.
class FakeSysfs {
 public:
  explicit FakeSysfs(const std::string& root) : root_(root) {
    namespace fs = std::filesystem;
    fs::remove_all(root_);
    for (const char* d : {"bus/pci/drivers/nvidia", "bus/pci/drivers/vfio-pci",
                          "kernel/iommu_groups/17", "bus/pci/devices/0000:1a:00.0"})
      fs::create_directories(root_ + "/sys/" + d);
    fs::create_directories(root_ + "/proc");
    fs::create_directories(root_ + "/dev");
    const std::string dev = device();
    fs::create_symlink(root_ + "/sys/kernel/iommu_groups/17", dev + "/iommu_group");
    fs::create_symlink(root_ + "/sys/bus/pci/drivers/nvidia", dev + "/driver");
    std::ofstream(dev + "/numa_node") << "1\n";
    std::ofstream(dev + "/driver_override") << "(null)\n";
    std::ofstream(dev + "/sriov_numvfs") << "0\n";
    std::ofstream(root_ + "/sys/bus/pci/drivers_probe");
    kernel_ = std::thread([this] {
      while (!stop_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        std::ifstream probe(root_ + "/sys/bus/pci/drivers_probe");
        std::string bus;
        probe >> bus;
        if (bus.empty()) continue;
        std::ofstream(root_ + "/sys/bus/pci/drivers_probe", std::ios::trunc);
        std::ifstream o(device() + "/driver_override");
        std::string want;
        o >> want;
        std::filesystem::remove(device() + "/driver");
        std::filesystem::create_symlink(
            root_ + "/sys/bus/pci/drivers/" + (want == "vfio-pci" ? want : "nvidia"),
            device() + "/driver");
      }
    });
  }
  ~FakeSysfs() {
    stop_ = true;
    kernel_.join();
    std::filesystem::remove_all(root_);
  }
  std::string device() const { return root_ + "/sys/bus/pci/devices/0000:1a:00.0"; }
  std::string read(const std::string& path) const {
    std::ifstream in(path);
    std::string s;
    std::getline(in, s);
    return s;
  }
  NvmlOptions options() const {
    NvmlOptions o{NVDRA_MOCK_DRIVER_ROOT};
    o.sys_root = root_ + "/sys";
    o.proc_root = root_ + "/proc";
    o.dev_root = root_ + "/dev";
    o.idle_wait = std::chrono::milliseconds(0);
    return o;
  }
  std::string root_;

 private:
  std::atomic<bool> stop_{false};
  std::thread kernel_;
};

TEST(NvmlBackend, PassesAGpuThroughWithSysfsAndGivesItBack) {
  FakeSysfs sys("/tmp/nvdra-fake-sysfs-" + std::to_string(::getpid()));
  auto b = make_nvml_backend(sys.options());
  ASSERT_TRUE(b) << b.error().message;
  auto node = (*b)->discover();
  ASSERT_TRUE(node);
  const api::GpuInfo gpu = node->gpus[0];
  EXPECT_EQ(gpu.pci_bus_id, "0000:1a:00.0");
  EXPECT_EQ(gpu.iommu_group, 17);
  EXPECT_EQ(gpu.numa_node, 1);
  EXPECT_FALSE(gpu.vfio_bound);
  EXPECT_FALSE(node->iommufd);
  EXPECT_EQ(node->gpus[1].iommu_group, -1) << "no sysfs entry: no passthrough";

  auto bound = (*b)->bind_vfio(gpu);
  ASSERT_TRUE(bound) << bound.error().message;
  EXPECT_EQ(bound->iommu_group, 17);
  EXPECT_EQ(sys.read(sys.device() + "/driver_override"), "vfio-pci");
  EXPECT_EQ(sys.read(sys.root_ + "/sys/bus/pci/drivers/nvidia/unbind"), "0000:1a:00.0");
  EXPECT_TRUE((*b)->discover()->gpus[0].vfio_bound);
  EXPECT_TRUE((*b)->bind_vfio(gpu)) << "idempotent";

  ASSERT_TRUE((*b)->unbind_vfio("0000:1a:00.0"));
  EXPECT_EQ(sys.read(sys.root_ + "/sys/bus/pci/drivers/vfio-pci/unbind"), "0000:1a:00.0");
  EXPECT_EQ(sys.read(sys.device() + "/driver_override"), "");
  EXPECT_FALSE((*b)->discover()->gpus[0].vfio_bound);
  EXPECT_TRUE((*b)->unbind_vfio("0000:1a:00.0")) << "idempotent";
}

// NVML no longer lists a GPU on vfio-pci: the record beside the checkpoint is how a restarted
// agent still knows it, lists it and gives it back.
TEST(NvmlBackend, AGpuBoundByAnEarlierAgentIsRecordedAndCanBeGivenBack) {
  FakeSysfs sys("/tmp/nvdra-fake-sysfs-r-" + std::to_string(::getpid()));
  NvmlOptions o = sys.options();
  o.vfio_record_path = sys.root_ + "/plugins/gpu.nvidia.com/vfio-bound.json";
  {
    auto b = make_nvml_backend(o);
    ASSERT_TRUE(b) << b.error().message;
    const api::GpuInfo gpu = (*b)->discover()->gpus[0];
    ASSERT_TRUE((*b)->bind_vfio(gpu));
  }
  EXPECT_EQ(std::filesystem::status(o.vfio_record_path).permissions() &
                (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
            std::filesystem::perms::none);
  // The restarted agent, on a node where NVML no longer lists GPU 0.
  struct HideGpu0 {
    HideGpu0() { ::setenv("NVDRA_MOCK_NVML_HIDE_GPU0", "1", 1); }
    ~HideGpu0() { ::unsetenv("NVDRA_MOCK_NVML_HIDE_GPU0"); }
  };
  auto hidden = std::make_optional<HideGpu0>();
  auto b = make_nvml_backend(o);
  ASSERT_TRUE(b) << b.error().message;
  auto node = (*b)->discover();
  ASSERT_TRUE(node);
  const api::GpuInfo* gpu = node->gpu_by_minor(4);  // the mock's GPU 0 is /dev/nvidia4
  ASSERT_NE(gpu, nullptr) << "the GPU on vfio-pci is still the node's; the record: "
                          << read_file(o.vfio_record_path).value_or("(none)");
  EXPECT_TRUE(gpu->vfio_bound);
  EXPECT_EQ(gpu->pci_bus_id, "0000:1a:00.0");
  EXPECT_EQ(gpu->iommu_group, 17);
  ASSERT_TRUE((*b)->unbind_vfio("0000:1a:00.0"));
  hidden.reset();
  EXPECT_EQ(sys.read(sys.root_ + "/sys/bus/pci/drivers/vfio-pci/unbind"), "0000:1a:00.0");
  auto after = make_nvml_backend(o);
  ASSERT_TRUE(after);
  EXPECT_FALSE((*after)->discover()->gpus[0].vfio_bound);
  EXPECT_EQ(std::filesystem::file_size(o.vfio_record_path),
            encode_vfio_record({}).size());  // the record is empty again
}

TEST(NvmlBackend, AGpuInUseOrWithVirtualFunctionsIsNotPassedThrough) {
  FakeSysfs sys("/tmp/nvdra-fake-sysfs-busy-" + std::to_string(::getpid()));
  auto b = make_nvml_backend(sys.options());
  ASSERT_TRUE(b) << b.error().message;
  const api::GpuInfo gpu = (*b)->discover()->gpus[0];
  // A process (not us) with /dev/nvidia4 open, as /proc shows it.
  std::filesystem::create_directories(sys.root_ + "/proc/4242/fd");
  std::filesystem::create_symlink("/dev/nvidia4", sys.root_ + "/proc/4242/fd/7");
  auto busy = (*b)->bind_vfio(gpu);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().message, "GPU 4 is in use: process 4242 holds /dev/nvidia4");
  std::filesystem::remove_all(sys.root_ + "/proc/4242");
  std::ofstream(sys.device() + "/sriov_numvfs") << "2\n";
  auto vfs = (*b)->bind_vfio(gpu);
  ASSERT_FALSE(vfs);
  EXPECT_EQ(vfs.error().message,
            "GPU 0000:1a:00.0 has 2 SR-IOV virtual functions: passthrough needs 0");
  EXPECT_EQ(sys.read(sys.device() + "/driver_override"), "(null)") << "nothing was changed";
}

}  // namespace
}  // namespace nvdra::agent
