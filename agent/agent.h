// nvdra-agent kubelet-plugin: one process per GPU node serving both DRA drivers
// (gpu.nvidia.com and compute-domain.nvidia.com). It owns the device backend, one prepare
// pipeline, kubelet plugin and slice publisher per driver, the health loop and the metrics.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "agent/config/opaque_config.h"
#include "agent/device/backend.h"
#include "agent/plugin/kubelet_plugin.h"
#include "agent/prepare/driver_state.h"
#include "agent/slices/publisher.h"
#include "base/asio.h"
#include "k8sclient/rest/rest_client.h"
#include "metrics/registry.h"

namespace nvdra::agent {

struct AgentOptions {
  std::string node_name;
  std::string root;  // prefix of every host path below ("" on a real node)
  std::string registry_dir = "/var/lib/kubelet/plugins_registry";
  std::string plugins_dir = "/var/lib/kubelet/plugins";
  std::string cdi_root = "/var/run/cdi";
  std::string dev_root = "/dev";
  std::string proc_root = "/proc";
  std::string host_proc_root = "/proc";  // the host's processes (passthrough: who holds a GPU)
  std::string boot_id_file = "/proc/sys/kernel/random/boot_id";
  std::string device_backend = "nvml";  // nvml | sim
  std::string sim_node_config;
  // Sim backend only: where the simulated driver's files live (<sim_root>/dev, <sim_root>/proc,
  // its state); the backend then makes real device nodes. Empty: the simulator's layout (files
  // under root, no device nodes).
  std::string sim_root;
  std::string driver_root = "/";
  std::string driver_namespace = "nvdra-system";  // where the controller's daemon claims live
  FeatureGates gates;
  std::set<int> ignored_xids = {13, 31, 43, 45, 68, 109};
};

// The device backend the options name (nvml or sim), loaded; host paths under options.root.
Result<std::unique_ptr<DeviceBackend>> make_device_backend(const AgentOptions& options);

// What the backend and the gates decide of the GPU slices' layout: dynamic MIG, and passthrough
// twins where the gate is on and the layout is the legacy one. The agent and `discover` both
// start from it, so discover prints what the agent publishes.
api::SliceLayout device_layout(const DeviceBackend& backend, const FeatureGates& gates);

// Every ResourceSlice the agent publishes for `devices` (gpu.nvidia.com, then
// compute-domain.nvidia.com), as whole objects without owner: what `nvdra-agent discover` prints.
std::vector<std::string> node_resource_slices(const std::string& node,
                                              const api::NodeDevices& devices,
                                              const api::SliceLayout& layout);

class Agent {
 public:
  Agent(net::io_context& io, std::shared_ptr<k8s::RestClient> client, AgentOptions options,
        metrics::Registry& registry);
  ~Agent();

  // Discovers devices, recovers node state and starts serving kubelet; slices follow.
  Status start();
  void stop();
  bool registered() const;

 private:
  struct Driver;
  std::string host(const std::string& path) const { return opt_.root + path; }
  awaitable<void> health_loop();
  void publish_gpu_slices();
  // Records which devices to leave out while their sibling (gpu-N / gpu-vfio-N) is prepared.
  void hide_siblings_of(const Checkpoint& c);
  awaitable<Result<std::string>> node_uid();
  awaitable<int> server_minor_version();

  net::io_context& io_;
  std::shared_ptr<k8s::RestClient> client_;
  AgentOptions opt_;
  metrics::Registry& registry_;
  std::unique_ptr<DeviceBackend> backend_;
  std::unique_ptr<ClusterAccess> cluster_;
  std::vector<std::unique_ptr<Driver>> drivers_;
  api::SliceLayout layout_;
  std::map<int, std::vector<api::DeviceTaint>> gpu_taints_;  // by GPU minor
  std::mutex hidden_mu_;          // prepared_changed runs on kubelet's gRPC threads
  std::set<std::string> hidden_;  // guarded by hidden_mu_
  bool hidden_changed_ = false;   // guarded by hidden_mu_: the health loop republishes
  Cancellation cancel_;
};

}  // namespace nvdra::agent
