#include "agent/prepare/claim.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/json.h"

namespace nvdra::agent {
namespace {

using json::Value;

Error invalid(std::string m) {
  return Error(ErrorCode::kInvalidArgument, std::move(m));
}

bool kind_fits(const OpaqueConfig& c, std::string_view type) {
  if (type == "gpu") return std::holds_alternative<GpuConfig>(c);
  if (type == "mig") return std::holds_alternative<MigDeviceConfig>(c);
  if (type == "vfio") return std::holds_alternative<VfioDeviceConfig>(c);
  if (type == "channel") return std::holds_alternative<ComputeDomainChannelConfig>(c);
  if (type == "daemon") return std::holds_alternative<ComputeDomainDaemonConfig>(c);
  return false;
}

}  // namespace

std::string base_request(std::string_view request) {
  return std::string(request.substr(0, request.find('/')));
}

Result<ClaimInfo> parse_claim(std::string_view text, std::string_view driver,
                              std::string_view expected_uid) {
  auto doc = json::parse(text);
  if (!doc || !doc->IsObject()) return unexpected(invalid("ResourceClaim is not a JSON object"));
  ClaimInfo c;
  if (const Value* meta = json::find(*doc, "metadata")) {
    c.uid = std::string(json::string_or(*meta, "uid"));
    c.namespace_ = std::string(json::string_or(*meta, "namespace"));
    c.name = std::string(json::string_or(*meta, "name"));
  }
  if (!expected_uid.empty() && c.uid != expected_uid)
    return unexpected(Error(ErrorCode::kNotFound,
                            fmt::format("ResourceClaim {}/{} has UID {}, not {} (it was replaced)",
                                        c.namespace_, c.name, c.uid, expected_uid)));
  const Value* alloc = json::find_path(*doc, {"status", "allocation"});
  if (!alloc || !alloc->IsObject())
    return unexpected(invalid(fmt::format("no allocation set in ResourceClaim {} in namespace {}",
                                          c.name, c.namespace_)));
  const Value* devices = json::find(*alloc, "devices");
  if (!devices || !devices->IsObject()) return c;
  if (const Value* results = json::find(*devices, "results"); results && results->IsArray()) {
    for (const auto& r : results->GetArray()) {
      if (!r.IsObject() || json::string_or(r, "driver") != driver) continue;
      AllocatedDevice d;
      d.request = std::string(json::string_or(r, "request"));
      d.pool = std::string(json::string_or(r, "pool"));
      d.device = std::string(json::string_or(r, "device"));
      d.admin_access = json::get_bool(r, "adminAccess").value_or(false);
      if (d.device.empty() || d.request.empty())
        return unexpected(invalid("an allocation result has no device or request"));
      c.devices.push_back(std::move(d));
    }
  }
  if (const Value* configs = json::find(*devices, "config"); configs && configs->IsArray()) {
    std::vector<ClaimConfig> from_class, from_claim;
    for (const auto& e : configs->GetArray()) {
      if (!e.IsObject()) continue;
      const Value* opaque = json::find(e, "opaque");
      if (!opaque || !opaque->IsObject())
        return unexpected(invalid("only opaque parameters are supported by this driver"));
      if (json::string_or(*opaque, "driver") != driver) continue;
      ClaimConfig cc;
      cc.source = std::string(json::string_or(e, "source"));
      if (const Value* reqs = json::find(e, "requests"); reqs && reqs->IsArray()) {
        for (const auto& r : reqs->GetArray()) {
          if (r.IsString()) cc.requests.emplace_back(r.GetString(), r.GetStringLength());
        }
      }
      const Value* params = json::find(*opaque, "parameters");
      cc.parameters = params ? json::write(*params) : "{}";
      (cc.source == "FromClass" ? from_class : from_claim).push_back(std::move(cc));
    }
    c.configs = std::move(from_class);
    c.configs.insert(c.configs.end(), from_claim.begin(), from_claim.end());
  }
  return c;
}

Result<ChosenConfig> choose_config(const ClaimInfo& claim, const AllocatedDevice& device,
                                   std::string_view type, const std::vector<OpaqueConfig>& defaults,
                                   const FeatureGates& gates) {
  const std::string base = base_request(device.request);
  for (int i = static_cast<int>(claim.configs.size()) - 1; i >= 0; --i) {
    const ClaimConfig& cc = claim.configs[i];
    const bool named =
        std::find(cc.requests.begin(), cc.requests.end(), device.request) != cc.requests.end() ||
        std::find(cc.requests.begin(), cc.requests.end(), base) != cc.requests.end();
    if (!cc.requests.empty() && !named) continue;
    auto decoded = decode_opaque_config(cc.parameters, true);
    if (!decoded)
      return unexpected(decoded.error().wrap(fmt::format(
          "error decoding config {} (spec.devices.config[{}].opaque.parameters)", cc.source, i)));
    if (!kind_fits(*decoded, type)) {
      if (cc.requests.empty()) continue;  // a catch-all of another kind: keep looking
      return unexpected(
          invalid(fmt::format("cannot apply {} to device \"{}\" of type \"{}\" (request: {})",
                              kind_of(*decoded), device.device, type, device.request)));
    }
    normalize(*decoded, gates);
    if (auto s = validate(*decoded, gates); !s)
      return unexpected(s.error().wrap(
          fmt::format("error validating {} (spec.devices.config[{}])", kind_of(*decoded), i)));
    return ChosenConfig{std::move(*decoded), i};
  }
  for (const auto& d : defaults) {
    if (kind_fits(d, type)) {
      OpaqueConfig c = d;
      normalize(c, gates);
      return ChosenConfig{std::move(c), -1};
    }
  }
  return unexpected(
      invalid(fmt::format("no configuration applies to device \"{}\"", device.device)));
}

}  // namespace nvdra::agent
