#include "api/nvidia_devices.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <set>

#include "base/hash.h"
#include "base/json.h"
#include "base/quantity.h"

namespace nvdra::api {
namespace {

std::string bytes_quantity(int64_t bytes) {
  return Quantity::from_int(bytes, Quantity::Format::kBinarySI).to_string();
}

void attr(std::string& out, std::string_view name, std::string_view kind, std::string_view value) {
  if (!out.empty()) out += ',';
  out += json::quote(name);
  out += ":{\"";
  out += kind;
  out += "\":";
  out += value;
  out += '}';
}
void str_attr(std::string& out, std::string_view name, std::string_view value) {
  attr(out, name, "string", json::quote(value));
}
void version_attr(std::string& out, std::string_view name, std::string_view value) {
  attr(out, name, "version", json::quote(value));
}
void int_attr(std::string& out, std::string_view name, int64_t value) {
  attr(out, name, "int", std::to_string(value));
}

// "9.0" → "9.0.0": the attribute is a semantic version.
std::string compute_capability_version(std::string_view cc) {
  const auto dots = std::count(cc.begin(), cc.end(), '.');
  std::string out(cc);
  for (auto i = dots; i < 2; ++i)
    out += ".0";
  return out;
}

// Attributes every device of a GPU shares (the GPU's own and its MIG devices').
std::string common_attributes(const NodeDevices& node, const GpuInfo& g) {
  std::string out;
  str_attr(out, "productName", g.product_name);
  str_attr(out, "brand", g.brand);
  str_attr(out, "architecture", g.architecture);
  version_attr(out, "cudaComputeCapability", compute_capability_version(g.cuda_compute_capability));
  version_attr(out, "driverVersion", semver_driver_version(node.driver_version));
  version_attr(out, "cudaDriverVersion", cuda_version_string(node.cuda_driver_version));
  str_attr(out, "resource.kubernetes.io/pciBusID", g.pci_bus_id);
  if (!g.pcie_root.empty()) str_attr(out, "resource.kubernetes.io/pcieRoot", g.pcie_root);
  if (!g.addressing_mode.empty()) str_attr(out, "addressingMode", g.addressing_mode);
  return out;
}

struct Capacities {
  int64_t memory_bytes = 0;
  int multiprocessors = 0, copy_engines = 0, decoders = 0, encoders = 0, jpeg_engines = 0,
      ofa_engines = 0;
};

Capacities profile_capacities(const MigProfileInfo& p) {
  return {p.memory_mib << 20, p.multiprocessors, p.copy_engines, p.decoders,
          p.encoders,         p.jpeg_engines,    p.ofa_engines};
}

// A full GPU in dynamic MIG mode: the whole memory and the largest engine counts of any profile.
Capacities full_gpu_capacities(const GpuInfo& g) {
  Capacities c{g.memory_bytes, g.multiprocessors};
  for (const auto& p : g.mig_profiles) {
    c.memory_bytes = std::max(c.memory_bytes, p.memory_mib << 20);
    c.multiprocessors = std::max(c.multiprocessors, p.multiprocessors);
    c.copy_engines = std::max(c.copy_engines, p.copy_engines);
    c.decoders = std::max(c.decoders, p.decoders);
    c.encoders = std::max(c.encoders, p.encoders);
    c.jpeg_engines = std::max(c.jpeg_engines, p.jpeg_engines);
    c.ofa_engines = std::max(c.ofa_engines, p.ofa_engines);
  }
  return c;
}

// Capacity ("copyEngines") or counter ("copy-engines") entries.
std::string capacity_entries(const Capacities& c, bool counters) {
  auto q = [](int64_t v) { return fmt::format(R"({{"value":"{}"}})", v); };
  return fmt::format(
      R"("{}":{},"{}":{},"{}":{},"{}":{},"{}":{},"{}":{},"memory":{{"value":"{}"}})",
      "multiprocessors", q(c.multiprocessors), counters ? "copy-engines" : "copyEngines",
      q(c.copy_engines), "decoders", q(c.decoders), "encoders", q(c.encoders),
      counters ? "jpeg-engines" : "jpegEngines", q(c.jpeg_engines),
      counters ? "ofa-engines" : "ofaEngines", q(c.ofa_engines), bytes_quantity(c.memory_bytes));
}

std::string memory_slice_entries(int start, int count, bool counters) {
  std::string out;
  for (int s = start; s < start + count; ++s)
    out += fmt::format(R"(,"{}{}":{{"value":"1"}})", counters ? "memory-slice-" : "memorySlice", s);
  return out;
}

int memory_slice_count(const GpuInfo& g) {
  int n = 0;
  for (const auto& p : g.mig_profiles) {
    for (int start : p.placements)
      n = std::max(n, start + p.memory_slices);
  }
  return n;
}

std::string taints_json(const SliceLayout& layout, const std::string& device) {
  auto it = layout.taints.find(device);
  if (it == layout.taints.end() || it->second.empty()) return {};
  std::string out = R"(,"taints":[)";
  for (size_t i = 0; i < it->second.size() && i < 4; ++i) {
    const auto& t = it->second[i];
    out += fmt::format(R"({}{{"key":{},{}"effect":{}}})", i ? "," : "", json::quote(t.key),
                       t.value.empty() ? "" : "\"value\":" + json::quote(t.value) + ",",
                       json::quote(t.effect));
  }
  return out + "]";
}

std::string device_json(const std::string& name, const std::string& attributes,
                        const std::string& capacity, const std::string& consumes,
                        const SliceLayout& layout) {
  std::string out =
      fmt::format(R"({{"name":{},"attributes":{{{}}})", json::quote(name), attributes);
  if (!capacity.empty()) out += fmt::format(R"(,"capacity":{{{}}})", capacity);
  if (!consumes.empty()) out += fmt::format(R"(,"consumesCounters":[{}])", consumes);
  out += taints_json(layout, name);
  return out + "}";
}

struct NamedDevice {
  std::string name, json;
};

std::string full_gpu_attributes(const NodeDevices& node, const GpuInfo& g,
                                const SliceLayout& layout) {
  std::string a;
  str_attr(a, "type", "gpu");
  str_attr(a, "uuid", g.uuid);
  a += "," + common_attributes(node, g);
  if (layout.index_attributes) {
    int_attr(a, "index", g.index);
    int_attr(a, "minor", g.minor);
  }
  return a;
}

std::string mig_attributes(const NodeDevices& node, const GpuInfo& parent, std::string_view uuid,
                           std::string_view profile) {
  std::string a;
  str_attr(a, "type", "mig");
  if (!uuid.empty()) str_attr(a, "uuid", uuid);
  a += "," + common_attributes(node, parent);
  str_attr(a, "parentUUID", parent.uuid);
  str_attr(a, "profile", profile);
  return a;
}

// NVIDIA's VFIO attribute set: what the PCI bus tells of the GPU, none of NVML's.
std::string vfio_attributes(const NodeDevices& node, const GpuInfo& g) {
  std::string a;
  str_attr(a, "type", "vfio");
  str_attr(a, "uuid", vfio_uuid(g.pci_bus_id));
  str_attr(a, "productName", g.product_name);
  str_attr(a, "deviceID", fmt::format("0x{:04x}", g.pci_device_id));
  str_attr(a, "vendorID", "0x10de");
  int_attr(a, "numa", g.numa_node);
  attr(a, "iommuFDEnabled", "bool", node.iommufd ? "true" : "false");
  str_attr(a, "resource.kubernetes.io/pciBusID", g.pci_bus_id);
  if (!g.pcie_root.empty()) str_attr(a, "resource.kubernetes.io/pcieRoot", g.pcie_root);
  return a;
}

// Devices of one GPU in the legacy layout: the GPU itself (and, with passthrough, its VFIO
// twin), or its existing MIG devices.
std::vector<NamedDevice> legacy_devices(const NodeDevices& node, const GpuInfo& g,
                                        const SliceLayout& layout) {
  std::vector<NamedDevice> out;
  auto hidden = [&](const std::string& name) {
    return layout.passthrough && layout.hidden.contains(name);
  };
  const std::string cap = g.memory_bytes > 0 ? fmt::format(R"("memory":{{"value":"{}"}})",
                                                           bytes_quantity(g.memory_bytes))
                                             : std::string();
  if (layout.passthrough && g.iommu_group >= 0 && (!g.mig_enabled || g.vfio_bound)) {
    const std::string name = vfio_device_name(g.minor);
    const std::string vfio_cap =
        g.memory_bytes > 0
            ? fmt::format(R"("addressableMemory":{{"value":"{}"}})", bytes_quantity(g.memory_bytes))
            : std::string();
    if (!hidden(name))
      out.push_back({name, device_json(name, vfio_attributes(node, g), vfio_cap, {}, layout)});
  }
  if (g.vfio_bound) return out;  // the nvidia driver does not have it
  if (!g.mig_enabled) {
    const std::string name = gpu_device_name(g.minor);
    if (!hidden(name))
      out.push_back(
          {name, device_json(name, full_gpu_attributes(node, g, layout), cap, {}, layout)});
    return out;
  }
  for (const auto& m : node.mig_devices) {
    if (m.parent_minor != g.minor) continue;
    const std::string name =
        mig_device_name(g.minor, m.profile.name, m.profile.gi_profile_id, m.placement_start);
    const std::string cap = capacity_entries(profile_capacities(m.profile), false) +
                            memory_slice_entries(m.placement_start, m.profile.memory_slices, false);
    out.push_back({name, device_json(name, mig_attributes(node, g, m.uuid, m.profile.name), cap, {},
                                     layout)});
  }
  return out;
}

std::vector<SliceContent> chunk(std::vector<NamedDevice> devices, size_t limit) {
  std::vector<SliceContent> out;
  std::sort(devices.begin(), devices.end(),
            [](const NamedDevice& a, const NamedDevice& b) { return a.name < b.name; });
  for (size_t i = 0; i < devices.size(); i += limit) {
    SliceContent s;
    for (size_t j = i; j < std::min(devices.size(), i + limit); ++j) {
      if (!s.devices.empty()) s.devices += ',';
      s.devices += devices[j].json;
      s.device_names.push_back(devices[j].name);
    }
    out.push_back(std::move(s));
  }
  return out;
}

bool has_taints(const SliceLayout& layout) {
  for (const auto& [name, t] : layout.taints) {
    if (!t.empty()) return true;
  }
  return false;
}

}  // namespace

const GpuInfo* NodeDevices::gpu_by_minor(int minor) const {
  for (const auto& g : gpus) {
    if (g.minor == minor) return &g;
  }
  return nullptr;
}

std::string NodeDevices::clique_id() const {
  std::set<std::string> ids;
  for (const auto& g : gpus)
    ids.insert(g.clique_id);
  return ids.size() == 1 ? *ids.begin() : std::string();
}

std::string gpu_device_name(int minor) {
  return fmt::format("gpu-{}", minor);
}

std::string vfio_device_name(int minor) {
  return fmt::format("gpu-vfio-{}", minor);
}

std::optional<int> gpu_minor_of(std::string_view name) {
  for (std::string_view prefix : {"gpu-vfio-", "gpu-"}) {
    if (!name.starts_with(prefix)) continue;
    const std::string_view digits = name.substr(prefix.size());
    int minor = -1;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), minor);
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || minor < 0)
      return std::nullopt;
    return minor;
  }
  return std::nullopt;
}

std::string vfio_uuid(std::string_view pci_bus_id) {
  // RFC 4122 §4.3 with the DNS namespace 6ba7b810-9dad-11d1-80b4-00c04fd430c8.
  static constexpr std::array<unsigned char, 16> kDns = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad,
                                                         0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0,
                                                         0x4f, 0xd4, 0x30, 0xc8};
  std::string data(kDns.begin(), kDns.end());
  data.append(pci_bus_id);
  std::array<unsigned char, EVP_MAX_MD_SIZE> h{};
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), h.data(), &n, EVP_sha1(), nullptr);
  h[6] = static_cast<unsigned char>((h[6] & 0x0f) | 0x50);
  h[8] = static_cast<unsigned char>((h[8] & 0x3f) | 0x80);
  return uuid_text(std::span<const unsigned char, 16>(h.data(), 16));
}

std::string uuid_text(std::span<const unsigned char, 16> b) {
  return fmt::format(
      "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:"
      "02x}{:02x}",
      b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
      b[15]);
}

std::string mig_device_name(int parent_minor, std::string_view profile, int gi_profile_id,
                            int placement_start) {
  return fmt::format("gpu-{}-mig-{}-{}-{}", parent_minor, profile_token(profile), gi_profile_id,
                     placement_start);
}

std::optional<MigDeviceName> parse_mig_device_name(std::string_view name) {
  // ^gpu-(\d+)-mig-(.+)-(\d+)-(\d+)$
  auto number = [](std::string_view s, int* out) {
    if (s.empty() || s.size() > 9) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && p == s.data() + s.size();
  };
  if (!name.starts_with("gpu-")) return std::nullopt;
  name.remove_prefix(4);
  const size_t mig = name.find("-mig-");
  if (mig == std::string_view::npos) return std::nullopt;
  MigDeviceName out;
  if (!number(name.substr(0, mig), &out.parent_minor)) return std::nullopt;
  std::string_view rest = name.substr(mig + 5);
  const size_t last = rest.rfind('-');
  if (last == std::string_view::npos || !number(rest.substr(last + 1), &out.placement_start))
    return std::nullopt;
  rest = rest.substr(0, last);
  const size_t prev = rest.rfind('-');
  if (prev == std::string_view::npos || prev == 0 ||
      !number(rest.substr(prev + 1), &out.gi_profile_id))
    return std::nullopt;
  out.profile_token = std::string(rest.substr(0, prev));
  return out;
}

std::string semver_driver_version(std::string_view v) {
  std::string out;
  size_t start = 0;
  int parts = 0;
  while (start <= v.size() && parts < 3) {
    size_t dot = v.find('.', start);
    if (dot == std::string_view::npos) dot = v.size();
    std::string_view part = v.substr(start, dot - start);
    while (part.size() > 1 && part.front() == '0')
      part.remove_prefix(1);
    if (part.empty()) part = "0";
    if (parts) out += '.';
    out += part;
    ++parts;
    start = dot + 1;
  }
  for (; parts < 3; ++parts)
    out += ".0";
  return out;
}

std::string cuda_version_string(int v) {
  return fmt::format("{}.{}.0", v / 1000, (v % 1000) / 10);
}

std::string simulated_gpu_uuid(std::string_view node, int index) {
  // FNV-1a: stable across processes and builds (std::hash is not guaranteed to be).
  const uint64_t h = fnv1a64(node);
  return fmt::format("GPU-{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", static_cast<uint32_t>(h),
                     (h >> 32) & 0xffff, index & 0xfff, (h >> 48) & 0xfff,
                     ((h >> 8) & 0xffffffffffull) << 8 | static_cast<unsigned>(index & 0xff));
}

MigProfileInfo simulated_mig_profile(const GpuModel& model, const MigProfile& p) {
  MigProfileInfo out;
  out.name = p.name;
  out.gi_profile_id = p.gi_profile_id;
  out.compute_slices = p.compute_slices;
  out.memory_slices = p.memory_slices;
  out.memory_mib = p.memory_mib;
  out.placements = p.placements;
  if (p.measured) {
    out.multiprocessors = p.measured->multiprocessors;
    out.copy_engines = p.measured->copy_engines;
    out.decoders = p.measured->decoders;
    out.encoders = p.measured->encoders;
    out.jpeg_engines = p.measured->jpeg_engines;
    out.ofa_engines = p.measured->ofa_engines;
    return out;
  }
  // Engine counts scale with compute slices, as on A100/H100 (7g holds all of them).
  out.multiprocessors = model.multiprocessors * p.compute_slices / 7;
  out.copy_engines = p.compute_slices;
  out.decoders = std::max(1, p.compute_slices * 5 / 7);
  out.encoders = model.architecture == "Ampere" ? 0 : (p.compute_slices == 7 ? 3 : 0);
  out.jpeg_engines = p.compute_slices == 7 ? 1 : 0;
  out.ofa_engines = p.compute_slices == 7 ? 1 : 0;
  return out;
}

NodeDevices simulated_node_devices(std::string_view node, const GpuModel& model, int gpus,
                                   std::string_view clique_id) {
  NodeDevices out;
  out.driver_version = "570.158.01";
  out.cuda_driver_version = 12080;
  for (int i = 0; i < gpus; ++i) {
    GpuInfo g;
    g.index = i;
    g.minor = i;
    g.uuid = simulated_gpu_uuid(node, i);
    g.product_name = model.product_name;
    g.brand = model.brand;
    g.architecture = model.architecture;
    g.cuda_compute_capability = model.compute_capability;
    g.pci_bus_id = fmt::format("0000:{:02x}:00.0", 0x10 + i * 0x10);
    g.pcie_root = fmt::format("pci0000:{:02x}", i / 4 * 0x40);
    g.memory_bytes = model.memory_mib << 20;
    g.multiprocessors = model.multiprocessors;
    g.pci_device_id = model.pci_device_id;
    g.numa_node = i / 4;
    g.iommu_group = 32 + i;
    g.mig_capable = !model.mig_profiles.empty();
    for (const auto& p : model.mig_profiles)
      g.mig_profiles.push_back(simulated_mig_profile(model, p));
    g.clique_id = std::string(clique_id);
    out.gpus.push_back(std::move(g));
  }
  return out;
}

std::vector<SliceContent> gpu_slices(const NodeDevices& node, const SliceLayout& layout) {
  const bool taints = has_taints(layout);
  if (!layout.dynamic_mig) {
    std::vector<NamedDevice> devices;
    for (const auto& g : node.gpus) {
      auto d = legacy_devices(node, g, layout);
      devices.insert(devices.end(), d.begin(), d.end());
    }
    auto out = chunk(std::move(devices),
                     std::min<size_t>(layout.max_devices_per_slice, taints ? 64 : 128));
    if (out.empty()) out.emplace_back();  // an empty pool still says "the driver is up"
    return out;
  }
  // Dynamic MIG: per GPU a counter set, the full GPU and every MIG placement, all consuming it.
  std::vector<SliceContent> out;
  std::vector<NamedDevice> plain;  // GPUs without MIG support keep the legacy form
  SliceContent counters_only;
  std::vector<const GpuInfo*> gpus;
  for (const auto& g : node.gpus)
    gpus.push_back(&g);
  std::sort(gpus.begin(), gpus.end(),
            [](const GpuInfo* a, const GpuInfo* b) { return a->pci_bus_id < b->pci_bus_id; });
  for (const GpuInfo* gp : gpus) {
    const GpuInfo& g = *gp;
    if (!g.mig_capable || g.mig_profiles.empty()) {
      auto d = legacy_devices(node, g, layout);
      plain.insert(plain.end(), d.begin(), d.end());
      continue;
    }
    const std::string set = fmt::format("gpu-{}-counter-set", g.minor);
    const int slices = memory_slice_count(g);
    const Capacities full = full_gpu_capacities(g);
    const std::string counter_set =
        fmt::format(R"({{"name":"{}","counters":{{{}{}}}}})", set, capacity_entries(full, true),
                    memory_slice_entries(0, slices, true));
    std::vector<NamedDevice> devices;
    const std::string gpu_name = gpu_device_name(g.minor);
    devices.push_back(
        {gpu_name,
         device_json(
             gpu_name, full_gpu_attributes(node, g, layout), capacity_entries(full, false),
             fmt::format(R"({{"counterSet":"{}","counters":{{{}{}}}}})", set,
                         capacity_entries(full, true), memory_slice_entries(0, slices, true)),
             layout)});
    for (const auto& p : g.mig_profiles) {
      const Capacities c = profile_capacities(p);
      for (int start : p.placements) {
        const std::string name = mig_device_name(g.minor, p.name, p.gi_profile_id, start);
        devices.push_back(
            {name,
             device_json(name, mig_attributes(node, g, {}, p.name), capacity_entries(c, false),
                         fmt::format(R"({{"counterSet":"{}","counters":{{{}{}}}}})", set,
                                     capacity_entries(c, true),
                                     memory_slice_entries(start, p.memory_slices, true)),
                         layout)});
      }
    }
    auto slices_of_gpu =
        chunk(std::move(devices), std::min<size_t>(layout.max_devices_per_slice, 64));
    if (layout.separate_counter_slice) {
      if (!counters_only.shared_counters.empty()) counters_only.shared_counters += ',';
      counters_only.shared_counters += counter_set;
    } else {
      // Combined layout (1.34): the counter set travels with the GPU's first slice.
      slices_of_gpu.front().shared_counters = counter_set;
    }
    out.insert(out.end(), slices_of_gpu.begin(), slices_of_gpu.end());
  }
  if (!plain.empty()) {
    auto p =
        chunk(std::move(plain), std::min<size_t>(layout.max_devices_per_slice, taints ? 64 : 128));
    out.insert(out.end(), p.begin(), p.end());
  }
  if (!counters_only.shared_counters.empty()) out.insert(out.begin(), std::move(counters_only));
  if (out.empty()) out.emplace_back();
  return out;
}

std::vector<SliceContent> compute_domain_slices(const NodeDevices& node) {
  SliceContent s;
  const std::string clique = node.clique_id();
  for (const char* type : {"channel", "daemon"}) {
    std::string a;
    str_attr(a, "type", type);
    int_attr(a, "id", 0);
    if (!clique.empty()) str_attr(a, "cliqueID", clique);
    const std::string name = fmt::format("{}-0", type);
    if (!s.devices.empty()) s.devices += ',';
    s.devices += fmt::format(R"({{"name":"{}","attributes":{{{}}}}})", name, a);
    s.device_names.push_back(name);
  }
  return {s};
}

std::string resource_slice_json(std::string_view driver, std::string_view node,
                                std::string_view name_or_prefix, bool generate, int64_t generation,
                                size_t slice_count, const SliceContent& content,
                                std::string_view owner_node_uid) {
  std::string meta =
      fmt::format(R"("{}":{})", generate ? "generateName" : "name", json::quote(name_or_prefix));
  if (!owner_node_uid.empty()) {
    meta += fmt::format(
        R"(,"ownerReferences":[{{"apiVersion":"v1","kind":"Node","name":{},"uid":{},"controller":true}}])",
        json::quote(node), json::quote(owner_node_uid));
  }
  std::string spec = fmt::format(
      R"("driver":{},"nodeName":{},"pool":{{"name":{},"generation":{},"resourceSliceCount":{}}})",
      json::quote(driver), json::quote(node), json::quote(node), generation, slice_count);
  if (!content.devices.empty() || content.shared_counters.empty())
    spec += fmt::format(R"(,"devices":[{}])", content.devices);
  if (!content.shared_counters.empty())
    spec += fmt::format(R"(,"sharedCounters":[{}])", content.shared_counters);
  return fmt::format(
      R"({{"apiVersion":"resource.k8s.io/v1","kind":"ResourceSlice","metadata":{{{}}},"spec":{{{}}}}})",
      meta, spec);
}

std::string_view device_type_of(std::string_view name) {
  if (parse_mig_device_name(name)) return "mig";
  if (name.starts_with("gpu-vfio-")) return "vfio";
  if (name.starts_with("gpu-")) return "gpu";
  if (name.starts_with("channel-")) return "channel";
  if (name.starts_with("daemon-")) return "daemon";
  return "unknown";
}

}  // namespace nvdra::api
