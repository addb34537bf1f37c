#include "sim/dra/allocator.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "sim/conversion.h"
#include "sim/yaml_json.h"
#include "tests/data/test_data.h"

namespace nvdra::sim::dra {
namespace {

using json::Value;

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A GPU device in NVIDIA's attribute layout.
std::string gpu(int index, const std::string& product, const std::string& pcie,
                const std::string& extra = "") {
  return fmt::format(
      R"({{"name":"gpu-{0}","attributes":{{"type":{{"string":"gpu"}},"index":{{"int":{0}}},)"
      R"("uuid":{{"string":"GPU-{0}"}},"productName":{{"string":"{1}"}},"driverVersion":{{"version":"550.54.15"}},)"
      R"("resource.kubernetes.io/pcieRoot":{{"string":"{2}"}}}},"capacity":{{"memory":{{"value":"80Gi"}}}}{3}}})",
      index, product, pcie, extra);
}

std::string slice(const std::string& name, const std::string& driver, const std::string& node,
                  const std::vector<std::string>& devices, const std::string& extra = "",
                  int gen = 1, int count = 1) {
  std::string devs;
  for (const auto& d : devices)
    devs += (devs.empty() ? "" : ",") + d;
  return fmt::format(
      R"({{"apiVersion":"resource.k8s.io/v1","kind":"ResourceSlice","metadata":{{"name":"{0}"}},"spec":{{)"
      R"("driver":"{1}","nodeName":"{2}","pool":{{"name":"{2}","generation":{4},"resourceSliceCount":{5}}},)"
      R"("devices":[{3}]{6}}}}})",
      name, driver, node, devs, gen, count, extra);
}

// A100-40GB MIG geometry as counters: 8 memory slices per GPU; a device consumes its placement.
std::string mig(int parent, const std::string& profile, int start, int slices) {
  std::string counters;
  for (int i = start; i < start + slices; ++i)
    counters +=
        fmt::format("{}\"memorySlice{}\":{{\"value\":\"1\"}}", counters.empty() ? "" : ",", i);
  std::string name = profile;
  name.erase(std::remove(name.begin(), name.end(), '.'), name.end());
  return fmt::format(
      R"({{"name":"gpu-{0}-mig-{1}-{2}","attributes":{{"type":{{"string":"mig"}},"profile":{{"string":"{3}"}},)"
      R"("parentUUID":{{"string":"GPU-{0}"}},"index":{{"int":{0}}}}},"consumesCounters":[{{"counterSet":"gpu-{0}-counter-set","counters":{{{4}}}}}]}})",
      parent, name, start, profile, counters);
}

std::string counter_set(int parent) {
  std::string counters;
  for (int i = 0; i < 8; ++i)
    counters +=
        fmt::format("{}\"memorySlice{}\":{{\"value\":\"1\"}}", counters.empty() ? "" : ",", i);
  return fmt::format(R"({{"name":"gpu-{}-counter-set","counters":{{{}}}}})", parent, counters);
}

std::string all_slices_consumed(int parent) {
  std::string counters;
  for (int i = 0; i < 8; ++i)
    counters +=
        fmt::format("{}\"memorySlice{}\":{{\"value\":\"1\"}}", counters.empty() ? "" : ",", i);
  return fmt::format(
      R"(,"consumesCounters":[{{"counterSet":"gpu-{}-counter-set","counters":{{{}}}}}])", parent,
      counters);
}

class AllocatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Our DeviceClasses (NVIDIA's five) from the manifests.
    auto docs =
        parse_yaml_documents(read(std::string(NVDRA_MANIFESTS_DIR) + "/base/deviceclasses.yaml"));
    ASSERT_TRUE(docs);
    for (const auto& d : *docs) {
      auto c = parse_device_class(d);
      ASSERT_TRUE(c) << c.error().message;
      classes_[c->name] = std::move(*c);
    }
    // node-a: 8 A100s on two PCIe roots. node-b: a partitionable A100 with MIG placements.
    std::vector<std::string> a;
    for (int i = 0; i < 8; ++i)
      a.push_back(gpu(i, "NVIDIA A100-SXM4-40GB", i < 4 ? "pci0" : "pci1"));
    add(slice("node-a-gpu", "gpu.nvidia.com", "node-a", a));
    std::vector<std::string> b = {gpu(0, "NVIDIA A100-SXM4-40GB", "pci0", all_slices_consumed(0))};
    for (int p = 0; p < 7; ++p)
      b.push_back(mig(0, "1g.5gb", p, 1));
    for (int p : {0, 2, 4})
      b.push_back(mig(0, "2g.10gb", p, 2));
    for (int p : {0, 4})
      b.push_back(mig(0, "3g.20gb", p, 4));
    add(slice("node-b-gpu", "gpu.nvidia.com", "node-b", b,
              ",\"sharedCounters\":[" + counter_set(0) + "]"));
    // IMEX channels on every node of the clique, as compute-domain.nvidia.com publishes them.
    std::vector<std::string> ch;
    for (int i = 0; i < 4; ++i)
      ch.push_back(fmt::format(
          R"({{"name":"channel-{0}","attributes":{{"type":{{"string":"channel"}},"id":{{"int":{0}}}}}}})",
          i));
    add(slice("node-a-cd", "compute-domain.nvidia.com", "node-a", ch));
  }

  void add(const std::string& text) {
    auto d = json::parse(text);
    ASSERT_TRUE(d) << text;
    auto s = parse_slice(*d);
    ASSERT_TRUE(s) << s.error().message;
    inv_.upsert(std::move(*s));
  }

  AllocationContext ctx() {
    return AllocationContext{inv_,
                             [this](std::string_view n) -> const DeviceClass* {
                               auto it = classes_.find(std::string(n));
                               return it == classes_.end() ? nullptr : &it->second;
                             },
                             allocated_};
  }

  // Allocates one claim (a ResourceClaim or just its spec.devices) and records its devices.
  Result<ClaimAllocation> alloc(const std::string& devices_json, const std::string& node) {
    auto claim = json::parse(R"({"spec":{"devices":)" + devices_json + "}}");
    EXPECT_TRUE(claim) << devices_json;
    auto r = allocate(ctx(), {&*claim}, NodeInfo{node, {}});
    if (!r) return unexpected(r.error());
    for (const auto& d : (*r)[0].devices)
      allocated_.insert(d);
    return (*r)[0];
  }

  static std::vector<std::string> devices_of(const ClaimAllocation& a) {
    std::vector<std::string> out;
    for (const auto& d : a.devices)
      out.push_back(d.device);
    return out;
  }

  Inventory inv_;
  std::map<std::string, DeviceClass> classes_;
  std::set<DeviceId> allocated_;
};

const char* kOneGpu =
    R"({"requests":[{"name":"gpu","exactly":{"deviceClassName":"gpu.nvidia.com"}}]})";

TEST_F(AllocatorTest, OneGpuIsPinnedToItsNodeWithTheNvidiaResultShape) {
  auto a = alloc(kOneGpu, "node-a");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(
      a->allocation_json,
      R"({"devices":{"results":[{"request":"gpu","driver":"gpu.nvidia.com","pool":"node-a","device":"gpu-0"}]},)"
      R"("nodeSelector":{"nodeSelectorTerms":[{"matchFields":[{"key":"metadata.name","operator":"In","values":["node-a"]}]}]}})");
  auto b = alloc(kOneGpu, "node-a");
  ASSERT_TRUE(b);
  EXPECT_EQ(devices_of(*b), std::vector<std::string>{"gpu-1"});  // gpu-0 is taken
  auto none = alloc(kOneGpu, "node-c");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
  EXPECT_NE(none.error().message.find("request gpu needs 1 more device(s), 0 found"),
            std::string::npos);
}

TEST_F(AllocatorTest, MatchAttributeBacktracksToDevicesThatAgree) {
  for (const char* d : {"gpu-0", "gpu-1", "gpu-2"})
    allocated_.insert(DeviceId{"gpu.nvidia.com", "node-a", d});
  // gpu-3 is the first free GPU but has no partner on pci0: the pair comes from pci1.
  auto a = alloc(
      R"({"requests":[{"name":"gpus","exactly":{"deviceClassName":"gpu.nvidia.com","count":2}}],
                     "constraints":[{"requests":["gpus"],"matchAttribute":"resource.kubernetes.io/pcieRoot"}]})",
      "node-a");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(devices_of(*a), (std::vector<std::string>{"gpu-4", "gpu-5"}));
}

TEST_F(AllocatorTest, AllModeTakesEveryMatchingDeviceOrNothing) {
  const char* all =
      R"({"requests":[{"name":"all","exactly":{"deviceClassName":"gpu.nvidia.com","allocationMode":"All"}}]})";
  auto a = alloc(all, "node-a");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->devices.size(), 8u);
  allocated_.clear();
  allocated_.insert(DeviceId{"gpu.nvidia.com", "node-a", "gpu-6"});
  auto b = alloc(all, "node-a");
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find("gpu-6 is already in use"), std::string::npos);
}

TEST_F(AllocatorTest, FirstAvailableFallsBackInOrder) {
  const char* req = R"({"requests":[{"name":"small","firstAvailable":[
      {"name":"mig","deviceClassName":"mig.nvidia.com","selectors":[{"cel":{"expression":"device.attributes['gpu.nvidia.com'].profile == '1g.5gb'"}}]},
      {"name":"full","deviceClassName":"gpu.nvidia.com"}]}]})";
  auto on_a = alloc(req, "node-a");  // no MIG devices there
  ASSERT_TRUE(on_a);
  EXPECT_NE(on_a->allocation_json.find(R"("request":"small/full")"), std::string::npos);
  auto on_b = alloc(req, "node-b");
  ASSERT_TRUE(on_b);
  EXPECT_NE(on_b->allocation_json.find(R"("request":"small/mig")"), std::string::npos);
  EXPECT_EQ(devices_of(*on_b), std::vector<std::string>{"gpu-0-mig-1g5gb-0"});
}

TEST_F(AllocatorTest, SharedCountersKeepMigAndTheFullGpuApart) {
  auto m =
      alloc(R"({"requests":[{"name":"m","exactly":{"deviceClassName":"mig.nvidia.com","selectors":[
                     {"cel":{"expression":"device.attributes['gpu.nvidia.com'].profile == '3g.20gb'"}}]}}]})",
            "node-b");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(devices_of(*m), std::vector<std::string>{"gpu-0-mig-3g20gb-0"});
  // The full GPU needs every memory slice: no longer possible.
  auto full = alloc(kOneGpu, "node-b");
  ASSERT_FALSE(full);
  // A second 3g fits only at placement 4; a 2g only at 4 too, after which nothing of 3g is left.
  auto m2 =
      alloc(R"({"requests":[{"name":"m","exactly":{"deviceClassName":"mig.nvidia.com","selectors":[
                      {"cel":{"expression":"device.attributes['gpu.nvidia.com'].profile == '2g.10gb'"}}]}}]})",
            "node-b");
  ASSERT_TRUE(m2);
  EXPECT_EQ(devices_of(*m2), std::vector<std::string>{"gpu-0-mig-2g10gb-4"});
  allocated_.erase(DeviceId{"gpu.nvidia.com", "node-b", "gpu-0-mig-3g20gb-0"});
  allocated_.erase(DeviceId{"gpu.nvidia.com", "node-b", "gpu-0-mig-2g10gb-4"});
  EXPECT_TRUE(alloc(kOneGpu, "node-b"));  // released counters make the full GPU possible again
}

TEST_F(AllocatorTest, ConfigComesFromTheClassThenTheClaim) {
  classes_["gpu.nvidia.com"].config.push_back(
      R"({"driver":"gpu.nvidia.com","parameters":{"kind":"GpuConfig"}})");
  auto a = alloc(R"({"requests":[{"name":"gpu","exactly":{"deviceClassName":"gpu.nvidia.com"}}],
                     "config":[{"requests":["gpu"],"opaque":{"driver":"gpu.nvidia.com","parameters":{"sharing":{"strategy":"MPS"}}}}]})",
                 "node-a");
  ASSERT_TRUE(a);
  EXPECT_NE(
      a->allocation_json.find(
          R"("config":[{"source":"FromClass","requests":["gpu"],"opaque":{"driver":"gpu.nvidia.com","parameters":{"kind":"GpuConfig"}}},)"
          R"({"source":"FromClaim","requests":["gpu"],"opaque":{"driver":"gpu.nvidia.com","parameters":{"sharing":{"strategy":"MPS"}}}}])"),
      std::string::npos)
      << a->allocation_json;
}

TEST_F(AllocatorTest, AdminAccessMayShareAllocatedDevices) {
  allocated_.insert(DeviceId{"gpu.nvidia.com", "node-a", "gpu-0"});
  auto a = alloc(
      R"({"requests":[{"name":"mon","exactly":{"deviceClassName":"gpu.nvidia.com","allocationMode":"All","adminAccess":true}}]})",
      "node-a");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(a->devices.empty());  // admin access holds nothing
  EXPECT_NE(a->allocation_json.find(R"("device":"gpu-0","adminAccess":true)"), std::string::npos);
}

TEST_F(AllocatorTest, ClaimsThatCanNeverBeAllocatedSayWhy) {
  auto no_class = alloc(
      R"({"requests":[{"name":"x","exactly":{"deviceClassName":"imex.nvidia.com"}}]})", "node-a");
  ASSERT_FALSE(no_class);
  EXPECT_NE(no_class.error().message.find("device class imex.nvidia.com does not exist"),
            std::string::npos);
  auto bad_mode = alloc(
      R"({"requests":[{"name":"x","exactly":{"deviceClassName":"gpu.nvidia.com","allocationMode":"Some"}}]})",
      "node-a");
  ASSERT_FALSE(bad_mode);
  EXPECT_EQ(bad_mode.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_mode.error().message.find("unknown allocationMode Some"), std::string::npos);
  // An attribute no device has: a CEL runtime error aborts, as the real scheduler does.
  auto runtime =
      alloc(R"({"requests":[{"name":"x","exactly":{"deviceClassName":"gpu.nvidia.com","selectors":[
                           {"cel":{"expression":"device.attributes['gpu.nvidia.com'].nope == 1"}}]}}]})",
            "node-a");
  ASSERT_FALSE(runtime);
  EXPECT_EQ(runtime.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(runtime.error().message.find("no such key: nope"), std::string::npos);
  auto parse =
      alloc(R"({"requests":[{"name":"x","exactly":{"deviceClassName":"gpu.nvidia.com","selectors":[
                         {"cel":{"expression":"device.driver ="}}]}}]})",
            "node-a");
  ASSERT_FALSE(parse);
  EXPECT_NE(parse.error().message.find("syntax error"), std::string::npos);
  auto h200 =
      alloc(R"J({"requests":[{"name":"x","exactly":{"deviceClassName":"gpu.nvidia.com","selectors":[
                        {"cel":{"expression":"device.attributes['gpu.nvidia.com'].productName.matches('H200')"}}]}}]})J",
            "node-a");
  ASSERT_FALSE(h200);
  EXPECT_EQ(h200.error().code, ErrorCode::kNotFound);
}

TEST_F(AllocatorTest, PodWithSeveralClaimsGetsDistinctDevices) {
  auto c1 = json::parse(
      R"({"spec":{"devices":{"requests":[{"name":"g","exactly":{"deviceClassName":"gpu.nvidia.com","count":4}}]}}})");
  auto c2 = json::parse(
      R"({"spec":{"devices":{"requests":[{"name":"g","exactly":{"deviceClassName":"gpu.nvidia.com","count":4}}]}}})");
  auto r = allocate(ctx(), {&*c1, &*c2}, NodeInfo{"node-a", {}});
  ASSERT_TRUE(r);
  EXPECT_EQ(devices_of((*r)[0]), (std::vector<std::string>{"gpu-0", "gpu-1", "gpu-2", "gpu-3"}));
  EXPECT_EQ(devices_of((*r)[1]), (std::vector<std::string>{"gpu-4", "gpu-5", "gpu-6", "gpu-7"}));
  auto c3 = json::parse(
      R"({"spec":{"devices":{"requests":[{"name":"g","exactly":{"deviceClassName":"gpu.nvidia.com","count":1}}]}}})");
  EXPECT_FALSE(allocate(ctx(), {&*c1, &*c2, &*c3}, NodeInfo{"node-a", {}}));
}

TEST_F(AllocatorTest, OnlyTheNewestGenerationOfAPoolCountsAndDuplicatesInvalidateIt) {
  add(slice("node-d-old", "gpu.nvidia.com", "node-d", {gpu(0, "X", "p")}, "", 1));
  add(slice("node-d-new", "gpu.nvidia.com", "node-d", {gpu(1, "X", "p")}, "", 2));
  auto a = alloc(kOneGpu, "node-d");
  ASSERT_TRUE(a);
  EXPECT_EQ(devices_of(*a), std::vector<std::string>{"gpu-1"});
  add(slice("node-e-1", "gpu.nvidia.com", "node-e", {gpu(0, "X", "p")}, "", 1, 2));
  add(slice("node-e-2", "gpu.nvidia.com", "node-e", {gpu(0, "X", "p")}, "", 1, 2));
  EXPECT_FALSE(alloc(kOneGpu, "node-e"));  // gpu-0 twice: the pool is invalid
}

// Every claim shape in NVIDIA's demo manifests allocates on a node that has such devices (or, for
// the retired imex.nvidia.com class, is refused with a reason).
TEST_F(AllocatorTest, CompatCorpusClaims) {
  NVDRA_DATA_DIR(compat, testdata::kCompat);
  // A node with everything the corpus asks for: 8 A100s (above), VFIO GPUs in one size-2 Fabric
  // Manager partition (fabric-manager-partitioning/), MIG devices on node-b.
  std::vector<std::string> vfio;
  for (int i = 0; i < 2; ++i)
    vfio.push_back(fmt::format(
        R"({{"name":"gpu-vfio-{0}","attributes":{{"type":{{"string":"vfio"}},"partition2":{{"int":1}}}}}})",
        i));
  std::string vfio_slice = slice("node-a-vfio", "gpu.nvidia.com", "node-a", vfio);
  const std::string pool = R"("pool":{"name":"node-a")";
  vfio_slice.replace(vfio_slice.find(pool), pool.size(), R"("pool":{"name":"node-a-vfio")");
  add(vfio_slice);
  int allocated = 0, refused = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(compat)) {
    if (entry.path().extension() != ".yaml") continue;
    auto docs = parse_yaml_documents(read(entry.path()));
    ASSERT_TRUE(docs) << entry.path();
    for (auto& d : *docs) {
      const std::string kind(json::string_or(d, "kind"));
      if (kind != "ResourceClaim" && kind != "ResourceClaimTemplate") continue;
      const std::string version(json::string_or(d, "apiVersion"));
      if (version != "resource.k8s.io/v1")
        convert_resource_api(d, kind, version.substr(version.find('/') + 1), "v1");
      const Value* spec =
          kind == "ResourceClaim" ? json::find(d, "spec") : json::find_path(d, {"spec", "spec"});
      ASSERT_TRUE(spec) << entry.path();
      const Value* devices = json::find(*spec, "devices");
      ASSERT_TRUE(devices) << entry.path();
      allocated_.clear();
      auto on_a = alloc(json::write(*devices), "node-a");
      auto on_b = on_a ? on_a : alloc(json::write(*devices), "node-b");
      if (on_b) {
        ++allocated;
      } else {
        EXPECT_NE(on_b.error().message.find("imex.nvidia.com does not exist"), std::string::npos)
            << entry.path() << ": " << on_b.error().message;
        ++refused;
      }
    }
  }
  EXPECT_GE(allocated, 12);
  EXPECT_EQ(refused, 8);  // imex-test1's four claims of the retired class, in v1 and v1beta1
}

}  // namespace
}  // namespace nvdra::sim::dra
