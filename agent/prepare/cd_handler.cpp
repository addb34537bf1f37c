#include "agent/prepare/cd_handler.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>

#include <fcntl.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "agent/device/host_devices.h"
#include "base/atomic_file.h"
#include "base/json.h"
#include "base/log.h"

namespace nvdra::agent {
namespace {

namespace fs = std::filesystem;
using json::Value;

// The IMEX daemon settings the compute-domain daemon renders its config from.
constexpr std::string_view kImexConfigTemplate =
    "LOG_LEVEL=4\nLOG_FILE_NAME=\nDAEMONIZE=0\nSERVER_PORT=50000\n"
    "IMEX_WAIT_FOR_QUORUM=RECOVERY\nIMEX_ENABLE_AUTH_ENCRYPTION=0\nIMEX_CMD_ENABLED=1\n"
    "IMEX_CMD_PORT=50005\nIMEX_NODE_DISCONNECTED_GRACE_TIME=-1\n"
    "BIND_INTERFACE_IP={{IMEX_CMD_BIND_INTERFACE_IP}}\n"
    "IMEX_NODE_CONFIG_FILE={{IMEX_NODE_CONFIG_FILE}}\n";

}  // namespace

CdHandler::CdHandler(ClusterAccess& cluster, CdHandlerOptions options)
    : cluster_(cluster), opt_(std::move(options)) {}

std::string CdHandler::domain_dir(const std::string& uid) const {
  return opt_.plugin_dir + "/domains/" + uid;
}

std::string CdHandler::created_channels_file() const {
  return opt_.plugin_dir + "/created-imex-channels";
}

namespace {

// The channel numbers in the record, one a line.
std::set<int> read_created(const std::string& file) {
  std::set<int> out;
  std::istringstream in(read_file(file).value_or(""));
  for (int n; in >> n;)
    out.insert(n);
  return out;
}

Status write_created(const std::string& file, const std::set<int>& channels) {
  std::string text;
  for (int n : channels)
    text += fmt::format("{}\n", n);
  return write_file_atomic(file, text, AtomicWriteOptions{0600, true});
}

}  // namespace

Result<CdiEdits> CdHandler::channel_nodes(bool all) {
  const int major = char_device_major(opt_.proc_devices, "nvidia-caps-imex-channels");
  const std::string dir = opt_.dev_root + "/nvidia-caps-imex-channels";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return unexpected(ErrorCode::kIo, fmt::format("cannot create {}: {}", dir, ec.message()));
  CdiEdits edits;
  const int count = all ? kImexChannelCount : 1;
  std::set<int> created = read_created(created_channels_file());
  const size_t recorded = created.size();
  Status failed = ok();
  for (int n = 0; n < count && failed; ++n) {
    const std::string host = fmt::format("{}/channel{}", dir, n);
    if (!fs::exists(host, ec)) {
      // Owner-only on the host: containers get the node from the CDI spec, mode 0666 inside as
      // NVIDIA's, and nothing else on the host needs it. A real node has the driver's major
      // number; without one (the simulator) a plain file stands in.
      const int rc = major >= 0
                         ? ::mknod(host.c_str(), S_IFCHR | 0600, makedev(major, n))
                         : ::close(::open(host.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
      if (rc == 0) {
        created.insert(n);
      } else if (!fs::exists(host, ec)) {
        failed = unexpected(ErrorCode::kIo, fmt::format("cannot create IMEX channel {}", host));
      }
    }
    edits.device_nodes.push_back({fmt::format("/dev/nvidia-caps-imex-channels/channel{}", n), host,
                                  "c", major >= 0 ? major : -1, major >= 0 ? n : -1, "rw", 0666});
  }
  // Recorded after creation: a crash in between leaves a node behind rather than a record that
  // could later remove a node someone else made.
  if (created.size() != recorded) {
    if (auto s = write_created(created_channels_file(), created); !s) return unexpected(s.error());
  }
  if (!failed) return unexpected(failed.error());
  return edits;
}

void CdHandler::remove_channel_nodes() {
  const std::string dir = opt_.dev_root + "/nvidia-caps-imex-channels";
  std::error_code ec;
  for (int n : read_created(created_channels_file()))
    fs::remove(fmt::format("{}/channel{}", dir, n), ec);
  fs::remove(created_channels_file(), ec);
}

Status CdHandler::prepare(const ClaimInfo& claim, PreparedClaim& entry, CdiSpec& spec,
                          const std::function<Status()>& save) {
  if (claim.devices.size() != 1)
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("expected exactly one {} device in the claim, got {}", driver(),
                                  claim.devices.size()));
  const AllocatedDevice& d = claim.devices.front();
  const std::string type(api::device_type_of(d.device));
  if (type != "channel" && type != "daemon")
    return unexpected(ErrorCode::kNotFound,
                      fmt::format("requested device is not allocatable: {}", d.device));
  auto chosen = choose_config(
      claim, d, type, {ComputeDomainChannelConfig{}, ComputeDomainDaemonConfig{}}, opt_.gates);
  if (!chosen) return unexpected(chosen.error());
  if (auto s = validate(chosen->config, opt_.gates); !s) return s;
  const std::string domain = type == "channel"
                                 ? std::get<ComputeDomainChannelConfig>(chosen->config).domain_id
                                 : std::get<ComputeDomainDaemonConfig>(chosen->config).domain_id;
  auto cd_json = cluster_.get_compute_domain(domain);
  if (!cd_json) {
    if (cd_json.error().code == ErrorCode::kNotFound)
      return unexpected(ErrorCode::kNotFound, fmt::format("ComputeDomain not found: {}", domain));
    return unexpected(cd_json.error().wrap("looking up ComputeDomain " + domain));
  }
  auto cd = json::parse(*cd_json);
  if (!cd) return unexpected(cd.error());
  const Value* meta = json::find(*cd, "metadata");
  const std::string cd_ns(meta ? json::string_or(*meta, "namespace") : "");
  const std::string cd_name(meta ? json::string_or(*meta, "name") : "");
  PreparedDevice pd{{base_request(d.request)}, d.pool, d.device, {}, type, "", std::nullopt};
  CdiDevice cdi;
  cdi.name = fmt::format("{}-{}", claim.uid, d.device);
  // A claim may only reach a domain of its own namespace (NVIDIA's check, channel claims); the
  // controller's daemon claims live in the driver's namespace.
  if (cd_ns != claim.namespace_ && (type == "channel" || claim.namespace_ != opt_.driver_namespace))
    return unexpected(
        ErrorCode::kInvalidArgument,
        "the ResourceClaim's namespace is different than the ComputeDomain's namespace");
  if (type == "channel") {
    entry.compute_domain = domain;
    if (auto s = save(); !s) return s;
    if (auto s = cluster_.set_node_label(std::string(kComputeDomainLabel), domain); !s) return s;
    // Workloads start once the IMEX daemon on this node is Ready in the domain's status.
    bool ready = false;
    if (const Value* nodes = json::find_path(*cd, {"status", "nodes"}); nodes && nodes->IsArray()) {
      for (const auto& n : nodes->GetArray()) {
        if (json::string_or(n, "name") == opt_.node_name && json::string_or(n, "status") == "Ready")
          ready = true;
      }
    }
    if (!ready) return unexpected(ErrorCode::kTimeout, "current node not ready in ComputeDomain");
    if (!opt_.clique_id.empty()) {
      auto edits = channel_nodes(
          std::get<ComputeDomainChannelConfig>(chosen->config).allocation_mode == "All");
      if (!edits) return unexpected(edits.error());
      cdi.edits = std::move(*edits);
    }
  } else {
    entry.compute_domain = domain;
    if (auto s = save(); !s) return s;
    const std::string dir = domain_dir(domain);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
      return unexpected(ErrorCode::kIo, fmt::format("cannot create {}: {}", dir, ec.message()));
    if (auto s = write_file_atomic(dir + "/imexd.cfg.tmpl", kImexConfigTemplate); !s) return s;
    cdi.edits.env = {"CLIQUE_ID=" + opt_.clique_id, "COMPUTE_DOMAIN_UUID=" + domain,
                     "COMPUTE_DOMAIN_NAME=" + cd_name, "COMPUTE_DOMAIN_NAMESPACE=" + cd_ns};
    cdi.edits.mounts.push_back({dir, "/imexd", {"rw", "nosuid", "nodev", "bind"}});
  }
  if (!cdi.edits.empty()) {
    pd.cdi_ids = {cdi_device_id(spec.kind, cdi.name)};
    spec.devices.push_back(std::move(cdi));
  }
  entry.devices.push_back(std::move(pd));
  return ok();
}

Status CdHandler::unprepare(const std::string& /*uid*/, const PreparedClaim& entry) {
  if (entry.compute_domain.empty()) return ok();
  const bool daemon = !entry.devices.empty() && entry.devices.front().type == "daemon";
  if (daemon) {
    std::error_code ec;
    fs::remove_all(domain_dir(entry.compute_domain), ec);
    return ok();
  }
  remove_channel_nodes();
  return cluster_.remove_node_label(std::string(kComputeDomainLabel), entry.compute_domain);
}

void CdHandler::recover(const std::string& /*uid*/, PreparedClaim& entry) {
  if (entry.devices.empty() || entry.devices.front().type != "daemon") return;
  // A node runs one daemon claim at a time: the one domain folder is its domain.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(opt_.plugin_dir + "/domains", ec))
    entry.compute_domain = e.path().filename().string();
}

void CdHandler::sweep_orphans(const Checkpoint& checkpoint) {
  bool channel = false;
  std::set<std::string> domains;
  for (const auto& [uid, c] : checkpoint.claims) {
    for (const auto& d : c.devices) {
      channel = channel || d.type == "channel";
      if (d.type == "daemon") domains.insert(c.compute_domain);
    }
  }
  if (!channel) remove_channel_nodes();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(opt_.plugin_dir + "/domains", ec)) {
    if (domains.contains(e.path().filename().string())) continue;
    NVDRA_INFO("compute-domain.nvidia.com: removing orphaned domain folder {}", e.path().string());
    fs::remove_all(e.path(), ec);
  }
}

}  // namespace nvdra::agent
