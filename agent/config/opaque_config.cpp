#include "agent/config/opaque_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <vector>

#include "base/json.h"

namespace nvdra::agent {
namespace {

using json::Value;

Error invalid(std::string msg) {
  return Error(ErrorCode::kInvalidArgument, std::move(msg));
}

// Decoding context: the dotted path of the object being read and the strictness.
struct Decoder {
  bool strict;

  std::string join(std::string_view path, std::string_view key) const {
    return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
  }

  Status check_fields(const Value& obj, std::string_view path,
                      std::initializer_list<std::string_view> known) const {
    if (!strict) return ok();
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
      const std::string_view k(it->name.GetString(), it->name.GetStringLength());
      if (std::find(known.begin(), known.end(), k) == known.end())
        return unexpected(
            invalid(fmt::format("strict decoding error: unknown field \"{}\"", join(path, k))));
    }
    return ok();
  }

  // A member that must be an object when present.
  Result<const Value*> object(const Value& obj, std::string_view path, const char* key) const {
    const Value* v = json::find(obj, key);
    if (!v || v->IsNull()) return static_cast<const Value*>(nullptr);
    if (!v->IsObject())
      return unexpected(invalid(fmt::format("{}: expected an object", join(path, key))));
    return v;
  }

  Result<std::optional<std::string>> string(const Value& obj, std::string_view path,
                                            const char* key) const {
    const Value* v = json::find(obj, key);
    if (!v || v->IsNull()) return std::optional<std::string>();
    if (!v->IsString())
      return unexpected(invalid(fmt::format("{}: expected a string", join(path, key))));
    return std::optional<std::string>(std::string(v->GetString(), v->GetStringLength()));
  }
};

Result<Quantity> quantity(const Value& v, const std::string& path) {
  if (v.IsString()) {
    auto q = Quantity::parse(std::string_view(v.GetString(), v.GetStringLength()));
    if (!q) return unexpected(invalid(fmt::format("{}: {}", path, q.error().message)));
    return *q;
  }
  if (v.IsInt64()) return Quantity::from_int(v.GetInt64());
  return unexpected(invalid(fmt::format("{}: expected a quantity", path)));
}

Result<MpsConfig> decode_mps(const Decoder& d, const Value& obj, const std::string& path) {
  if (auto s = d.check_fields(obj, path,
                              {"defaultActiveThreadPercentage", "defaultPinnedDeviceMemoryLimit",
                               "defaultPerDevicePinnedMemoryLimit"});
      !s)
    return unexpected(s.error());
  MpsConfig out;
  if (const Value* p = json::find(obj, "defaultActiveThreadPercentage"); p && !p->IsNull()) {
    if (!p->IsInt64())
      return unexpected(
          invalid(fmt::format("{}.defaultActiveThreadPercentage: expected an integer", path)));
    out.default_active_thread_percentage = p->GetInt64();
  }
  if (const Value* q = json::find(obj, "defaultPinnedDeviceMemoryLimit"); q && !q->IsNull()) {
    auto v = quantity(*q, path + ".defaultPinnedDeviceMemoryLimit");
    if (!v) return unexpected(v.error());
    out.default_pinned_device_memory_limit = *v;
  }
  auto per = d.object(obj, path, "defaultPerDevicePinnedMemoryLimit");
  if (!per) return unexpected(per.error());
  if (*per) {
    for (auto it = (*per)->MemberBegin(); it != (*per)->MemberEnd(); ++it) {
      const std::string key(it->name.GetString(), it->name.GetStringLength());
      auto v = quantity(it->value, path + ".defaultPerDevicePinnedMemoryLimit." + key);
      if (!v) return unexpected(v.error());
      out.default_per_device_pinned_memory_limit.emplace(key, *v);
    }
  }
  return out;
}

Result<std::optional<Sharing>> decode_sharing(const Decoder& d, const Value& parent,
                                              bool allow_time_slicing_config) {
  auto obj = d.object(parent, "", "sharing");
  if (!obj) return unexpected(obj.error());
  if (!*obj) return std::optional<Sharing>();
  const Value& s = **obj;
  Status fields = allow_time_slicing_config
                      ? d.check_fields(s, "sharing", {"strategy", "timeSlicingConfig", "mpsConfig"})
                      : d.check_fields(s, "sharing", {"strategy", "mpsConfig"});
  if (!fields) return unexpected(fields.error());
  Sharing out;
  auto strategy = d.string(s, "sharing", "strategy");
  if (!strategy) return unexpected(strategy.error());
  out.strategy = strategy->value_or("");
  if (allow_time_slicing_config) {
    auto ts = d.object(s, "sharing", "timeSlicingConfig");
    if (!ts) return unexpected(ts.error());
    if (*ts) {
      if (auto f = d.check_fields(**ts, "sharing.timeSlicingConfig", {"interval"}); !f)
        return unexpected(f.error());
      auto interval = d.string(**ts, "sharing.timeSlicingConfig", "interval");
      if (!interval) return unexpected(interval.error());
      out.time_slicing = TimeSlicingConfig{*interval};
    }
  }
  auto mps = d.object(s, "sharing", "mpsConfig");
  if (!mps) return unexpected(mps.error());
  if (*mps) {
    auto m = decode_mps(d, **mps, "sharing.mpsConfig");
    if (!m) return unexpected(m.error());
    out.mps = std::move(*m);
  }
  return std::optional<Sharing>(std::move(out));
}

Status validate_sharing(const Sharing& s, const FeatureGates& gates, bool gpu) {
  if (s.strategy == "TimeSlicing") {
    if (!gates.time_slicing_settings)
      return unexpected(
          invalid("\"TimeSlicing\" is selected as the GPU sharing strategy, but the "
                  "\"TimeSlicingSettings\" feature gate is not enabled"));
    if (s.mps) return unexpected(invalid("cannot use MpsConfig with the 'TimeSlicing' strategy"));
    if (gpu) {
      // NVIDIA dereferences a missing interval and crashes; here it is a plain error.
      if (!s.time_slicing || !s.time_slicing->interval)
        return unexpected(invalid("sharing.timeSlicingConfig.interval: required value"));
      const std::string& i = *s.time_slicing->interval;
      if (interval_value(i) < 0)
        return unexpected(
            invalid(fmt::format("sharing.timeSlicingConfig.interval: unknown time-slice interval: "
                                "{}, supported time-slice intervals: Default, Short, "
                                "Medium, Long",
                                i)));
    }
    return ok();
  }
  if (s.strategy == "MPS") {
    if (!gates.mps_support)
      return unexpected(
          invalid("\"MPS\" is selected as the GPU sharing strategy, but the \"MPSSupport\" "
                  "feature gate is not enabled"));
    if (s.time_slicing)
      return unexpected(invalid("cannot use TimeSlicingConfig with the 'MPS' strategy"));
    if (s.mps && s.mps->default_active_thread_percentage) {
      const int64_t p = *s.mps->default_active_thread_percentage;
      if (p < 0)
        return unexpected(invalid(
            "sharing.mpsConfig.defaultActiveThreadPercentage: active thread percentage must not "
            "be negative"));
      if (p > 100)
        return unexpected(invalid(
            "sharing.mpsConfig.defaultActiveThreadPercentage: active thread percentage must not "
            "be greater than 100"));
    }
    return ok();
  }
  return unexpected(
      invalid(fmt::format("sharing.strategy: unknown GPU sharing strategy: {}, supported GPU "
                          "sharing strategies: TimeSlicing, MPS",
                          s.strategy)));
}

Result<std::string> domain_id(const Decoder& d, const Value& obj) {
  auto id = d.string(obj, "", "domainID");
  if (!id) return unexpected(id.error());
  return id->value_or("");
}

}  // namespace

Result<FeatureGates> FeatureGates::parse(std::string_view text) {
  FeatureGates g;
  const std::pair<std::string_view, bool FeatureGates::*> gates[] = {
      {"TimeSlicingSettings", &FeatureGates::time_slicing_settings},
      {"MPSSupport", &FeatureGates::mps_support},
      {"DynamicMIG", &FeatureGates::dynamic_mig},
      {"PassthroughSupport", &FeatureGates::passthrough_support},
      {"NVMLDeviceHealthCheck", &FeatureGates::nvml_device_health_check},
      {"IMEXDaemonsWithDNSNames", &FeatureGates::imex_daemons_with_dns_names},
      {"ComputeDomainCliques", &FeatureGates::compute_domain_cliques},
      {"CrashOnNVLinkFabricErrors", &FeatureGates::crash_on_nvlink_fabric_errors},
      {"DeviceMetadata", &FeatureGates::device_metadata},
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(pos, end - pos);
    pos = end + 1;
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      return unexpected(invalid(
          fmt::format("feature gate \"{}\": missing \"=true\" or \"=false\"", std::string(item))));
    const std::string_view name = item.substr(0, eq), value = item.substr(eq + 1);
    bool v;
    if (value == "true") {
      v = true;
    } else if (value == "false") {
      v = false;
    } else {
      return unexpected(invalid(fmt::format("invalid value of {}={}, err: expected true or false",
                                            std::string(name), std::string(value))));
    }
    // Kubernetes' logging gates are accepted and have no effect here.
    if (name == "ContextualLogging" || name == "LoggingAlphaOptions" ||
        name == "LoggingBetaOptions" || name == "AllAlpha" || name == "AllBeta")
      continue;
    auto it = std::find_if(std::begin(gates), std::end(gates),
                           [&](const auto& g) { return g.first == name; });
    if (it == std::end(gates))
      return unexpected(invalid(fmt::format("unrecognized feature gate: {}", std::string(name))));
    g.*(it->second) = v;
  }
  if (auto s = g.validate(); !s) return unexpected(s.error());
  return g;
}

Status FeatureGates::validate() const {
  if (compute_domain_cliques && !imex_daemons_with_dns_names)
    return unexpected(invalid(
        "feature gate ComputeDomainCliques requires IMEXDaemonsWithDNSNames to also be enabled"));
  if (dynamic_mig && passthrough_support)
    return unexpected(
        invalid("feature gate DynamicMIG is currently mutually exclusive with PassthroughSupport"));
  if (dynamic_mig && nvml_device_health_check)
    return unexpected(invalid(
        "feature gate DynamicMIG is currently mutually exclusive with NVMLDeviceHealthCheck"));
  if (passthrough_support && nvml_device_health_check)
    return unexpected(
        invalid("feature gate PassthroughSupport is currently mutually exclusive with "
                "NVMLDeviceHealthCheck"));
  if (device_metadata && !passthrough_support)
    return unexpected(
        invalid("feature gate DeviceMetadata requires PassthroughSupport to also be enabled"));
  return ok();
}

std::string FeatureGates::to_string() const {
  return fmt::format(
      "ComputeDomainCliques={},CrashOnNVLinkFabricErrors={},DeviceMetadata={},DynamicMIG={},"
      "IMEXDaemonsWithDNSNames={},MPSSupport={},NVMLDeviceHealthCheck={},PassthroughSupport={},"
      "TimeSlicingSettings={}",
      compute_domain_cliques, crash_on_nvlink_fabric_errors, device_metadata, dynamic_mig,
      imex_daemons_with_dns_names, mps_support, nvml_device_health_check, passthrough_support,
      time_slicing_settings);
}

std::string_view kind_of(const OpaqueConfig& c) {
  static constexpr std::string_view kKinds[] = {"GpuConfig", "MigDeviceConfig", "VfioDeviceConfig",
                                                "ComputeDomainChannelConfig",
                                                "ComputeDomainDaemonConfig"};
  return kKinds[c.index()];
}

Result<OpaqueConfig> decode_opaque_config(std::string_view text, bool strict) {
  auto doc = json::parse(text);
  if (!doc)
    return unexpected(
        invalid(fmt::format("error decoding opaque parameters: {}", doc.error().message)));
  if (!doc->IsObject()) return unexpected(invalid("opaque parameters must be a JSON object"));
  const Decoder d{strict};
  const Value& obj = *doc;
  const auto api_version = json::get_string(obj, "apiVersion");
  const auto kind = json::get_string(obj, "kind");
  if (!kind || kind->empty())
    return unexpected(invalid("Object 'Kind' is missing in opaque parameters"));
  if (!api_version || *api_version != kConfigApiVersion)
    return unexpected(invalid(
        fmt::format("no kind \"{}\" is registered for version \"{}\": expected apiVersion {}",
                    *kind, api_version.value_or(""), kConfigApiVersion)));
  if (*kind == "GpuConfig" || *kind == "MigDeviceConfig") {
    const bool gpu = *kind == "GpuConfig";
    if (auto f = d.check_fields(obj, "", {"apiVersion", "kind", "sharing"}); !f)
      return unexpected(f.error());
    auto sharing = decode_sharing(d, obj, gpu);
    if (!sharing) return unexpected(sharing.error());
    if (gpu) return OpaqueConfig(GpuConfig{std::move(*sharing)});
    return OpaqueConfig(MigDeviceConfig{std::move(*sharing)});
  }
  if (*kind == "VfioDeviceConfig") {
    if (auto f = d.check_fields(obj, "", {"apiVersion", "kind", "iommu"}); !f)
      return unexpected(f.error());
    VfioDeviceConfig out;
    auto iommu = d.object(obj, "", "iommu");
    if (!iommu) return unexpected(iommu.error());
    if (*iommu) {
      if (auto f = d.check_fields(**iommu, "iommu", {"backendPolicy", "enableAPIDevice"}); !f)
        return unexpected(f.error());
      out.backend_policy = std::string(json::string_or(**iommu, "backendPolicy"));
      out.enable_api_device = json::get_bool(**iommu, "enableAPIDevice").value_or(false);
    }
    return OpaqueConfig(out);
  }
  if (*kind == "ComputeDomainChannelConfig") {
    if (auto f = d.check_fields(obj, "", {"apiVersion", "kind", "domainID", "allocationMode"}); !f)
      return unexpected(f.error());
    auto id = domain_id(d, obj);
    if (!id) return unexpected(id.error());
    auto mode = d.string(obj, "", "allocationMode");
    if (!mode) return unexpected(mode.error());
    return OpaqueConfig(ComputeDomainChannelConfig{*id, mode->value_or("")});
  }
  if (*kind == "ComputeDomainDaemonConfig") {
    if (auto f = d.check_fields(obj, "", {"apiVersion", "kind", "domainID"}); !f)
      return unexpected(f.error());
    auto id = domain_id(d, obj);
    if (!id) return unexpected(id.error());
    return OpaqueConfig(ComputeDomainDaemonConfig{*id});
  }
  return unexpected(invalid(
      fmt::format("no kind \"{}\" is registered for version \"{}\"", *kind, kConfigApiVersion)));
}

void normalize(OpaqueConfig& c, const FeatureGates& gates) {
  auto sharing = [&](std::optional<Sharing>& s, bool gpu) {
    if (!s) {
      if (gates.time_slicing_settings) s = Sharing{"TimeSlicing", std::nullopt, std::nullopt};
    }
    if (!s) return;
    if (gpu && gates.time_slicing_settings && s->strategy == "TimeSlicing" && !s->time_slicing)
      s->time_slicing = TimeSlicingConfig{"Default"};
    if (gates.mps_support && s->strategy == "MPS" && !s->mps) s->mps = MpsConfig{};
  };
  if (auto* g = std::get_if<GpuConfig>(&c)) sharing(g->sharing, true);
  if (auto* m = std::get_if<MigDeviceConfig>(&c)) sharing(m->sharing, false);
  if (auto* v = std::get_if<VfioDeviceConfig>(&c)) {
    if (v->backend_policy.empty()) v->backend_policy = "LegacyOnly";
  }
}

Status validate(const OpaqueConfig& c, const FeatureGates& gates) {
  if (const auto* g = std::get_if<GpuConfig>(&c)) {
    if (g->sharing) return validate_sharing(*g->sharing, gates, true);
    return ok();
  }
  if (const auto* m = std::get_if<MigDeviceConfig>(&c)) {
    if (m->sharing) return validate_sharing(*m->sharing, gates, false);
    return ok();
  }
  if (const auto* v = std::get_if<VfioDeviceConfig>(&c)) {
    if (v->backend_policy != "LegacyOnly" && v->backend_policy != "PreferIommuFD")
      return unexpected(invalid(fmt::format(
          "unknown IOMMU backend policy: {}, supported IOMMU backend policies: LegacyOnly, "
          "PreferIommuFD",
          v->backend_policy)));
    return ok();
  }
  if (const auto* ch = std::get_if<ComputeDomainChannelConfig>(&c)) {
    if (ch->domain_id.empty()) return unexpected(invalid("domainID cannot be empty"));
    if (!ch->allocation_mode.empty() && ch->allocation_mode != "Single" &&
        ch->allocation_mode != "All")
      return unexpected(invalid(fmt::format(
          "allocationMode: unsupported value \"{}\": supported values: \"All\", \"Single\"",
          ch->allocation_mode)));
    return ok();
  }
  if (std::get<ComputeDomainDaemonConfig>(c).domain_id.empty())
    return unexpected(invalid("domainID cannot be empty"));
  return ok();
}

int interval_value(std::string_view interval) {
  if (interval == "Default") return 0;
  if (interval == "Short") return 1;
  if (interval == "Medium") return 2;
  if (interval == "Long") return 3;
  return -1;
}

Result<std::map<std::string, std::string>> mps_pinned_limits(const MpsConfig& mps,
                                                             std::vector<std::string> uuids) {
  std::sort(uuids.begin(), uuids.end());
  std::map<std::string, std::string> out;
  auto mib = [](const Quantity& q) { return q.value() / (int64_t{1} << 20); };
  if (mps.default_pinned_device_memory_limit) {
    const int64_t m = mib(*mps.default_pinned_device_memory_limit);
    if (m <= 0)
      return unexpected(invalid(fmt::format("invalid limit: default value set too low: {}",
                                            mps.default_pinned_device_memory_limit->to_string())));
    for (const auto& u : uuids)
      out[u] = fmt::format("{}M", m);
  }
  for (const auto& [key, q] : mps.default_per_device_pinned_memory_limit) {
    std::string uuid = key;
    if (std::find(uuids.begin(), uuids.end(), key) == uuids.end()) {
      int index = -1;
      auto [p, ec] = std::from_chars(key.data(), key.data() + key.size(), index);
      if (ec != std::errc() || p != key.data() + key.size())
        return unexpected(
            invalid(fmt::format("invalid device: unable to parse key as an integer: {}", key)));
      if (index < 0 || static_cast<size_t>(index) >= uuids.size())
        return unexpected(invalid(fmt::format("invalid device: invalid device index: {}", index)));
      uuid = uuids[index];
    }
    const int64_t m = mib(q);
    if (m <= 0)
      return unexpected(
          invalid(fmt::format("invalid limit: value set too low: {}: {}", key, q.to_string())));
    out[uuid] = fmt::format("{}M", m);
  }
  return out;
}

GpuConfig default_gpu_config(const FeatureGates& gates) {
  GpuConfig c;
  if (gates.time_slicing_settings)
    c.sharing = Sharing{"TimeSlicing", TimeSlicingConfig{"Default"}, {}};
  return c;
}

VfioDeviceConfig default_vfio_config() {
  return VfioDeviceConfig{"LegacyOnly", false};
}

MigDeviceConfig default_mig_config(const FeatureGates& gates) {
  MigDeviceConfig c;
  if (gates.time_slicing_settings) c.sharing = Sharing{"TimeSlicing", std::nullopt, std::nullopt};
  return c;
}

}  // namespace nvdra::agent
