#include "agent/agent.h"

#include <boost/asio/use_future.hpp>

#include <fmt/format.h>

#include <fstream>

#include "agent/cluster_access.h"
#include "agent/device/sim_backend.h"
#include "agent/prepare/cd_handler.h"
#include "agent/prepare/gpu_handler.h"
#include "base/json.h"
#include "base/log.h"

namespace nvdra::agent {

struct Agent::Driver {
  std::unique_ptr<DriverState> state;
  std::unique_ptr<KubeletPlugin> plugin;
  std::unique_ptr<SlicePublisher> publisher;
};

namespace {

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

DriverStats driver_metrics(metrics::Registry& reg, const std::string& driver,
                           const std::string& node) {
  auto& requests = reg.counter("nvidia_dra_requests_total",
                               "Successful NodePrepareResources/NodeUnprepareResources claims");
  auto& duration = reg.histogram("nvidia_dra_request_duration_seconds",
                                 "Time to prepare or unprepare one claim");
  auto& by_type = reg.histogram("nvdra_agent_claim_duration_seconds",
                                "Time to prepare or unprepare one claim, by device type");
  auto& prepare_errors =
      reg.counter("nvidia_dra_node_prepare_errors_total", "Claims whose prepare failed, by reason");
  auto& unprepare_errors = reg.counter("nvidia_dra_node_unprepare_errors_total",
                                       "Claims whose unprepare failed, by reason");
  auto& devices = reg.gauge("nvidia_dra_prepared_devices", "Devices of prepared claims");
  auto& claims = reg.gauge("nvdra_agent_prepared_claims", "Claims in the checkpoint, by state");
  auto& rollbacks = reg.gauge("nvdra_agent_failed_rollback_claims",
                              "Half-done claims whose rollback failed and is being retried");
  rollbacks.Add({{"driver", driver}}).Set(0);
  for (const char* op : {"prepare", "unprepare"}) {
    requests.Add({{"driver", driver}, {"operation", op}});
    duration.Add({{"driver", driver}, {"operation", op}},
                 metrics::Registry::nvidia_request_buckets());
  }
  DriverStats s;
  s.observe = [&, driver](std::string_view op, std::string_view type, double seconds) {
    requests.Add({{"driver", driver}, {"operation", std::string(op)}}).Increment();
    duration
        .Add({{"driver", driver}, {"operation", std::string(op)}},
             metrics::Registry::nvidia_request_buckets())
        .Observe(seconds);
    by_type
        .Add({{"driver", driver},
              {"operation", std::string(op)},
              {"device_type", std::string(type)}},
             metrics::Registry::latency_buckets())
        .Observe(seconds);
  };
  s.error = [&, driver](std::string_view op, std::string_view reason) {
    (op == "prepare" ? prepare_errors : unprepare_errors)
        .Add({{"driver", driver}, {"error_type", std::string(reason)}})
        .Increment();
  };
  s.rollbacks_pending = [&, driver](size_t n) {
    rollbacks.Add({{"driver", driver}}).Set(static_cast<double>(n));
  };
  s.prepared_changed = [&, driver, node](const Checkpoint& c) {
    std::map<std::string, int> types;
    const std::vector<std::string> known =
        driver == api::kGpuDriver ? std::vector<std::string>{"gpu", "mig", "vfio", "unknown"}
                                  : std::vector<std::string>{"channel", "daemon", "unknown"};
    for (const auto& t : known)
      types[t] = 0;
    int started = 0, completed = 0;
    for (const auto& [uid, claim] : c.claims) {
      if (claim.state != ClaimState::kPrepareCompleted) {
        ++started;
        continue;
      }
      ++completed;
      for (const auto& d : claim.devices)
        ++types[types.contains(d.type) ? d.type : "unknown"];
    }
    for (const auto& [t, n] : types)
      devices.Add({{"node", node}, {"driver", driver}, {"device_type", t}}).Set(n);
    claims.Add({{"driver", driver}, {"state", "PrepareStarted"}}).Set(started);
    claims.Add({{"driver", driver}, {"state", "PrepareCompleted"}}).Set(completed);
  };
  return s;
}

}  // namespace

Agent::Agent(net::io_context& io, std::shared_ptr<k8s::RestClient> client, AgentOptions options,
             metrics::Registry& registry)
    : io_(io), client_(std::move(client)), opt_(std::move(options)), registry_(registry) {}

Agent::~Agent() {
  stop();
}

awaitable<Result<std::string>> Agent::node_uid() {
  // The Node may appear a little after the agent (kubelet registers it).
  for (int attempt = 0;; ++attempt) {
    const k8s::ResourceRef ref{"", "v1", "nodes", "", opt_.node_name};
    auto node = co_await client_->get(ref);
    if (node) co_return std::string((*node)->uid());
    if (attempt >= 60 || cancel_.cancelled())
      co_return unexpected(node.error().wrap(fmt::format("reading Node {}", opt_.node_name)));
    co_await sleep_for(std::chrono::seconds(1), &cancel_);
  }
}

awaitable<int> Agent::server_minor_version() {
  std::string method = "GET", path = "/version";
  auto r = co_await client_->raw(method, path);
  if (!r || r->status != 200) co_return 34;
  auto doc = json::parse(r->body);
  if (!doc || !doc->IsObject()) co_return 34;
  std::string minor(json::string_or(*doc, "minor"));
  while (!minor.empty() && !std::isdigit(static_cast<unsigned char>(minor.back())))
    minor.pop_back();  // "35+" on some distributions
  try {
    co_return std::stoi(minor);
  } catch (const std::exception&) {
    co_return 34;
  }
}

Result<std::unique_ptr<DeviceBackend>> make_device_backend(const AgentOptions& o) {
  if (o.device_backend == "sim") {
    if (o.sim_node_config.empty())
      return unexpected(ErrorCode::kInvalidArgument,
                        "--device-backend sim needs --sim-node-config");
    auto b = SimBackend::load(o.sim_node_config, o.root + o.sim_root, !o.sim_root.empty());
    if (!b) return unexpected(b.error());
    return std::unique_ptr<DeviceBackend>(std::move(*b));
  }
  if (o.device_backend == "nvml") {
    NvmlOptions n{o.root + (o.driver_root == "/" ? "" : o.driver_root), o.gates.dynamic_mig,
                  o.gates.crash_on_nvlink_fabric_errors, o.gates.nvml_device_health_check};
    n.sys_root = o.root + "/sys";
    n.proc_root = o.root + o.host_proc_root;
    n.dev_root = o.root + o.dev_root;
    // Beside the GPU driver's checkpoint, so it lives as long as the prepared state does.
    n.vfio_record_path = o.root + o.plugins_dir + "/gpu.nvidia.com/vfio-bound.json";
    return make_nvml_backend(n);
  }
  return unexpected(
      ErrorCode::kInvalidArgument,
      fmt::format("unknown --device-backend \"{}\" (want nvml or sim)", o.device_backend));
}

api::SliceLayout device_layout(const DeviceBackend& backend, const FeatureGates& gates) {
  api::SliceLayout layout;
  layout.dynamic_mig = backend.dynamic_mig();
  layout.passthrough = gates.passthrough_support && !layout.dynamic_mig;
  return layout;
}

std::vector<std::string> node_resource_slices(const std::string& node,
                                              const api::NodeDevices& devices,
                                              const api::SliceLayout& layout) {
  std::vector<std::string> out;
  for (const auto& [driver, slices] :
       {std::pair{api::kGpuDriver, api::gpu_slices(devices, layout)},
        std::pair{api::kComputeDomainDriver, api::compute_domain_slices(devices)}}) {
    for (const auto& content : slices)
      out.push_back(api::resource_slice_json(driver, node, fmt::format("{}-{}-", node, driver),
                                             true, 1, slices.size(), content, ""));
  }
  return out;
}

Status Agent::start() {
  set_crash_marker_dir(opt_.root.empty() ? host(opt_.plugins_dir) : opt_.root);
  auto backend = make_device_backend(opt_);
  if (!backend) return unexpected(backend.error());
  backend_ = std::move(*backend);
  auto devices = backend_->discover();
  if (!devices) return unexpected(devices.error().wrap("discovering GPUs"));
  NVDRA_INFO("discovered {} GPU(s), {} MIG device(s), driver {}, clique \"{}\"",
             devices->gpus.size(), devices->mig_devices.size(), devices->driver_version,
             devices->clique_id());

  // Before the drivers start: their checkpoints decide which passthrough twins are withdrawn.
  layout_ = device_layout(*backend_, opt_.gates);
  auto uid = net::co_spawn(io_, node_uid(), net::use_future);
  auto minor = net::co_spawn(io_, server_minor_version(), net::use_future);
  cluster_ = std::make_unique<RestClusterAccess>(io_.get_executor(), client_, opt_.node_name);
  const std::string boot_id = read_line(opt_.boot_id_file);
  // Each driver: its prepare pipeline (recovered from its checkpoint) and its kubelet plugin.
  auto make = [&](std::unique_ptr<DeviceHandler> handler) -> Result<std::unique_ptr<Driver>> {
    auto d = std::make_unique<Driver>();
    const std::string driver(handler->driver());
    const std::string dir = host(opt_.plugins_dir) + "/" + driver;
    DriverStats stats = driver_metrics(registry_, driver, opt_.node_name);
    if (driver == api::kGpuDriver) {
      stats.prepared_changed = [this, metrics = stats.prepared_changed](const Checkpoint& c) {
        metrics(c);
        hide_siblings_of(c);
      };
    }
    d->state = std::make_unique<DriverState>(
        DriverStateOptions{dir + "/nvdra-checkpoint.json", boot_id, opt_.node_name},
        std::move(handler), *cluster_, CdiWriter(host(opt_.cdi_root)), std::move(stats));
    if (auto s = d->state->start(); !s) return unexpected(s.error().wrap(driver));
    d->plugin = std::make_unique<KubeletPlugin>(*d->state, host(opt_.registry_dir), dir);
    return d;
  };
  GpuHandlerOptions gpu_opt{host(opt_.plugins_dir) + "/gpu.nvidia.com", host(opt_.dev_root), "",
                            opt_.gates, host(opt_.proc_root)};
  auto gpu = make(std::make_unique<GpuHandler>(*backend_, gpu_opt));
  if (!gpu) return unexpected(gpu.error());
  CdHandlerOptions cd_opt{host(opt_.plugins_dir) + "/compute-domain.nvidia.com",
                          host(opt_.dev_root),
                          host(opt_.proc_root) + "/devices",
                          opt_.node_name,
                          devices->clique_id(),
                          opt_.gates};
  cd_opt.driver_namespace = opt_.driver_namespace;
  auto cd = make(std::make_unique<CdHandler>(*cluster_, cd_opt));
  if (!cd) return unexpected(cd.error());
  drivers_.push_back(std::move(*gpu));
  drivers_.push_back(std::move(*cd));
  for (auto& d : drivers_) {
    if (auto s = d->plugin->start(); !s) return s;
  }

  auto node_uid_result = uid.get();
  if (!node_uid_result) return unexpected(node_uid_result.error());
  layout_.separate_counter_slice = minor.get() >= 35;
  for (auto& d : drivers_) {
    d->publisher = std::make_unique<SlicePublisher>(client_, std::string(d->state->driver()),
                                                    opt_.node_name, *node_uid_result);
    net::co_spawn(io_, d->publisher->run(&cancel_), net::detached);
  }
  publish_gpu_slices();
  drivers_[1]->publisher->set_desired(api::compute_domain_slices(*devices));
  net::co_spawn(io_, health_loop(), net::detached);
  return ok();
}

void Agent::hide_siblings_of(const Checkpoint& c) {
  std::set<std::string> hidden;
  if (layout_.passthrough) {
    for (const auto& [uid, claim] : c.claims) {
      for (const auto& d : claim.devices) {
        const auto minor = api::gpu_minor_of(d.device);
        if (!minor) continue;
        hidden.insert(d.type == "vfio" ? api::gpu_device_name(*minor)
                                       : api::vfio_device_name(*minor));
      }
    }
  }
  std::lock_guard lock(hidden_mu_);
  if (hidden == hidden_) return;
  hidden_ = std::move(hidden);
  hidden_changed_ = true;
}

void Agent::publish_gpu_slices() {
  auto devices = backend_->discover();
  if (!devices) {
    NVDRA_WARN("cannot list GPUs for the ResourceSlices: {}", devices.error().message);
    return;
  }
  api::SliceLayout layout = layout_;
  {
    std::lock_guard lock(hidden_mu_);
    layout.hidden = hidden_;
    hidden_changed_ = false;
  }
  auto& state_gauge = registry_.gauge("nvdra_agent_devices", "Published GPUs, by health");
  int healthy = 0, unhealthy = 0;
  for (const auto& g : devices->gpus) {
    auto it = gpu_taints_.find(g.minor);
    if (it == gpu_taints_.end()) {
      ++healthy;
      continue;
    }
    ++unhealthy;
    layout.taints[api::gpu_device_name(g.minor)] = it->second;
    for (const auto& p : g.mig_profiles) {
      for (int start : p.placements)
        layout.taints[api::mig_device_name(g.minor, p.name, p.gi_profile_id, start)] = it->second;
    }
    for (const auto& m : devices->mig_devices) {
      if (m.parent_minor == g.minor)
        layout.taints[api::mig_device_name(g.minor, m.profile.name, m.profile.gi_profile_id,
                                           m.placement_start)] = it->second;
    }
  }
  state_gauge.Add({{"driver", std::string(api::kGpuDriver)}, {"state", "healthy"}}).Set(healthy);
  state_gauge.Add({{"driver", std::string(api::kGpuDriver)}, {"state", "unhealthy"}})
      .Set(unhealthy);
  drivers_[0]->publisher->set_desired(api::gpu_slices(*devices, layout));
}

awaitable<void> Agent::health_loop() {
  auto& published =
      registry_.gauge("nvdra_agent_published_slices", "ResourceSlices this agent keeps published");
  while (co_await sleep_for(std::chrono::seconds(1), &cancel_)) {
    for (auto& d : drivers_) {
      published.Add({{"driver", std::string(d->state->driver())}})
          .Set(static_cast<double>(d->publisher->published()));
    }
    const auto events = backend_->health_events();
    bool republish = false;
    {
      std::lock_guard lock(hidden_mu_);
      republish = hidden_changed_;
    }
    if (events.empty() && !republish) continue;
    for (const auto& e : events) {
      api::DeviceTaint t =
          e.lost ? api::DeviceTaint{"gpu.nvidia.com/gpu-lost", "", "NoSchedule"}
                 : api::DeviceTaint{"gpu.nvidia.com/xid", std::to_string(e.xid),
                                    opt_.ignored_xids.contains(e.xid) ? "None" : "NoSchedule"};
      auto& taints = gpu_taints_[e.minor];
      std::erase_if(taints, [&](const auto& x) { return x.key == t.key; });
      taints.push_back(t);
      const std::string what = e.lost ? "fell off the bus" : fmt::format("reported XID {}", e.xid);
      NVDRA_WARN("GPU {} {}: tainting its devices {}={}:{}", e.minor, what, t.key, t.value,
                 t.effect);
      cluster_->warning_event(
          "Node", "", opt_.node_name, "", "GPUUnhealthy",
          fmt::format("GPU {} {}; its devices are tainted {}:{}", e.minor, what, t.key, t.effect));
    }
    publish_gpu_slices();
  }
}

bool Agent::registered() const {
  if (drivers_.empty()) return false;
  for (const auto& d : drivers_) {
    if (!d->plugin->registered()) return false;
  }
  return true;
}

void Agent::stop() {
  cancel_.cancel();
  for (auto& d : drivers_) {
    if (d->plugin) d->plugin->stop();
  }
}

}  // namespace nvdra::agent
