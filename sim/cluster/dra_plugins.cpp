#include "sim/cluster/dra_plugins.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>

#include "base/log.h"
#include "dra/v1/api.grpc.pb.h"
#include "dra/v1beta1/api.grpc.pb.h"
#include "pluginregistration/v1/api.grpc.pb.h"

namespace nvdra::sim::cluster {
namespace {

namespace fs = std::filesystem;
namespace reg = pluginregistration;
namespace v1 = k8s::io::kubelet::pkg::apis::dra::v1;
namespace v1beta1 = k8s::io::kubelet::pkg::apis::dra::v1beta1;

// The kubelet's per-call timeout for DRA calls (defaultClientCallTimeout).
constexpr auto kCallTimeout = std::chrono::seconds(45);
constexpr auto kRegistrationTimeout = std::chrono::seconds(1);
const char* const kSupported[] = {"v1.DRAPlugin", "v1beta1.DRAPlugin"};

std::shared_ptr<grpc::Channel> unix_channel(const std::string& path) {
  return grpc::CreateChannel("unix://" + path, grpc::InsecureChannelCredentials());
}

Error grpc_error(const std::string& what, const grpc::Status& s) {
  return Error(ErrorCode::kIo, fmt::format("{}: {} (gRPC code {})", what, s.error_message(),
                                           static_cast<int>(s.error_code())));
}

// One DRA service version; Api is v1 or v1beta1 (the same messages).
template <class Api>
class Plugin : public DraPlugin {
 public:
  Plugin(std::string driver, std::string version, const std::string& endpoint)
      : driver_(std::move(driver)),
        version_(std::move(version)),
        stub_(Api::DRAPlugin::NewStub(unix_channel(endpoint))) {}
  const std::string& driver() const override { return driver_; }
  const std::string& version() const override { return version_; }

  Result<PrepareResult> prepare(const std::vector<ClaimRef>& claims) override {
    typename Api::NodePrepareResourcesRequest req;
    fill(req, claims);
    typename Api::NodePrepareResourcesResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    if (auto s = stub_->NodePrepareResources(&ctx, req, &resp); !s.ok())
      return unexpected(grpc_error(fmt::format("NodePrepareResources on {}", driver_), s));
    PrepareResult out;
    for (const auto& c : claims) {
      auto it = resp.claims().find(c.uid);
      if (it == resp.claims().end()) {
        out[c.uid] = unexpected(ErrorCode::kInternal,
                                fmt::format("{} did not answer for claim {}", driver_, c.uid));
        continue;
      }
      if (!it->second.error().empty()) {
        out[c.uid] = unexpected(ErrorCode::kInternal, it->second.error());
        continue;
      }
      std::vector<PreparedDevice> devices;
      for (const auto& d : it->second.devices()) {
        devices.push_back(PreparedDevice{{d.request_names().begin(), d.request_names().end()},
                                         d.pool_name(),
                                         d.device_name(),
                                         {d.cdi_device_ids().begin(), d.cdi_device_ids().end()}});
      }
      out[c.uid] = std::move(devices);
    }
    return out;
  }

  Result<UnprepareResult> unprepare(const std::vector<ClaimRef>& claims) override {
    typename Api::NodeUnprepareResourcesRequest req;
    fill(req, claims);
    typename Api::NodeUnprepareResourcesResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    if (auto s = stub_->NodeUnprepareResources(&ctx, req, &resp); !s.ok())
      return unexpected(grpc_error(fmt::format("NodeUnprepareResources on {}", driver_), s));
    UnprepareResult out;
    for (const auto& c : claims) {
      auto it = resp.claims().find(c.uid);
      if (it == resp.claims().end()) {
        out[c.uid] = unexpected(ErrorCode::kInternal,
                                fmt::format("{} did not answer for claim {}", driver_, c.uid));
      } else if (!it->second.error().empty()) {
        out[c.uid] = unexpected(ErrorCode::kInternal, it->second.error());
      } else {
        out[c.uid] = ok();
      }
    }
    return out;
  }

 private:
  template <class Req>
  static void fill(Req& req, const std::vector<ClaimRef>& claims) {
    for (const auto& c : claims) {
      auto* pc = req.add_claims();
      pc->set_namespace_(c.ns);
      pc->set_name(c.name);
      pc->set_uid(c.uid);
    }
  }

  std::string driver_, version_;
  std::unique_ptr<typename Api::DRAPlugin::Stub> stub_;
};

struct V1 {
  using DRAPlugin = v1::DRAPlugin;
  using NodePrepareResourcesRequest = v1::NodePrepareResourcesRequest;
  using NodePrepareResourcesResponse = v1::NodePrepareResourcesResponse;
  using NodeUnprepareResourcesRequest = v1::NodeUnprepareResourcesRequest;
  using NodeUnprepareResourcesResponse = v1::NodeUnprepareResourcesResponse;
};
struct V1beta1 {
  using DRAPlugin = v1beta1::DRAPlugin;
  using NodePrepareResourcesRequest = v1beta1::NodePrepareResourcesRequest;
  using NodePrepareResourcesResponse = v1beta1::NodePrepareResourcesResponse;
  using NodeUnprepareResourcesRequest = v1beta1::NodeUnprepareResourcesRequest;
  using NodeUnprepareResourcesResponse = v1beta1::NodeUnprepareResourcesResponse;
};

// Registration, as the kubelet's plugin watcher does it. nullptr when the plugin is refused (it
// is told why) or cannot be reached.
std::shared_ptr<DraPlugin> register_plugin(const std::string& socket) {
  auto stub = reg::Registration::NewStub(unix_channel(socket));
  reg::PluginInfo info;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kRegistrationTimeout);
    if (auto s = stub->GetInfo(&ctx, reg::InfoRequest(), &info); !s.ok()) {
      NVDRA_V(2, "kubelet: GetInfo on {}: {}", socket, s.error_message());
      return nullptr;
    }
  }
  std::string error, version;
  if (info.type() != "DRAPlugin")
    error = fmt::format("plugin type {} is not DRAPlugin", info.type());
  if (error.empty() && info.name().empty()) error = "the plugin has no driver name";
  for (const auto& v : info.supported_versions()) {
    if (!version.empty()) break;
    for (const char* s : kSupported) {
      if (v == s) version = v;
    }
  }
  if (error.empty() && version.empty())
    error =
        fmt::format("none of the versions {} is supported (want v1.DRAPlugin or v1beta1.DRAPlugin)",
                    fmt::join(info.supported_versions(), ", "));
  const std::string endpoint = info.endpoint().empty() ? socket : info.endpoint();
  if (error.empty() && !fs::path(endpoint).is_absolute())
    error = "endpoint " + endpoint + " is not an absolute path";
  reg::RegistrationStatus status;
  status.set_plugin_registered(error.empty());
  status.set_error(error);
  reg::RegistrationStatusResponse ignored;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kRegistrationTimeout);
  (void)stub->NotifyRegistrationStatus(&ctx, status, &ignored);
  if (!error.empty()) {
    NVDRA_WARN("kubelet: refusing DRA plugin at {}: {}", socket, error);
    return nullptr;
  }
  NVDRA_INFO("kubelet: registered DRA driver {} ({}) at {}", info.name(), version, endpoint);
  if (version == "v1.DRAPlugin")
    return std::make_shared<Plugin<V1>>(info.name(), version, endpoint);
  return std::make_shared<Plugin<V1beta1>>(info.name(), version, endpoint);
}

}  // namespace

DraPluginRegistry::DraPluginRegistry(std::string registry_dir) : dir_(std::move(registry_dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
}

DraPluginRegistry::~DraPluginRegistry() = default;

void DraPluginRegistry::scan() {
  std::vector<std::string> present;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(".") || !name.ends_with("-reg.sock") || !e.is_socket(ec)) continue;
    if (e.path().string().size() > 107) {  // sockaddr_un.sun_path
      NVDRA_WARN("kubelet: ignoring registration socket {}: the path is longer than 107 bytes",
                 e.path().string());
      continue;
    }
    present.push_back(e.path().string());
  }
  std::vector<std::string> fresh;
  {
    std::lock_guard lock(mu_);
    for (auto it = by_socket_.begin(); it != by_socket_.end();) {
      if (std::find(present.begin(), present.end(), it->first) != present.end()) {
        ++it;
        continue;
      }
      NVDRA_INFO("kubelet: DRA driver {} deregistered (socket removed)", it->second->driver());
      gone_[it->second->driver()] = std::chrono::steady_clock::now();
      it = by_socket_.erase(it);
    }
    for (const auto& p : present) {
      if (!by_socket_.contains(p)) fresh.push_back(p);
    }
  }
  for (const auto& p : fresh) {
    auto plugin = register_plugin(p);  // outside the lock: it talks to the plugin
    if (!plugin) continue;
    std::lock_guard lock(mu_);
    gone_.erase(plugin->driver());
    by_socket_[p] = std::move(plugin);
  }
}

std::shared_ptr<DraPlugin> DraPluginRegistry::find(const std::string& driver) const {
  std::lock_guard lock(mu_);
  std::shared_ptr<DraPlugin> out;
  for (const auto& [socket, p] : by_socket_) {
    if (p->driver() == driver) out = p;  // the most recently registered socket name wins ties
  }
  return out;
}

std::map<std::string, std::chrono::steady_clock::time_point> DraPluginRegistry::gone() const {
  std::lock_guard lock(mu_);
  return gone_;
}

void DraPluginRegistry::forget_gone(const std::string& driver) {
  std::lock_guard lock(mu_);
  gone_.erase(driver);
}

}  // namespace nvdra::sim::cluster
