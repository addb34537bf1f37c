#include "agent/state/checkpoint.h"

#include <fmt/format.h>

#include "base/atomic_file.h"
#include "base/hash.h"
#include "base/json.h"

namespace nvdra::agent {
namespace {

using json::Value;

std::string checksum(std::string_view payload) {
  return fmt::format("fnv1a64:{:016x}", fnv1a64(payload));
}

Error corrupt(std::string why) {
  return Error(ErrorCode::kInvalidArgument, "checkpoint is corrupt: " + std::move(why));
}

Result<std::vector<std::string>> read_strings(const Value& obj, const char* key) {
  std::vector<std::string> out;
  const Value* v = json::find(obj, key);
  if (!v) return out;
  if (!v->IsArray()) return unexpected(corrupt(fmt::format("{} is not a list", key)));
  for (const auto& s : v->GetArray()) {
    if (!s.IsString()) return unexpected(corrupt(fmt::format("{} holds a non-string", key)));
    out.emplace_back(s.GetString(), s.GetStringLength());
  }
  return out;
}

}  // namespace

const char* to_string(ClaimState s) {
  return s == ClaimState::kPrepareCompleted ? "PrepareCompleted" : "PrepareStarted";
}

std::string encode_checkpoint(const Checkpoint& c) {
  std::string p = fmt::format(R"({{"bootID":{},"claims":{{)", json::quote(c.boot_id));
  bool first_claim = true;
  for (const auto& [uid, claim] : c.claims) {
    p += fmt::format(R"({}{}:{{"state":"{}","namespace":{},"name":{},"devices":[)",
                     first_claim ? "" : ",", json::quote(uid), to_string(claim.state),
                     json::quote(claim.namespace_), json::quote(claim.name));
    first_claim = false;
    for (size_t i = 0; i < claim.devices.size(); ++i) {
      const auto& d = claim.devices[i];
      p += fmt::format(
          R"({}{{"requests":{},"pool":{},"device":{},"cdiDeviceIDs":{},"type":{},"uuid":{})",
          i ? "," : "", json::quote_array(d.requests), json::quote(d.pool), json::quote(d.device),
          json::quote_array(d.cdi_ids), json::quote(d.type), json::quote(d.uuid));
      if (!d.pci_bus_id.empty()) p += fmt::format(R"(,"pciBusID":{})", json::quote(d.pci_bus_id));
      if (d.created_mig) {
        const auto& m = *d.created_mig;
        p += fmt::format(
            R"(,"createdMig":{{"parentMinor":{},"profile":{},"placement":{},"gi":{},"uuid":{}}})",
            m.parent_minor, json::quote(m.profile), m.placement, m.gi, json::quote(m.uuid));
      }
      p += "}";
    }
    p += fmt::format(R"(],"mpsID":{},"timeSlicedUUIDs":{},"computeDomain":{}}})",
                     json::quote(claim.mps_id), json::quote_array(claim.time_sliced_uuids),
                     json::quote(claim.compute_domain));
  }
  p += "}}";
  return fmt::format(R"({{"kind":"NvdraAgentCheckpoint","version":{},"checksum":"{}"}})",
                     kCheckpointVersion, checksum(p)) +
         "\n" + p + "\n";
}

Result<Checkpoint> decode_checkpoint(std::string_view text) {
  const size_t nl = text.find('\n');
  if (nl == std::string_view::npos) return unexpected(corrupt("no header line (torn write?)"));
  auto header = json::parse(text.substr(0, nl));
  if (!header || !header->IsObject()) return unexpected(corrupt("the header is not JSON"));
  if (json::string_or(*header, "kind") != "NvdraAgentCheckpoint")
    return unexpected(corrupt("not an nvdra agent checkpoint"));
  const auto version = json::get_int(*header, "version");
  if (!version) return unexpected(corrupt("the header has no version"));
  if (*version != kCheckpointVersion)
    return unexpected(Error(ErrorCode::kInvalidArgument,
                            fmt::format("checkpoint version {} is not supported (this agent "
                                        "reads version {})",
                                        *version, kCheckpointVersion)));
  std::string_view payload = text.substr(nl + 1);
  if (!payload.empty() && payload.back() == '\n') payload.remove_suffix(1);
  const std::string want(json::string_or(*header, "checksum"));
  if (checksum(payload) != want)
    return unexpected(
        corrupt(fmt::format("checksum mismatch (header {}, payload {})", want, checksum(payload))));
  auto doc = json::parse(payload);
  if (!doc || !doc->IsObject()) return unexpected(corrupt("the payload is not a JSON object"));
  Checkpoint c;
  c.boot_id = std::string(json::string_or(*doc, "bootID"));
  const Value* claims = json::find(*doc, "claims");
  if (!claims || !claims->IsObject()) return unexpected(corrupt("claims is not an object"));
  for (auto it = claims->MemberBegin(); it != claims->MemberEnd(); ++it) {
    const Value& cv = it->value;
    if (!cv.IsObject()) return unexpected(corrupt("a claim is not an object"));
    PreparedClaim pc;
    const std::string_view state = json::string_or(cv, "state");
    if (state == "PrepareCompleted") {
      pc.state = ClaimState::kPrepareCompleted;
    } else if (state == "PrepareStarted") {
      pc.state = ClaimState::kPrepareStarted;
    } else {
      return unexpected(corrupt(fmt::format("unknown claim state \"{}\"", state)));
    }
    pc.namespace_ = std::string(json::string_or(cv, "namespace"));
    pc.name = std::string(json::string_or(cv, "name"));
    pc.mps_id = std::string(json::string_or(cv, "mpsID"));
    pc.compute_domain = std::string(json::string_or(cv, "computeDomain"));
    auto ts = read_strings(cv, "timeSlicedUUIDs");
    if (!ts) return unexpected(ts.error());
    pc.time_sliced_uuids = std::move(*ts);
    if (const Value* devs = json::find(cv, "devices"); devs) {
      if (!devs->IsArray()) return unexpected(corrupt("devices is not a list"));
      for (const auto& dv : devs->GetArray()) {
        if (!dv.IsObject()) return unexpected(corrupt("a device is not an object"));
        PreparedDevice d;
        auto req = read_strings(dv, "requests");
        auto ids = read_strings(dv, "cdiDeviceIDs");
        if (!req) return unexpected(req.error());
        if (!ids) return unexpected(ids.error());
        d.requests = std::move(*req);
        d.cdi_ids = std::move(*ids);
        d.pool = std::string(json::string_or(dv, "pool"));
        d.device = std::string(json::string_or(dv, "device"));
        d.type = std::string(json::string_or(dv, "type"));
        d.uuid = std::string(json::string_or(dv, "uuid"));
        d.pci_bus_id = std::string(json::string_or(dv, "pciBusID"));
        if (const Value* m = json::find(dv, "createdMig"); m && m->IsObject()) {
          CreatedMig cm;
          cm.parent_minor = static_cast<int>(json::get_int(*m, "parentMinor").value_or(0));
          cm.profile = std::string(json::string_or(*m, "profile"));
          cm.placement = static_cast<int>(json::get_int(*m, "placement").value_or(0));
          cm.gi = static_cast<int>(json::get_int(*m, "gi").value_or(0));
          cm.uuid = std::string(json::string_or(*m, "uuid"));
          d.created_mig = std::move(cm);
        }
        pc.devices.push_back(std::move(d));
      }
    }
    c.claims.emplace(std::string(it->name.GetString(), it->name.GetStringLength()), std::move(pc));
  }
  return c;
}

Result<Checkpoint> load_checkpoint(const std::string& path) {
  auto text = read_file(path);
  if (!text) return unexpected(text.error());
  auto c = decode_checkpoint(*text);
  if (!c) return unexpected(c.error().wrap(path));
  return c;
}

Status save_checkpoint(const std::string& path, const Checkpoint& c) {
  return write_file_atomic(path, encode_checkpoint(c), AtomicWriteOptions{0600, true});
}

}  // namespace nvdra::agent
