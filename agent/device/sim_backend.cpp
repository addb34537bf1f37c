#include "agent/device/sim_backend.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "base/atomic_file.h"
#include "base/hash.h"
#include "base/json.h"

namespace nvdra::agent {
namespace {

namespace fs = std::filesystem;

std::string env_value(const Command& c, std::string_view key) {
  for (const auto& e : c.env) {
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=')
      return e.substr(key.size() + 1);
  }
  return {};
}

std::string mig_uuid(const std::string& parent_uuid, int gi) {
  const uint64_t h = fnv1a64(parent_uuid + "/" + std::to_string(gi));
  return fmt::format("MIG-{:08x}-{:04x}-5{:03x}-9{:03x}-{:012x}", static_cast<uint32_t>(h),
                     (h >> 32) & 0xffff, gi & 0xfff, (h >> 48) & 0xfff, h & 0xffffffffffffull);
}

}  // namespace

Result<CommandResult> SimExecutor::run(const Command& command) {
  if (command.argv.empty()) return unexpected(ErrorCode::kInvalidArgument, "empty command");
  std::lock_guard lock(mu_);
  const fs::path log_dir = fs::path(root_) / "var/log";
  std::error_code ec;
  fs::create_directories(log_dir, ec);
  std::ofstream(log_dir / "nvdra-sim-tools.log", std::ios::app)
      << describe(command) << (command.stdin_data.empty() ? "" : " <<< " + command.stdin_data)
      << "\n";
  const std::string& tool = command.argv[0];
  if (tool == "nvidia-smi") return CommandResult{0, ""};
  if (tool == "nvidia-cuda-mps-control") {
    const fs::path pipe = env_value(command, "CUDA_MPS_PIPE_DIRECTORY");
    const fs::path log = env_value(command, "CUDA_MPS_LOG_DIRECTORY");
    if (pipe.empty()) return CommandResult{1, "CUDA_MPS_PIPE_DIRECTORY not set"};
    if (command.argv.size() > 1 && command.argv[1] == "-d") {
      if (fs::exists(pipe / "control"))
        return CommandResult{1, "An instance of this daemon is already running"};
      std::ofstream(pipe / "control") << "sim mps control daemon\n";
      if (!log.empty())
        std::ofstream(log / "control.log", std::ios::app) << "[sim] daemon started\n";
      return CommandResult{0, ""};
    }
    if (!fs::exists(pipe / "control"))
      return CommandResult{1, "Cannot find MPS control daemon process"};
    if (!log.empty()) std::ofstream(log / "control.log", std::ios::app) << command.stdin_data;
    if (command.stdin_data.starts_with("quit")) fs::remove(pipe / "control", ec);
    return CommandResult{0, ""};
  }
  return CommandResult{127, tool + ": command not found"};
}

Result<std::unique_ptr<SimBackend>> SimBackend::load(const std::string& node_config,
                                                     const std::string& root, bool driver_files) {
  std::unique_ptr<SimBackend> b(new SimBackend(root));
  if (driver_files) b->driver_files_.emplace(root);
  try {
    const YAML::Node n = YAML::LoadFile(node_config);
    if (!n.IsMap())
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("{}: expected a node description (a mapping)", node_config));
    b->node_ = n["nodeName"] ? n["nodeName"].as<std::string>() : std::string();
    const int gpus = n["gpus"] ? n["gpus"].as<int>() : 0;
    if (gpus < 0 || gpus > 64)
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("{}: gpus must be between 0 and 64", node_config));
    if (gpus > 0) {
      const std::string id = n["gpu"] ? n["gpu"].as<std::string>() : std::string();
      const api::GpuModel* model = api::find_gpu_model(id);
      if (!model)
        return unexpected(ErrorCode::kInvalidArgument,
                          fmt::format("{}: unknown GPU model \"{}\"", node_config, id));
      const std::string clique = n["cliqueID"] ? n["cliqueID"].as<std::string>() : std::string();
      b->base_ = api::simulated_node_devices(b->node_, *model, gpus, clique);
    }
    const std::string mig = n["mig"] ? n["mig"].as<std::string>() : std::string("none");
    if (mig != "none" && mig != "dynamic" && mig != "static")
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("{}: mig must be none, dynamic or static", node_config));
    b->dynamic_ = mig == "dynamic";
    if (auto s = b->load_state(); !s) return unexpected(s.error());
    if (b->driver_files_) {
      if (auto s = b->driver_files_->create_driver(static_cast<int>(b->base_.gpus.size())); !s)
        return unexpected(s.error());
      for (const auto& d : b->mig_devices_) {
        if (auto s = b->driver_files_->create_mig(d.parent_minor, d.gi_id); !s)
          return unexpected(s.error());
      }
    }
    // A static layout is created once, as mig-parted would before the driver starts.
    if (mig == "static" && b->mig_devices_.empty() && n["migDevices"]) {
      for (const auto& d : n["migDevices"]) {
        const int minor = d["gpu"].as<int>();
        const std::string profile = d["profile"].as<std::string>();
        const int start = d["placement"] ? d["placement"].as<int>() : 0;
        const api::GpuInfo* g = b->base_.gpu_by_minor(minor);
        if (!g)
          return unexpected(ErrorCode::kInvalidArgument,
                            fmt::format("{}: migDevices: no GPU {}", node_config, minor));
        auto p = std::find_if(g->mig_profiles.begin(), g->mig_profiles.end(),
                              [&](const auto& mp) { return mp.name == profile; });
        if (p == g->mig_profiles.end())
          return unexpected(ErrorCode::kInvalidArgument,
                            fmt::format("{}: migDevices: {} has no profile {}", node_config,
                                        g->product_name, profile));
        if (auto s = b->set_mig_mode(minor, true); !s) return unexpected(s.error());
        auto created = b->create_mig_device(minor, *p, start);
        if (!created) return unexpected(created.error().wrap(node_config + ": migDevices"));
      }
    }
  } catch (const YAML::Exception& e) {
    return unexpected(ErrorCode::kInvalidArgument, fmt::format("{}: {}", node_config, e.what()));
  }
  return b;
}

Status SimBackend::load_state() {
  const fs::path file = fs::path(root_) / "var/lib/nvdra-sim-gpu/state.json";
  if (!fs::exists(file)) return ok();
  auto doc = json::parse(read_file(file.string()).value_or(""));
  if (!doc || !doc->IsObject())
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("{}: not a GPU state file", file.string()));
  if (const auto* e = json::find(*doc, "migEnabled"); e && e->IsArray()) {
    for (const auto& m : e->GetArray()) {
      if (m.IsInt()) mig_enabled_.insert(m.GetInt());
    }
  }
  if (const auto* e = json::find(*doc, "vfioBound"); e && e->IsArray()) {
    for (const auto& m : e->GetArray()) {
      if (m.IsInt()) vfio_bound_.insert(m.GetInt());
    }
  }
  if (const auto* d = json::find(*doc, "migDevices"); d && d->IsArray()) {
    for (const auto& m : d->GetArray()) {
      api::MigDeviceInfo info;
      info.uuid = std::string(json::string_or(m, "uuid"));
      info.parent_minor = static_cast<int>(json::get_int(m, "parentMinor").value_or(-1));
      info.placement_start = static_cast<int>(json::get_int(m, "placement").value_or(0));
      info.gi_id = static_cast<int>(json::get_int(m, "gi").value_or(0));
      const std::string profile(json::string_or(m, "profile"));
      const api::GpuInfo* g = base_.gpu_by_minor(info.parent_minor);
      if (!g) continue;
      auto p = std::find_if(g->mig_profiles.begin(), g->mig_profiles.end(),
                            [&](const auto& mp) { return mp.name == profile; });
      if (p == g->mig_profiles.end()) continue;
      info.profile = *p;
      info.parent_uuid = g->uuid;
      mig_devices_.push_back(std::move(info));
    }
  }
  return ok();
}

Status SimBackend::save_state() {
  auto ints = [](const std::set<int>& v) {
    std::string out;
    for (int m : v)
      out += fmt::format("{}{}", out.empty() ? "" : ",", m);
    return out;
  };
  std::string out = fmt::format(R"({{"migEnabled":[{}],"vfioBound":[{}],"migDevices":[)",
                                ints(mig_enabled_), ints(vfio_bound_));
  bool first = true;
  for (const auto& d : mig_devices_) {
    out += fmt::format(R"({}{{"uuid":{},"parentMinor":{},"profile":{},"placement":{},"gi":{}}})",
                       first ? "" : ",", json::quote(d.uuid), d.parent_minor,
                       json::quote(d.profile.name), d.placement_start, d.gi_id);
    first = false;
  }
  out += "]}\n";
  const fs::path dir = fs::path(root_) / "var/lib/nvdra-sim-gpu";
  std::error_code ec;
  fs::create_directories(dir, ec);
  return write_file_atomic((dir / "state.json").string(), out);
}

Result<api::NodeDevices> SimBackend::discover() {
  std::lock_guard lock(mu_);
  api::NodeDevices out = base_;
  for (auto& g : out.gpus) {
    g.mig_enabled = mig_enabled_.contains(g.minor);
    g.vfio_bound = vfio_bound_.contains(g.minor);
  }
  out.mig_devices = mig_devices_;
  return out;
}

Status SimBackend::set_mig_mode(int minor, bool enabled) {
  std::lock_guard lock(mu_);
  const api::GpuInfo* g = base_.gpu_by_minor(minor);
  if (!g) return unexpected(ErrorCode::kNotFound, fmt::format("no GPU with minor {}", minor));
  if (enabled && !g->mig_capable)
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("{} does not support MIG", g->product_name));
  if (enabled == mig_enabled_.contains(minor)) return ok();
  if (!enabled && std::any_of(mig_devices_.begin(), mig_devices_.end(),
                              [&](const auto& d) { return d.parent_minor == minor; }))
    return unexpected(ErrorCode::kInvalidArgument, "In use by another client");
  if (enabled) {
    mig_enabled_.insert(minor);
  } else {
    mig_enabled_.erase(minor);
  }
  return save_state();
}

Result<api::MigDeviceInfo> SimBackend::create_mig_device(int minor,
                                                         const api::MigProfileInfo& profile,
                                                         int placement_start) {
  std::lock_guard lock(mu_);
  if (fs::exists(fs::path(root_) / "faults/mig-create-fails"))
    return unexpected(ErrorCode::kIo, "Insufficient Resources (injected fault)");
  const api::GpuInfo* g = base_.gpu_by_minor(minor);
  if (!g) return unexpected(ErrorCode::kNotFound, fmt::format("no GPU with minor {}", minor));
  if (!mig_enabled_.contains(minor))
    return unexpected(ErrorCode::kInvalidArgument, "MIG mode is not enabled");
  const int end = placement_start + profile.memory_slices;
  std::set<int> gis;
  for (const auto& d : mig_devices_) {
    if (d.parent_minor != minor) continue;
    gis.insert(d.gi_id);
    const int dend = d.placement_start + d.profile.memory_slices;
    if (placement_start < dend && d.placement_start < end)
      return unexpected(ErrorCode::kInvalidArgument, "Insufficient Resources");
  }
  api::MigDeviceInfo info;
  info.parent_minor = minor;
  info.parent_uuid = g->uuid;
  info.profile = profile;
  info.profile.placements.clear();
  info.placement_start = placement_start;
  while (gis.contains(info.gi_id))
    ++info.gi_id;
  info.uuid = mig_uuid(g->uuid, info.gi_id);
  if (driver_files_) {
    if (auto s = driver_files_->create_mig(minor, info.gi_id); !s) return unexpected(s.error());
  }
  mig_devices_.push_back(info);
  if (auto s = save_state(); !s) {
    mig_devices_.pop_back();
    if (driver_files_) driver_files_->remove_mig(minor, info.gi_id);
    return unexpected(s.error());
  }
  return info;
}

Status SimBackend::destroy_mig_device(const api::MigDeviceInfo& device) {
  std::lock_guard lock(mu_);
  const auto gone = std::find_if(mig_devices_.begin(), mig_devices_.end(), [&](const auto& d) {
    return d.parent_minor == device.parent_minor && d.placement_start == device.placement_start &&
           d.profile.name == device.profile.name;
  });
  if (gone == mig_devices_.end()) return ok();
  const int gi = gone->gi_id;
  mig_devices_.erase(gone);
  if (driver_files_) driver_files_->remove_mig(device.parent_minor, gi);
  return save_state();
}

Result<VfioBinding> SimBackend::bind_vfio(const api::GpuInfo& gpu) {
  std::lock_guard lock(mu_);
  const api::GpuInfo* g = base_.gpu_by_minor(gpu.minor);
  if (!g || g->iommu_group < 0)
    return unexpected(
        ErrorCode::kNotFound,
        fmt::format("GPU {} has no IOMMU group: it cannot be passed through", gpu.minor));
  if (!vfio_bound_.contains(g->minor)) {
    if (fs::exists(fs::path(root_) / fmt::format("faults/gpu-busy-{}", g->minor)))
      return unexpected(ErrorCode::kIo,
                        fmt::format("GPU {} ({}) is in use: a process holds /dev/nvidia{}",
                                    g->minor, g->pci_bus_id, g->minor));
    if (mig_enabled_.contains(g->minor))
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("GPU {} is in MIG mode", g->minor));
    vfio_bound_.insert(g->minor);
    if (auto s = save_state(); !s) {
      vfio_bound_.erase(g->minor);
      return unexpected(s.error());
    }
  }
  const fs::path dev = fs::path(root_) / "dev/vfio" / std::to_string(g->iommu_group);
  std::error_code ec;
  fs::create_directories(dev.parent_path(), ec);
  std::ofstream(dev.string(), std::ios::app).flush();
  return VfioBinding{g->iommu_group, ""};
}

Status SimBackend::unbind_vfio(const std::string& pci_bus_id) {
  std::lock_guard lock(mu_);
  for (const auto& g : base_.gpus) {
    if (g.pci_bus_id != pci_bus_id || !vfio_bound_.contains(g.minor)) continue;
    vfio_bound_.erase(g.minor);
    std::error_code ec;
    fs::remove(fs::path(root_) / "dev/vfio" / std::to_string(g.iommu_group), ec);
    return save_state();
  }
  return ok();
}

std::vector<HealthEvent> SimBackend::health_events() {
  std::vector<HealthEvent> out;
  const fs::path dir = fs::path(root_) / "faults";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const bool xid = name.starts_with("xid-"), lost = name.starts_with("lost-");
    if (!xid && !lost) continue;
    const std::string content = read_file(e.path().string()).value_or("");
    auto& seen = seen_faults_[name];
    if (seen == content + "\x01") continue;
    seen = content + "\x01";
    HealthEvent ev;
    try {
      ev.minor = std::stoi(name.substr(name.find('-') + 1));
      ev.xid = xid ? std::stoi(content) : 0;
    } catch (const std::exception&) {
      continue;
    }
    ev.lost = lost;
    out.push_back(ev);
  }
  return out;
}

}  // namespace nvdra::agent
