#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "agent/agent.h"
#include "agent/cdi/cdi_spec.h"
#include "agent/prepare/gpu_handler.h"
#include "api/nvidia_devices.h"
#include "base/json.h"

namespace nvdra {
namespace {

api::NodeDevices h100_node(int gpus) {
  return api::simulated_node_devices("node-a", *api::find_gpu_model("H100-80GB"), gpus, "");
}

std::set<std::string> attribute_names(const json::Value& device) {
  std::set<std::string> out;
  for (auto it = device["attributes"].MemberBegin(); it != device["attributes"].MemberEnd(); ++it)
    out.insert(it->name.GetString());
  return out;
}

json::Document parse_devices(const api::SliceContent& s) {
  auto d = json::parse("[" + s.devices + "]");
  EXPECT_TRUE(d);
  return std::move(*d);
}

TEST(GpuSlices, FullGpuCarriesNvidiasAttributeSet) {
  auto slices = api::gpu_slices(h100_node(2), api::SliceLayout{});
  ASSERT_EQ(slices.size(), 1u);
  auto devices = parse_devices(slices[0]);
  ASSERT_EQ(devices.Size(), 2u);
  // test_gpu_basic.bats' exact set (addressingMode only when NVML reports one), plus index and
  // minor, which nvdra keeps for NVIDIA's gpu-test6 demo (docs/compatibility.md).
  const std::set<std::string> want = {"architecture",
                                      "brand",
                                      "cudaComputeCapability",
                                      "cudaDriverVersion",
                                      "driverVersion",
                                      "productName",
                                      "resource.kubernetes.io/pciBusID",
                                      "resource.kubernetes.io/pcieRoot",
                                      "type",
                                      "uuid",
                                      "index",
                                      "minor"};
  EXPECT_EQ(attribute_names(devices[0]), want);
  EXPECT_STREQ(devices[0]["name"].GetString(), "gpu-0");
  EXPECT_STREQ(devices[0]["attributes"]["type"]["string"].GetString(), "gpu");
  EXPECT_STREQ(devices[0]["attributes"]["driverVersion"]["version"].GetString(), "570.158.1");
  EXPECT_STREQ(devices[0]["attributes"]["cudaDriverVersion"]["version"].GetString(), "12.8.0");
  EXPECT_STREQ(devices[0]["attributes"]["cudaComputeCapability"]["version"].GetString(), "9.0.0");
  EXPECT_STREQ(devices[0]["capacity"]["memory"]["value"].GetString(), "81559Mi");
  api::SliceLayout without;
  without.index_attributes = false;
  auto plain = parse_devices(api::gpu_slices(h100_node(1), without)[0]);
  EXPECT_EQ(attribute_names(plain[0]).count("index"), 0u);
}

TEST(GpuSlices, StaticMigDevicesReplaceTheirParent) {
  auto node = h100_node(2);
  node.gpus[1].mig_enabled = true;
  api::MigDeviceInfo m;
  m.uuid = "MIG-x";
  m.parent_minor = 1;
  m.parent_uuid = node.gpus[1].uuid;
  m.profile = node.gpus[1].mig_profiles[0];  // 1g.10gb
  m.placement_start = 3;
  node.mig_devices.push_back(m);
  auto devices = parse_devices(api::gpu_slices(node, api::SliceLayout{})[0]);
  ASSERT_EQ(devices.Size(), 2u);  // gpu-0 and the MIG device; gpu-1 is not announced
  EXPECT_STREQ(devices[1]["name"].GetString(), "gpu-1-mig-1g10gb-19-3");
  auto names = attribute_names(devices[1]);
  EXPECT_TRUE(names.contains("parentUUID"));
  EXPECT_TRUE(names.contains("profile"));
  EXPECT_TRUE(names.contains("uuid"));
  EXPECT_FALSE(names.contains("index"));
  EXPECT_STREQ(devices[1]["capacity"]["memorySlice3"]["value"].GetString(), "1");
}

TEST(GpuSlices, DynamicMigPublishesCounterSetsPerGpu) {
  api::SliceLayout layout;
  layout.dynamic_mig = true;
  auto node = api::simulated_node_devices("n", *api::find_gpu_model("A100-40GB"), 2, "");
  auto combined = api::gpu_slices(node, layout);
  ASSERT_EQ(combined.size(), 2u);  // 1.34: one slice per GPU with its counter set
  auto counters = json::parse("[" + combined[0].shared_counters + "]");
  ASSERT_TRUE(counters);
  EXPECT_STREQ((*counters)[0]["name"].GetString(), "gpu-0-counter-set");
  EXPECT_TRUE((*counters)[0]["counters"].HasMember("memory-slice-7"));
  EXPECT_TRUE((*counters)[0]["counters"].HasMember("copy-engines"));
  auto devices = parse_devices(combined[0]);
  EXPECT_EQ(devices.Size(), 1u + 7 + 4 + 3 + 2 + 1 + 1);  // the GPU and every placement
  const auto& mig = devices[1];
  EXPECT_FALSE(attribute_names(mig).contains("uuid"));  // abstract: created on demand
  EXPECT_EQ(mig["consumesCounters"].Size(), 1u);
  layout.separate_counter_slice = true;  // 1.35+: counters in a slice of their own, first
  auto split = api::gpu_slices(node, layout);
  ASSERT_EQ(split.size(), 3u);
  EXPECT_TRUE(split[0].devices.empty());
  EXPECT_NE(split[0].shared_counters.find("gpu-1-counter-set"), std::string::npos);
  EXPECT_TRUE(split[1].shared_counters.empty());
  EXPECT_NE(api::resource_slice_json("gpu.nvidia.com", "n", "p-", true, 1, 3, split[0], "")
                .find("\"devices\""),
            0u);
  EXPECT_EQ(api::resource_slice_json("gpu.nvidia.com", "n", "p-", true, 1, 3, split[0], "")
                .find("\"devices\""),
            std::string::npos);
}

TEST(GpuSlices, SplitsWithinTheApiLimits) {
  api::SliceLayout layout;
  layout.max_devices_per_slice = 3;
  auto slices = api::gpu_slices(h100_node(8), layout);
  ASSERT_EQ(slices.size(), 3u);
  EXPECT_EQ(slices[0].device_names.size(), 3u);
  EXPECT_EQ(slices[2].device_names.size(), 2u);
  // An empty node still publishes one (empty) slice: the driver is up.
  EXPECT_EQ(api::gpu_slices(api::NodeDevices{}, api::SliceLayout{}).size(), 1u);
}

TEST(GpuSlices, TaintsGoOnTheNamedDevices) {
  api::SliceLayout layout;
  layout.taints["gpu-1"] = {{"gpu.nvidia.com/xid", "79", "NoSchedule"}};
  auto devices = parse_devices(api::gpu_slices(h100_node(2), layout)[0]);
  EXPECT_FALSE(devices[0].HasMember("taints"));
  ASSERT_TRUE(devices[1].HasMember("taints"));
  EXPECT_STREQ(devices[1]["taints"][0]["key"].GetString(), "gpu.nvidia.com/xid");
  EXPECT_STREQ(devices[1]["taints"][0]["effect"].GetString(), "NoSchedule");
}

// Per gpu.nvidia.com device: its JSON without what differs between two hosts of the same model
// (UUIDs, PCI address, driver and CUDA versions, addressing mode); the counter sets by name.
std::map<std::string, std::string> comparable_devices(const json::Value& list) {
  static const std::set<std::string> kHostSpecific = {"uuid",
                                                      "resource.kubernetes.io/pciBusID",
                                                      "resource.kubernetes.io/pcieRoot",
                                                      "driverVersion",
                                                      "cudaDriverVersion",
                                                      "addressingMode",
                                                      "parentUUID"};
  std::map<std::string, std::string> out;
  for (const auto& item : list["items"].GetArray()) {
    const json::Value& spec = item["spec"];
    if (std::string_view(spec["driver"].GetString()) != api::kGpuDriver) continue;
    json::Document copy;
    copy.CopyFrom(spec, copy.GetAllocator());
    if (copy.HasMember("sharedCounters")) {
      for (const auto& set : copy["sharedCounters"].GetArray())
        out[std::string("counters/") + set["name"].GetString()] = agent::canonical_json(set);
    }
    if (!copy.HasMember("devices")) continue;
    for (auto& d : copy["devices"].GetArray()) {
      for (const auto& name : kHostSpecific)
        d["attributes"].RemoveMember(name.c_str());
      out[d["name"].GetString()] = agent::canonical_json(d);
    }
  }
  return out;
}

// What `nvdra-agent discover --feature-gates DynamicMIG=true` printed on a real H200 (NVML
// 580.159.04; docs/hardware.md) against the simulator's H200: the same devices, attributes,
// capacities and counters, so a claim that fits one fits the other.
TEST(GpuSlices, TheSimulatedH200PublishesWhatARealOneDoes) {
  std::ifstream in(std::string(NVDRA_SOURCE_DIR) +
                   "/tests/fixtures/hardware/h200-discover-dynamic-mig.json");
  std::stringstream text;
  text << in.rdbuf();
  auto real = json::parse(text.str());
  ASSERT_TRUE(real) << "fixture unreadable";
  api::SliceLayout layout;
  layout.dynamic_mig = true;
  layout.separate_counter_slice = true;
  const auto sim = agent::node_resource_slices(
      "h200", api::simulated_node_devices("h200", *api::find_gpu_model("H200-141GB"), 1, ""),
      layout);
  std::string items;
  for (const auto& s : sim)
    items += (items.empty() ? "" : ",") + s;
  auto simulated = json::parse(R"({"items":[)" + items + "]}");
  ASSERT_TRUE(simulated);
  const auto want = comparable_devices(*real), got = comparable_devices(*simulated);
  ASSERT_EQ(want.size(), 20u) << "1 GPU, 18 MIG placements, 1 counter set";
  for (const auto& [name, device] : want) {
    auto it = got.find(name);
    ASSERT_NE(it, got.end()) << name << " is not simulated";
    EXPECT_EQ(it->second, device) << name;
  }
  EXPECT_EQ(got.size(), want.size());
}

TEST(GpuSlices, PassthroughPublishesEachWholeGpuTwice) {
  api::SliceLayout layout;
  layout.passthrough = true;
  auto node = h100_node(2);
  node.gpus[1].mig_enabled = true;  // a GPU in MIG mode is not passed through
  auto slices = api::gpu_slices(node, layout);
  ASSERT_EQ(slices.size(), 1u);
  EXPECT_EQ(slices[0].device_names, (std::vector<std::string>{"gpu-0", "gpu-vfio-0"}));
  auto devices = parse_devices(slices[0]);
  const json::Value& vfio = devices[1];
  EXPECT_EQ(attribute_names(vfio),
            (std::set<std::string>{"type", "uuid", "productName", "deviceID", "vendorID", "numa",
                                   "iommuFDEnabled", "resource.kubernetes.io/pciBusID",
                                   "resource.kubernetes.io/pcieRoot"}));
  EXPECT_EQ(std::string(vfio["attributes"]["type"]["string"].GetString()), "vfio");
  EXPECT_EQ(std::string(vfio["attributes"]["deviceID"]["string"].GetString()), "0x2330");
  EXPECT_EQ(std::string(vfio["attributes"]["uuid"]["string"].GetString()),
            "f65ec820-3536-50aa-833a-70a3039b4742");  // uuid5(DNS, "0000:10:00.0")
  EXPECT_EQ(std::string(vfio["capacity"]["addressableMemory"]["value"].GetString()), "81559Mi");

  // A prepared device hides its sibling; a GPU bound to vfio-pci is only its VFIO device.
  layout.hidden = {"gpu-vfio-0"};
  EXPECT_EQ(api::gpu_slices(node, layout)[0].device_names, std::vector<std::string>{"gpu-0"});
  layout.hidden = {"gpu-0"};
  node.gpus[0].vfio_bound = true;
  EXPECT_EQ(api::gpu_slices(node, layout)[0].device_names, std::vector<std::string>{"gpu-vfio-0"});
  layout.passthrough = false;
  node.gpus[0].vfio_bound = false;
  EXPECT_EQ(api::gpu_slices(node, layout)[0].device_names, std::vector<std::string>{"gpu-0"})
      << "without the gate nothing is hidden or doubled";
}

TEST(DeviceNames, VfioNamesUuidsAndMinors) {
  EXPECT_EQ(api::vfio_device_name(3), "gpu-vfio-3");
  EXPECT_EQ(api::device_type_of("gpu-vfio-3"), "vfio");
  EXPECT_EQ(api::gpu_minor_of("gpu-vfio-3"), 3);
  EXPECT_EQ(api::gpu_minor_of("gpu-12"), 12);
  EXPECT_EQ(api::gpu_minor_of("gpu-1-mig-1g10gb-19-0"), std::nullopt);
  EXPECT_EQ(api::gpu_minor_of("gpu-"), std::nullopt);
  EXPECT_EQ(api::gpu_minor_of("channel-0"), std::nullopt);
  // RFC 4122 name-based (SHA-1) UUID in the DNS namespace, as Go's uuid.NewSHA1 gives.
  EXPECT_EQ(api::vfio_uuid("0000:00:06.0"), "0bb95950-133a-5a45-b03a-84e93e2908fd");
}

TEST(ComputeDomainSlices, ChannelAndDaemonWithTheClique) {
  auto node = api::simulated_node_devices("n", *api::find_gpu_model("GB200"), 4, "c0ffee.3");
  auto s = api::compute_domain_slices(node);
  ASSERT_EQ(s.size(), 1u);
  auto devices = parse_devices(s[0]);
  EXPECT_STREQ(devices[0]["name"].GetString(), "channel-0");
  EXPECT_EQ(devices[0]["attributes"]["id"]["int"].GetInt(), 0);
  EXPECT_STREQ(devices[1]["attributes"]["type"]["string"].GetString(), "daemon");
  EXPECT_STREQ(devices[1]["attributes"]["cliqueID"]["string"].GetString(), "c0ffee.3");
}

TEST(DeviceNames, ParseAndFormat) {
  EXPECT_EQ(api::mig_device_name(1, "2g.47gb", 14, 0), "gpu-1-mig-2g47gb-14-0");
  auto n = api::parse_mig_device_name("gpu-12-mig-1g.x-y-19-6");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->parent_minor, 12);
  EXPECT_EQ(n->profile_token, "1g.x-y");
  EXPECT_EQ(n->gi_profile_id, 19);
  EXPECT_EQ(n->placement_start, 6);
  for (const char* bad :
       {"gpu-1", "gpu-x-mig-1g-19-0", "gpu-1-mig--19", "gpu-1-mig-1g-19-", "mig-1"})
    EXPECT_FALSE(api::parse_mig_device_name(bad)) << bad;
  EXPECT_EQ(api::semver_driver_version("570.158.01"), "570.158.1");
  EXPECT_EQ(api::semver_driver_version("550.54"), "550.54.0");
  EXPECT_EQ(api::device_type_of("gpu-3"), "gpu");
  EXPECT_EQ(api::device_type_of("gpu-3-mig-1g10gb-19-0"), "mig");
  EXPECT_EQ(api::device_type_of("channel-0"), "channel");
}

TEST(MigPlanner, ChecksProfilePlacementAndOverlap) {
  auto node = api::simulated_node_devices("n", *api::find_gpu_model("A100-40GB"), 1, "");
  auto want = *api::parse_mig_device_name("gpu-0-mig-3g20gb-9-4");
  auto p = agent::plan_mig_device(node, want);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->name, "3g.20gb");
  api::MigDeviceInfo existing;
  existing.parent_minor = 0;
  existing.profile = node.gpus[0].mig_profiles[2];  // 2g.10gb, 2 slices
  existing.placement_start = 4;
  existing.uuid = "MIG-e";
  node.mig_devices.push_back(existing);
  auto overlap = agent::plan_mig_device(node, want);
  ASSERT_FALSE(overlap);
  EXPECT_NE(overlap.error().message.find("overlap MIG device MIG-e"), std::string::npos);
  EXPECT_TRUE(agent::plan_mig_device(node, *api::parse_mig_device_name("gpu-0-mig-3g20gb-9-0")));
  EXPECT_FALSE(agent::plan_mig_device(
      node, *api::parse_mig_device_name("gpu-0-mig-3g20gb-9-2")));  // no such placement
  EXPECT_FALSE(agent::plan_mig_device(node, *api::parse_mig_device_name("gpu-0-mig-9g99gb-9-0")));
  EXPECT_FALSE(agent::plan_mig_device(node, *api::parse_mig_device_name("gpu-5-mig-3g20gb-9-0")));
}

TEST(Cdi, SpecJsonAndFiles) {
  agent::CdiSpec spec;
  spec.kind = "k8s.gpu.nvidia.com/claim";
  agent::CdiDevice d;
  d.name = "8e51-gpu-0";
  d.edits.device_nodes.push_back({"/dev/nvidia0", "/host/dev/nvidia0", "c", 195, 0, "rw"});
  d.edits.env.push_back("CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps");
  d.edits.mounts.push_back({"/p/pipe", "/tmp/nvidia-mps", {"rw", "bind"}});
  spec.devices.push_back(d);
  spec.common.device_nodes.push_back({"/dev/nvidiactl", "", "c", -1, -1, "rw"});
  auto doc = json::parse(agent::to_json(spec));
  ASSERT_TRUE(doc);
  EXPECT_STREQ((*doc)["cdiVersion"].GetString(), "0.6.0");
  EXPECT_STREQ((*doc)["devices"][0]["containerEdits"]["deviceNodes"][0]["hostPath"].GetString(),
               "/host/dev/nvidia0");
  EXPECT_EQ((*doc)["devices"][0]["containerEdits"]["deviceNodes"][0]["major"].GetInt(), 195);
  EXPECT_FALSE((*doc)["containerEdits"]["deviceNodes"][0].HasMember("major"));
  EXPECT_FALSE((*doc)["containerEdits"]["deviceNodes"][0].HasMember("hostPath"));
  EXPECT_EQ(agent::cdi_device_id(spec.kind, d.name), "k8s.gpu.nvidia.com/claim=8e51-gpu-0");

  const auto dir =
      std::filesystem::temp_directory_path() / ("nvdra-cdi-" + std::to_string(::getpid()));
  agent::CdiWriter w(dir.string());
  ASSERT_TRUE(w.write(spec, "uid-1"));
  EXPECT_EQ(w.claim_spec_path(spec.kind, "uid-1"),
            (dir / "k8s.gpu.nvidia.com-claim_uid-1.json").string());
  EXPECT_EQ(w.claim_uids(spec.kind), std::vector<std::string>{"uid-1"});
  EXPECT_TRUE(w.claim_uids("k8s.compute-domain.nvidia.com/claim").empty());
  EXPECT_EQ(std::filesystem::status(w.claim_spec_path(spec.kind, "uid-1")).permissions() &
                std::filesystem::perms::all,
            std::filesystem::perms(0644));
  ASSERT_TRUE(w.remove(spec.kind, "uid-1"));
  ASSERT_TRUE(w.remove(spec.kind, "uid-1"));  // already gone: fine
  EXPECT_TRUE(w.claim_uids(spec.kind).empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nvdra
