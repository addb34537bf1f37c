#include "agent/cdi/cdi_spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "base/atomic_file.h"
#include "base/json.h"

namespace nvdra::agent {
namespace {

std::string edits_json(const CdiEdits& e) {
  std::string out = "{";
  auto sep = [&] {
    if (out.size() > 1) out += ',';
  };
  if (!e.env.empty()) {
    sep();
    out += "\"env\":" + json::quote_array(e.env);
  }
  if (!e.device_nodes.empty()) {
    sep();
    out += "\"deviceNodes\":[";
    for (size_t i = 0; i < e.device_nodes.size(); ++i) {
      const auto& d = e.device_nodes[i];
      out += fmt::format(R"({}{{"path":{})", i ? "," : "", json::quote(d.path));
      if (!d.host_path.empty() && d.host_path != d.path)
        out += ",\"hostPath\":" + json::quote(d.host_path);
      out += ",\"type\":" + json::quote(d.type);
      if (d.major >= 0) out += fmt::format(R"(,"major":{},"minor":{})", d.major, d.minor);
      if (d.file_mode >= 0) out += fmt::format(R"(,"fileMode":{})", d.file_mode);
      out += ",\"permissions\":" + json::quote(d.permissions) + "}";
    }
    out += "]";
  }
  if (!e.mounts.empty()) {
    sep();
    out += "\"mounts\":[";
    for (size_t i = 0; i < e.mounts.size(); ++i) {
      const auto& m = e.mounts[i];
      out += fmt::format(R"({}{{"hostPath":{},"containerPath":{},"options":{}}})", i ? "," : "",
                         json::quote(m.host_path), json::quote(m.container_path),
                         json::quote_array(m.options));
    }
    out += "]";
  }
  return out + "}";
}

std::string file_prefix(std::string_view kind) {
  std::string p(kind);
  std::replace(p.begin(), p.end(), '/', '-');
  return p + "_";
}

}  // namespace

void CdiEdits::append(const CdiEdits& o) {
  env.insert(env.end(), o.env.begin(), o.env.end());
  device_nodes.insert(device_nodes.end(), o.device_nodes.begin(), o.device_nodes.end());
  mounts.insert(mounts.end(), o.mounts.begin(), o.mounts.end());
}

std::string to_json(const CdiSpec& spec) {
  // 0.6.0: device names may start with a digit (claim UIDs do) and kinds contain dots; the
  // lowest version that covers what nvdra writes (hostPath needs 0.5.0).
  std::string out =
      fmt::format(R"({{"cdiVersion":"0.6.0","kind":{},"devices":[)", json::quote(spec.kind));
  for (size_t i = 0; i < spec.devices.size(); ++i) {
    out += fmt::format(R"({}{{"name":{},"containerEdits":{}}})", i ? "," : "",
                       json::quote(spec.devices[i].name), edits_json(spec.devices[i].edits));
  }
  out += "]";
  if (!spec.common.empty()) out += ",\"containerEdits\":" + edits_json(spec.common);
  return out + "}\n";
}

std::string cdi_device_id(std::string_view kind, std::string_view device) {
  return fmt::format("{}={}", kind, device);
}

std::string CdiWriter::claim_spec_path(std::string_view kind, std::string_view claim_uid) const {
  return fmt::format("{}/{}{}.json", root_, file_prefix(kind), claim_uid);
}

Status CdiWriter::write(const CdiSpec& spec, std::string_view claim_uid) const {
  std::error_code ec;
  std::filesystem::create_directories(root_, ec);
  if (ec)
    return unexpected(ErrorCode::kIo,
                      fmt::format("cannot create CDI root {}: {}", root_, ec.message()));
  return write_file_atomic(claim_spec_path(spec.kind, claim_uid), to_json(spec),
                           AtomicWriteOptions{0644, true});
}

Status CdiWriter::remove(std::string_view kind, std::string_view claim_uid) const {
  std::error_code ec;
  std::filesystem::remove(claim_spec_path(kind, claim_uid), ec);
  if (ec)
    return unexpected(ErrorCode::kIo, fmt::format("cannot remove CDI spec: {}", ec.message()));
  return ok();
}

std::vector<std::string> CdiWriter::claim_uids(std::string_view kind) const {
  std::vector<std::string> out;
  const std::string prefix = file_prefix(kind);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(prefix) && name.ends_with(".json"))
      out.push_back(name.substr(prefix.size(), name.size() - prefix.size() - 5));
  }
  return out;
}

std::vector<std::string> CdiWriter::claim_devices(std::string_view kind,
                                                  std::string_view claim_uid) const {
  std::vector<std::string> out;
  auto text = read_file(claim_spec_path(kind, claim_uid));
  if (!text) return out;
  auto doc = json::parse(*text);
  if (!doc || !doc->IsObject()) return out;
  const json::Value* devices = json::find(*doc, "devices");
  if (!devices || !devices->IsArray()) return out;
  const std::string prefix = std::string(claim_uid) + "-";
  for (const auto& d : devices->GetArray()) {
    const std::string_view name = json::string_or(d, "name");
    if (name.starts_with(prefix)) out.emplace_back(name.substr(prefix.size()));
  }
  return out;
}

}  // namespace nvdra::agent
