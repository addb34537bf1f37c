#include "agent/prepare/gpu_handler.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "agent/device/host_devices.h"
#include "base/hash.h"
#include "base/log.h"

namespace nvdra::agent {
namespace {

namespace fs = std::filesystem;

constexpr int kNvidiaMajor = 195;  // the character device major of /dev/nvidia<minor>

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

bool toggles_mig_without_reset(const api::GpuInfo& g) {
  // Hopper and later switch MIG mode without a GPU reset; Ampere needs one.
  return g.architecture != "Ampere" && g.architecture != "Turing" && g.architecture != "Volta";
}

// A device of the claim, resolved against the node.
struct Resolved {
  const AllocatedDevice* allocated;
  std::string type;  // gpu | mig | vfio
  int minor = 0;     // the (parent) GPU
  std::string uuid;
  int gi = -1, ci = -1;  // MIG: the GPU and compute instance
  VfioBinding vfio;      // vfio: where the GPU is now
};

// The container edits of a GPU passed through to a VM (NVIDIA's VFIO CDI): its VFIO group (or
// IOMMUFD character device), no NVIDIA driver devices, and the IOMMU API device on request.
CdiEdits vfio_edits(const VfioBinding& b, const VfioDeviceConfig& cfg, bool host_iommufd,
                    const std::string& dev_root) {
  const bool iommufd = cfg.backend_policy == "PreferIommuFD" && host_iommufd && !b.cdev.empty();
  CdiEdits e;
  e.env.push_back("NVIDIA_VISIBLE_DEVICES=void");
  const std::string node =
      iommufd ? "/dev/vfio/devices/" + b.cdev : fmt::format("/dev/vfio/{}", b.iommu_group);
  e.device_nodes.push_back({node, dev_root + node.substr(4), "c", -1, -1, "rw"});
  if (cfg.enable_api_device) {
    const std::string api = iommufd ? "/dev/iommu" : "/dev/vfio/vfio";
    e.device_nodes.push_back({api, dev_root + api.substr(4), "c", -1, -1, "rw"});
  }
  return e;
}

}  // namespace

std::string mps_daemon_id(const std::string& claim_uid, std::vector<std::string> uuids) {
  std::sort(uuids.begin(), uuids.end());
  const uint64_t h = fnv1a64(join(uuids, ","));
  return fmt::format("{}-{:05x}", claim_uid, h & 0xfffff);
}

Result<api::MigProfileInfo> plan_mig_device(const api::NodeDevices& node,
                                            const api::MigDeviceName& wanted) {
  const api::GpuInfo* g = node.gpu_by_minor(wanted.parent_minor);
  if (!g)
    return unexpected(ErrorCode::kNotFound,
                      fmt::format("no GPU with minor {}", wanted.parent_minor));
  auto p = std::find_if(g->mig_profiles.begin(), g->mig_profiles.end(), [&](const auto& mp) {
    return mp.gi_profile_id == wanted.gi_profile_id &&
           api::profile_token(mp.name) == wanted.profile_token;
  });
  if (p == g->mig_profiles.end())
    return unexpected(
        ErrorCode::kNotFound,
        fmt::format("{} (GPU {}) has no MIG profile {} with GPU-instance profile {}",
                    g->product_name, g->minor, wanted.profile_token, wanted.gi_profile_id));
  if (std::find(p->placements.begin(), p->placements.end(), wanted.placement_start) ==
      p->placements.end())
    return unexpected(
        ErrorCode::kInvalidArgument,
        fmt::format("{} cannot be placed at memory slice {}", p->name, wanted.placement_start));
  const int end = wanted.placement_start + p->memory_slices;
  for (const auto& m : node.mig_devices) {
    if (m.parent_minor != g->minor) continue;
    const int mend = m.placement_start + m.profile.memory_slices;
    if (wanted.placement_start < mend && m.placement_start < end)
      return unexpected(
          ErrorCode::kInvalidArgument,
          fmt::format("memory slices {}..{} of GPU {} overlap MIG device {} ({} at {})",
                      wanted.placement_start, end - 1, g->minor, m.uuid, m.profile.name,
                      m.placement_start));
  }
  return *p;
}

GpuHandler::GpuHandler(DeviceBackend& backend, GpuHandlerOptions options)
    : backend_(backend), opt_(std::move(options)) {}

std::string GpuHandler::tool(const char* name) const {
  return opt_.tool_dir.empty() ? std::string(name) : opt_.tool_dir + "/" + name;
}

std::string GpuHandler::mps_root(const std::string& id) const {
  return opt_.plugin_dir + "/mps/" + id;
}

Status GpuHandler::run(std::vector<std::string> argv, std::vector<std::string> env,
                       std::string stdin_data) {
  Command c{std::move(argv), std::move(env), std::move(stdin_data)};
  return check_result(c, backend_.executor().run(c));
}

Result<CdiEdits> GpuHandler::start_mps(const std::string& id, const std::vector<std::string>& uuids,
                                       const std::vector<std::string>& full_gpu_uuids,
                                       const MpsConfig& mps) {
  auto limits = mps_pinned_limits(mps, uuids);
  if (!limits) return unexpected(limits.error());
  const std::string root = mps_root(id);
  std::error_code ec;
  for (const char* sub : {"pipe", "log", "shm"}) {
    fs::create_directories(root + "/" + sub, ec);
    if (ec)
      return unexpected(ErrorCode::kIo,
                        fmt::format("cannot create {}/{}: {}", root, sub, ec.message()));
  }
  fs::permissions(root + "/shm", fs::perms::all | fs::perms::sticky_bit, ec);
  for (const auto& u : full_gpu_uuids) {
    if (auto s = run({tool("nvidia-smi"), "-i", u, "-c", "EXCLUSIVE_PROCESS"}); !s)
      return unexpected(s.error());
  }
  const std::vector<std::string> env = {"CUDA_VISIBLE_DEVICES=" + join(uuids, ","),
                                        "CUDA_MPS_PIPE_DIRECTORY=" + root + "/pipe",
                                        "CUDA_MPS_LOG_DIRECTORY=" + root + "/log"};
  if (auto s = run({tool("nvidia-cuda-mps-control"), "-d"}, env); !s) return unexpected(s.error());
  std::string commands;
  if (mps.default_active_thread_percentage)
    commands += fmt::format("set_default_active_thread_percentage {}\n",
                            *mps.default_active_thread_percentage);
  for (const auto& [uuid, limit] : *limits)
    commands += fmt::format("set_default_device_pinned_mem_limit {} {}\n", uuid, limit);
  if (!commands.empty()) {
    if (auto s = run({tool("nvidia-cuda-mps-control")}, env, commands); !s)
      return unexpected(s.error());
  }
  CdiEdits edits;
  edits.env.push_back("CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps");
  const std::vector<std::string> options = {"rw", "nosuid", "nodev", "bind"};
  edits.mounts.push_back({root + "/pipe", "/tmp/nvidia-mps", options});
  edits.mounts.push_back({root + "/shm", "/dev/shm", options});
  return edits;
}

Status GpuHandler::stop_mps(const std::string& id) {
  const std::string root = mps_root(id);
  std::error_code ec;
  if (!fs::exists(root, ec)) return ok();
  if (fs::exists(root + "/pipe/control", ec) || !fs::is_empty(root + "/pipe", ec)) {
    Command quit{
        {tool("nvidia-cuda-mps-control")},
        {"CUDA_MPS_PIPE_DIRECTORY=" + root + "/pipe", "CUDA_MPS_LOG_DIRECTORY=" + root + "/log"},
        "quit\n"};
    auto r = backend_.executor().run(quit);
    if (r && r->exit_code != 0) NVDRA_V(1, "MPS daemon {}: quit: {}", id, r->output);
  }
  fs::remove_all(root, ec);
  if (ec)
    return unexpected(ErrorCode::kIo, fmt::format("cannot remove {}: {}", root, ec.message()));
  return ok();
}

std::vector<CdiDeviceNode> GpuHandler::mig_capability_nodes(int minor, int gi, int ci) const {
  // A process needs the GPU instance's and the compute instance's access capability, each a
  // /dev/nvidia-caps/nvidia-cap<N> node (N from the kernel driver's capability files).
  std::vector<CdiDeviceNode> out;
  const int major = char_device_major(opt_.proc_root + "/devices", "nvidia-caps");
  if (major < 0) return out;  // no kernel driver here (the simulator)
  const std::string base =
      fmt::format("{}/driver/nvidia/capabilities/gpu{}/mig/gi{}", opt_.proc_root, minor, gi);
  for (const std::string& access : {base + "/access", fmt::format("{}/ci{}/access", base, ci)}) {
    auto cap = capability_minor(access);
    if (!cap) continue;
    const std::string path = fmt::format("/dev/nvidia-caps/nvidia-cap{}", *cap);
    out.push_back({path, opt_.dev_root + path.substr(4), "c", major, *cap, "rw"});
  }
  return out;
}

Status GpuHandler::destroy_created_mig(const CreatedMig& m) {
  auto node = backend_.discover();
  if (!node) return unexpected(node.error());
  const api::GpuInfo* g = node->gpu_by_minor(m.parent_minor);
  api::MigDeviceInfo info;
  info.uuid = m.uuid;
  info.parent_minor = m.parent_minor;
  info.placement_start = m.placement;
  info.gi_id = m.gi;
  info.profile.name = m.profile;
  if (auto s = backend_.destroy_mig_device(info); !s) return s;
  if (!g) return ok();
  const bool others = std::any_of(
      node->mig_devices.begin(), node->mig_devices.end(),
      [&](const auto& d) { return d.parent_minor == m.parent_minor && d.uuid != m.uuid; });
  if (!others && toggles_mig_without_reset(*g)) return backend_.set_mig_mode(m.parent_minor, false);
  return ok();
}

Status GpuHandler::prepare(const ClaimInfo& claim, PreparedClaim& entry, CdiSpec& spec,
                           const std::function<Status()>& save) {
  auto node = backend_.discover();
  if (!node) return unexpected(node.error());
  std::vector<OpaqueConfig> defaults = {default_gpu_config(opt_.gates),
                                        default_mig_config(opt_.gates)};
  if (opt_.gates.passthrough_support) defaults.push_back(default_vfio_config());
  // Resolve every device first, then create MIG devices, then apply configs per group.
  std::vector<Resolved> devices;
  for (const auto& d : claim.devices) {
    Resolved r{&d};
    const std::string_view type = api::device_type_of(d.device);
    if (type == "vfio") {
      const api::GpuInfo* g = opt_.gates.passthrough_support
                                  ? node->gpu_by_minor(api::gpu_minor_of(d.device).value_or(-1))
                                  : nullptr;
      if (!g || g->iommu_group < 0 || (g->mig_enabled && !g->vfio_bound))
        return unexpected(ErrorCode::kNotFound,
                          fmt::format("requested device is not allocatable: {}", d.device));
      r.type = "vfio";
      r.minor = g->minor;
      r.uuid = api::vfio_uuid(g->pci_bus_id);
    } else if (type == "gpu") {
      const api::GpuInfo* g = node->gpu_by_minor(api::gpu_minor_of(d.device).value_or(-1));
      if (!g || g->vfio_bound || (g->mig_enabled && !backend_.dynamic_mig()))
        return unexpected(ErrorCode::kNotFound,
                          fmt::format("requested device is not allocatable: {}", d.device));
      r.type = "gpu";
      r.minor = g->minor;
      r.uuid = g->uuid;
      // Dynamic MIG: a GPU left in MIG mode by earlier MIG claims (Ampere keeps it) leaves it
      // before it is handed out whole; the allocator's counters keep MIG devices off it.
      if (g->mig_enabled) {
        if (auto s = backend_.set_mig_mode(g->minor, false); !s)
          return unexpected(s.error().wrap(fmt::format("GPU {} is in MIG mode", g->minor)));
      }
    } else if (type == "mig") {
      const auto name = *api::parse_mig_device_name(d.device);
      r.type = "mig";
      r.minor = name.parent_minor;
      auto existing =
          std::find_if(node->mig_devices.begin(), node->mig_devices.end(), [&](const auto& m) {
            return api::mig_device_name(m.parent_minor, m.profile.name, m.profile.gi_profile_id,
                                        m.placement_start) == d.device;
          });
      if (!backend_.dynamic_mig()) {
        if (existing == node->mig_devices.end())
          return unexpected(ErrorCode::kNotFound,
                            fmt::format("requested device is not allocatable: {}", d.device));
        r.uuid = existing->uuid;
        r.gi = existing->gi_id;
        r.ci = existing->ci_id;
      }
    } else {
      return unexpected(ErrorCode::kNotFound,
                        fmt::format("requested device is not allocatable: {}", d.device));
    }
    devices.push_back(std::move(r));
  }
  // Configs (validated before anything on the host changes).
  std::map<int, std::vector<size_t>> groups;  // config index → devices
  std::map<int, OpaqueConfig> configs;
  std::vector<int> group_of(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    auto chosen =
        choose_config(claim, *devices[i].allocated, devices[i].type, defaults, opt_.gates);
    if (!chosen) return unexpected(chosen.error());
    // Defaults are per type: key them below the claim's configs.
    const std::string& t = devices[i].type;
    const int key = chosen->index >= 0 ? chosen->index : (t == "gpu" ? -1 : t == "mig" ? -2 : -3);
    groups[key].push_back(i);
    group_of[i] = key;
    configs.emplace(key, std::move(chosen->config));
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    auto& r = devices[i];
    PreparedDevice pd;
    pd.requests = {base_request(r.allocated->request)};
    pd.pool = r.allocated->pool;
    pd.device = r.allocated->device;
    pd.type = r.type;
    pd.uuid = r.uuid;
    if (r.type == "vfio") {
      // Recorded before the GPU leaves the nvidia driver, so that a crash gives it back.
      const api::GpuInfo& g = *node->gpu_by_minor(r.minor);
      pd.pci_bus_id = g.pci_bus_id;
      entry.devices.push_back(pd);
      if (auto s = save(); !s) return s;
      auto bound = backend_.bind_vfio(g);
      if (!bound)
        return unexpected(
            bound.error().wrap("error preparing '" + pd.device + "' for passthrough"));
      r.vfio = *bound;
      continue;
    }
    if (r.type == "mig" && backend_.dynamic_mig()) {
      auto fresh = backend_.discover();
      if (!fresh) return unexpected(fresh.error());
      auto profile = plan_mig_device(*fresh, *api::parse_mig_device_name(r.allocated->device));
      if (!profile)
        return unexpected(
            profile.error().wrap("error creating MIG device for '" + pd.device + "'"));
      const api::GpuInfo* g = fresh->gpu_by_minor(r.minor);
      if (!g->mig_enabled) {
        if (auto s = backend_.set_mig_mode(r.minor, true); !s)
          return unexpected(s.error().wrap(fmt::format("enabling MIG mode on GPU {}", r.minor)));
      }
      const int start = api::parse_mig_device_name(r.allocated->device)->placement_start;
      auto created = backend_.create_mig_device(r.minor, *profile, start);
      if (!created)
        return unexpected(
            created.error().wrap("error creating GPU instance for '" + pd.device + "'"));
      pd.uuid = created->uuid;
      pd.created_mig = CreatedMig{r.minor, profile->name, start, created->gi_id, created->uuid};
      r.uuid = created->uuid;
      r.gi = created->gi_id;
      r.ci = created->ci_id;
    }
    entry.devices.push_back(pd);
    if (pd.created_mig) {
      if (auto s = save(); !s) return s;
      crash_point("prepare-mig-created");
    }
  }
  // Sharing, per config group: first every host change is recorded (one checkpoint write, so a
  // crash in between is undone on restart), then carried out.
  struct SharingStep {
    const Sharing* sharing;
    std::vector<size_t> members;
    std::vector<std::string> uuids, full;
  };
  std::vector<SharingStep> steps;
  for (const auto& [key, members] : groups) {
    const OpaqueConfig& cfg = configs.at(key);
    const std::optional<Sharing>* sharing = nullptr;
    if (const auto* g = std::get_if<GpuConfig>(&cfg)) sharing = &g->sharing;
    if (const auto* m = std::get_if<MigDeviceConfig>(&cfg)) sharing = &m->sharing;
    if (!sharing || !*sharing) continue;
    SharingStep step{&**sharing, members, {}, {}};
    for (size_t i : members) {
      step.uuids.push_back(devices[i].uuid);
      if (devices[i].type == "gpu") step.full.push_back(devices[i].uuid);
    }
    if (step.sharing->strategy == "TimeSlicing") {
      if (step.full.empty()) continue;  // a no-op on MIG devices, as NVIDIA's
      entry.time_sliced_uuids.insert(entry.time_sliced_uuids.end(), step.full.begin(),
                                     step.full.end());
    } else {
      if (!entry.mps_id.empty())
        return unexpected(ErrorCode::kInvalidArgument,
                          "only one MPS configuration per claim is supported");
      entry.mps_id = mps_daemon_id(claim.uid, step.uuids);
    }
    steps.push_back(std::move(step));
  }
  if (!steps.empty()) {
    if (auto s = save(); !s) return s;
  }
  std::vector<CdiEdits> group_edits(devices.size());
  for (const auto& step : steps) {
    if (step.sharing->strategy == "TimeSlicing") {
      const int interval = interval_value(step.sharing->time_slicing->interval.value_or("Default"));
      for (const auto& u : step.full) {
        if (auto s = run({tool("nvidia-smi"), "-i", u, "-c", "DEFAULT"}); !s) return s;
        if (auto s = run({tool("nvidia-smi"), "compute-policy", "-i", u, "--set-timeslice",
                          std::to_string(interval)});
            !s)
          return s;
      }
      continue;
    }
    auto edits =
        start_mps(entry.mps_id, step.uuids, step.full, step.sharing->mps.value_or(MpsConfig{}));
    if (!edits) return unexpected(edits.error().wrap("starting the MPS control daemon"));
    for (size_t i : step.members)
      group_edits[i].append(*edits);
  }
  // CDI: one device per allocated device, the shared control nodes in the common edits.
  bool driver_devices = false;  // the NVIDIA driver's control nodes, for all but passthrough
  for (size_t i = 0; i < devices.size(); ++i) {
    auto& pd = entry.devices[i];
    CdiDevice cd;
    cd.name = claim.uid + "-" + pd.device;
    pd.cdi_ids = {cdi_device_id(spec.kind, cd.name)};
    if (devices[i].type == "vfio") {
      cd.edits = vfio_edits(devices[i].vfio, std::get<VfioDeviceConfig>(configs.at(group_of[i])),
                            node->iommufd, opt_.dev_root);
      spec.devices.push_back(std::move(cd));
      continue;
    }
    driver_devices = true;
    const std::string node_path = fmt::format("/dev/nvidia{}", devices[i].minor);
    cd.edits.device_nodes.push_back({node_path, opt_.dev_root + node_path.substr(4), "c",
                                     kNvidiaMajor, devices[i].minor, "rw"});
    if (devices[i].gi >= 0) {
      auto caps = mig_capability_nodes(devices[i].minor, devices[i].gi, devices[i].ci);
      cd.edits.device_nodes.insert(cd.edits.device_nodes.end(), caps.begin(), caps.end());
    }
    cd.edits.append(group_edits[i]);
    spec.devices.push_back(std::move(cd));
  }
  for (const char* ctl : {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"}) {
    if (!driver_devices) break;
    spec.common.device_nodes.push_back(
        {fmt::format("/dev/{}", ctl), fmt::format("{}/{}", opt_.dev_root, ctl), "c", -1, -1, "rw"});
  }
  return ok();
}

Status GpuHandler::unprepare(const std::string& /*uid*/, const PreparedClaim& entry) {
  Status first;
  auto keep = [&](Status s) {
    if (!s && first) first = std::move(s);
  };
  if (!entry.mps_id.empty()) {
    keep(stop_mps(entry.mps_id));
    // Unlike NVIDIA's driver, the compute mode goes back to DEFAULT whatever the gates say.
    for (const auto& d : entry.devices) {
      if (d.type == "gpu" && !d.uuid.empty())
        keep(run({tool("nvidia-smi"), "-i", d.uuid, "-c", "DEFAULT"}));
    }
  }
  for (const auto& u : entry.time_sliced_uuids) {
    keep(run({tool("nvidia-smi"), "compute-policy", "-i", u, "--set-timeslice", "0"}));
    keep(run({tool("nvidia-smi"), "-i", u, "-c", "DEFAULT"}));
  }
  for (const auto& d : entry.devices) {
    if (d.created_mig) keep(destroy_created_mig(*d.created_mig));
    if (d.type == "vfio" && !d.pci_bus_id.empty()) keep(backend_.unbind_vfio(d.pci_bus_id));
  }
  return first;
}

void GpuHandler::recover(const std::string& uid, PreparedClaim& entry) {
  auto node = backend_.discover();
  if (!node) return;
  for (auto& d : entry.devices) {
    if (d.type == "gpu" || d.type == "vfio") {
      const api::GpuInfo* g = node->gpu_by_minor(api::gpu_minor_of(d.device).value_or(-1));
      if (g && d.type == "gpu") d.uuid = g->uuid;
      if (g && d.type == "vfio" && g->vfio_bound) {
        d.uuid = api::vfio_uuid(g->pci_bus_id);
        d.pci_bus_id = g->pci_bus_id;
      }
      continue;
    }
    for (const auto& m : node->mig_devices) {
      if (api::mig_device_name(m.parent_minor, m.profile.name, m.profile.gi_profile_id,
                               m.placement_start) != d.device)
        continue;
      d.uuid = m.uuid;
      if (backend_.dynamic_mig())
        d.created_mig =
            CreatedMig{m.parent_minor, m.profile.name, m.placement_start, m.gi_id, m.uuid};
    }
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(opt_.plugin_dir + "/mps", ec)) {
    const std::string id = e.path().filename().string();
    if (id.starts_with(uid + "-")) entry.mps_id = id;
  }
}

std::vector<std::string> GpuHandler::aliases(std::string_view device) const {
  const auto minor = api::gpu_minor_of(device);
  if (!minor || !opt_.gates.passthrough_support) return {};
  return {device.starts_with("gpu-vfio-") ? api::gpu_device_name(*minor)
                                          : api::vfio_device_name(*minor)};
}

void GpuHandler::sweep_orphans(const Checkpoint& checkpoint) {
  std::set<std::string> mps, migs, passed_through;
  for (const auto& [uid, c] : checkpoint.claims) {
    if (!c.mps_id.empty()) mps.insert(c.mps_id);
    for (const auto& d : c.devices) {
      if (d.created_mig) migs.insert(d.created_mig->uuid);
      if (d.type == "vfio") passed_through.insert(d.pci_bus_id);
    }
  }
  if (auto node = backend_.discover()) {
    for (const auto& g : node->gpus) {
      if (!g.vfio_bound || passed_through.contains(g.pci_bus_id)) continue;
      NVDRA_INFO("gpu.nvidia.com: giving GPU {} ({}) back to nvidia: no claim passes it through",
                 g.minor, g.pci_bus_id);
      if (auto s = backend_.unbind_vfio(g.pci_bus_id); !s) NVDRA_WARN("{}", s.error().message);
    }
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(opt_.plugin_dir + "/mps", ec)) {
    const std::string id = e.path().filename().string();
    if (mps.contains(id)) continue;
    NVDRA_INFO("gpu.nvidia.com: stopping orphaned MPS control daemon {}", id);
    if (auto s = stop_mps(id); !s) NVDRA_WARN("{}", s.error().message);
  }
  if (!backend_.dynamic_mig()) return;
  auto node = backend_.discover();
  if (!node) return;
  for (const auto& m : node->mig_devices) {
    if (migs.contains(m.uuid)) continue;
    NVDRA_INFO("gpu.nvidia.com: destroying orphaned MIG device {} ({} on GPU {})", m.uuid,
               m.profile.name, m.parent_minor);
    CreatedMig cm{m.parent_minor, m.profile.name, m.placement_start, m.gi_id, m.uuid};
    if (auto s = destroy_created_mig(cm); !s) NVDRA_WARN("{}", s.error().message);
  }
}

}  // namespace nvdra::agent
