// The slice publisher against nvdra-sim's API server in this process: pool generations, in-place
// updates, splits, obsolete slices and recreation after a deletion.
#include "agent/slices/publisher.h"

#include <gtest/gtest.h>

#include <thread>

#include "support/in_process_sim.h"

namespace nvdra::agent {
namespace {

const k8s::ResourceRef kSlices{"resource.k8s.io", "v1", "resourceslices"};

struct PublishedSlice {
  std::string name;
  int64_t generation = 0, count = 0;
  size_t devices = 0;
  bool tainted = false;
  std::string owner_uid;
};

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto node = sim.io.run(sim.client->create(k8s::ResourceRef{"", "v1", "nodes"},
                                              std::string(R"({"metadata":{"name":"node-a"}})")));
    ASSERT_TRUE(node);
    node_uid = std::string((*node)->uid());
    publisher = std::make_unique<SlicePublisher>(sim.client, "gpu.nvidia.com", "node-a", node_uid);
    running = sim.io.spawn(publisher->run(&cancel));
    devices = api::simulated_node_devices("node-a", *api::find_gpu_model("H100-80GB"), 3, "");
  }
  void TearDown() override {
    cancel.cancel();
    running.wait();
  }

  std::vector<PublishedSlice> slices() {
    auto list = sim.io.run(sim.client->list_all(kSlices));
    std::vector<PublishedSlice> out;
    for (const auto& o : list->items) {
      auto d = o->doc();
      PublishedSlice s;
      s.name = std::string(o->name());
      s.generation = (*d)["spec"]["pool"]["generation"].GetInt64();
      s.count = (*d)["spec"]["pool"]["resourceSliceCount"].GetInt64();
      s.devices = (*d)["spec"]["devices"].Size();
      for (const auto& dev : (*d)["spec"]["devices"].GetArray())
        s.tainted = s.tainted || dev.HasMember("taints");
      s.owner_uid = (*d)["metadata"]["ownerReferences"][0]["uid"].GetString();
      out.push_back(s);
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
  }
  // Waits until `pred(slices())` holds (5 s), returning the last listing.
  template <class Pred>
  std::vector<PublishedSlice> wait_for(Pred pred) {
    std::vector<PublishedSlice> s;
    for (int i = 0; i < 500; ++i) {
      s = slices();
      if (pred(s)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return s;
  }

  testing::InProcessSim sim;
  std::string node_uid;
  std::unique_ptr<SlicePublisher> publisher;
  Cancellation cancel;
  std::future<void> running;
  api::NodeDevices devices;
};

TEST_F(PublisherTest, KeepsThePoolAsDesired) {
  api::SliceLayout layout;
  publisher->set_desired(api::gpu_slices(devices, layout));
  auto s = wait_for([](const auto& s) { return s.size() == 1; });
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].generation, 1);
  EXPECT_EQ(s[0].count, 1);
  EXPECT_EQ(s[0].devices, 3u);
  EXPECT_EQ(s[0].owner_uid, node_uid);
  EXPECT_EQ(s[0].name.rfind("node-a-gpu.nvidia.com-", 0), 0u);
  const std::string first = s[0].name;

  // One slice changes: updated in place, same generation (one write is atomic).
  layout.taints["gpu-1"] = {{"gpu.nvidia.com/xid", "79", "NoSchedule"}};
  publisher->set_desired(api::gpu_slices(devices, layout));
  s = wait_for([](const auto& s) { return s.size() == 1 && s[0].tainted; });
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(s[0].tainted);
  EXPECT_EQ(s[0].name, first);
  EXPECT_EQ(s[0].generation, 1);

  // Split into slices of at most two devices: a new generation on every slice.
  layout.max_devices_per_slice = 2;
  publisher->set_desired(api::gpu_slices(devices, layout));
  s = wait_for(
      [](const auto& s) { return s.size() == 2 && s[0].generation == 2 && s[1].generation == 2; });
  ASSERT_EQ(s.size(), 2u);
  for (const auto& x : s) {
    EXPECT_EQ(x.generation, 2);
    EXPECT_EQ(x.count, 2);
  }

  // Back to one slice: the obsolete one is deleted.
  layout.max_devices_per_slice = 128;
  publisher->set_desired(api::gpu_slices(devices, layout));
  s = wait_for([](const auto& s) { return s.size() == 1 && s[0].generation == 3; });
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].count, 1);
  EXPECT_EQ(s[0].devices, 3u);

  // Someone deletes it (kubelet does on restart): it comes back, generation still growing.
  ASSERT_TRUE(sim.io.run(sim.client->remove(kSlices.with_name(s[0].name))));
  s = wait_for([](const auto& s) { return s.size() == 1 && s[0].generation == 4; });
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].generation, 4);
  EXPECT_EQ(publisher->published(), 1u);
}

TEST(CanonicalJson, IgnoresKeyOrderAndServerSetTaintTimes) {
  auto a = json::parse(
      R"({"b":1,"a":{"key":"k","timeAdded":"2026-01-01T00:00:00Z","effect":"NoSchedule"}})");
  auto b = json::parse(R"({"a":{"effect":"NoSchedule","key":"k"},"b":1})");
  EXPECT_EQ(canonical_json(*a), canonical_json(*b));
  auto c = json::parse(R"({"a":{"effect":"NoExecute","key":"k"},"b":1})");
  EXPECT_NE(canonical_json(*a), canonical_json(*c));
}

}  // namespace
}  // namespace nvdra::agent
