#include "agent/plugin/kubelet_plugin.h"

#include <fmt/format.h>

#include <filesystem>
#include <future>

#include "base/log.h"
#include "dra/v1/api.grpc.pb.h"
#include "dra/v1beta1/api.grpc.pb.h"
#include "pluginregistration/v1/api.grpc.pb.h"

namespace nvdra::agent {

namespace {

// The generated types of one DRA API version (v1 and v1beta1 are wire-identical).
template <class Plugin, class PrepReq, class PrepResp, class UnprepReq, class UnprepResp>
struct DraApi {
  using DRAPlugin = Plugin;
  using NodePrepareResourcesRequest = PrepReq;
  using NodePrepareResourcesResponse = PrepResp;
  using NodeUnprepareResourcesRequest = UnprepReq;
  using NodeUnprepareResourcesResponse = UnprepResp;
};
namespace v1 = ::k8s::io::kubelet::pkg::apis::dra::v1;
namespace v1beta1 = ::k8s::io::kubelet::pkg::apis::dra::v1beta1;
using dra_v1 =
    DraApi<v1::DRAPlugin, v1::NodePrepareResourcesRequest, v1::NodePrepareResourcesResponse,
           v1::NodeUnprepareResourcesRequest, v1::NodeUnprepareResourcesResponse>;
using dra_v1beta1 =
    DraApi<v1beta1::DRAPlugin, v1beta1::NodePrepareResourcesRequest,
           v1beta1::NodePrepareResourcesResponse, v1beta1::NodeUnprepareResourcesRequest,
           v1beta1::NodeUnprepareResourcesResponse>;

}  // namespace

class KubeletPlugin::Registration final : public pluginregistration::Registration::Service {
 public:
  explicit Registration(KubeletPlugin* p) : p_(p) {}
  grpc::Status GetInfo(grpc::ServerContext*, const pluginregistration::InfoRequest*,
                       pluginregistration::PluginInfo* out) override {
    out->set_type("DRAPlugin");
    out->set_name(std::string(p_->state_.driver()));
    out->set_endpoint(p_->endpoint_);
    out->add_supported_versions("v1.DRAPlugin");  // kubelet takes the first it supports
    out->add_supported_versions("v1beta1.DRAPlugin");
    return grpc::Status::OK;
  }
  grpc::Status NotifyRegistrationStatus(grpc::ServerContext*,
                                        const pluginregistration::RegistrationStatus* s,
                                        pluginregistration::RegistrationStatusResponse*) override {
    p_->registered_ = s->plugin_registered();
    if (s->plugin_registered()) {
      NVDRA_INFO("{}: registered with kubelet", p_->state_.driver());
    } else {
      NVDRA_ERROR("{}: kubelet refused the registration: {}", p_->state_.driver(), s->error());
    }
    return grpc::Status::OK;
  }

 private:
  KubeletPlugin* p_;
};

template <class Api>
class KubeletPlugin::Dra final : public Api::DRAPlugin::Service {
 public:
  explicit Dra(DriverState& s) : state_(s) {}

  grpc::Status NodePrepareResources(grpc::ServerContext*,
                                    const typename Api::NodePrepareResourcesRequest* req,
                                    typename Api::NodePrepareResourcesResponse* resp) override {
    std::vector<std::future<PreparedResult>> results;
    for (const auto& c : req->claims()) {
      if (c.uid().empty() || c.name().empty())
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a claim needs a uid and a name");
      results.push_back(std::async(std::launch::async,
                                   [this, ns = c.namespace_(), name = c.name(), uid = c.uid()] {
                                     return state_.prepare(ns, name, uid);
                                   }));
    }
    for (int i = 0; i < req->claims_size(); ++i) {
      PreparedResult r = results[i].get();
      auto& out = (*resp->mutable_claims())[req->claims(i).uid()];
      if (!r.error.empty()) {
        out.set_error(r.error);
        continue;
      }
      for (const auto& d : r.devices) {
        auto* dev = out.add_devices();
        for (const auto& rq : d.requests)
          dev->add_request_names(rq);
        dev->set_pool_name(d.pool);
        dev->set_device_name(d.device);
        for (const auto& id : d.cdi_ids)
          dev->add_cdi_device_ids(id);
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status NodeUnprepareResources(grpc::ServerContext*,
                                      const typename Api::NodeUnprepareResourcesRequest* req,
                                      typename Api::NodeUnprepareResourcesResponse* resp) override {
    std::vector<std::future<std::string>> results;
    for (const auto& c : req->claims()) {
      results.push_back(
          std::async(std::launch::async, [this, uid = c.uid()] { return state_.unprepare(uid); }));
    }
    for (int i = 0; i < req->claims_size(); ++i) {
      auto& out = (*resp->mutable_claims())[req->claims(i).uid()];
      if (std::string err = results[i].get(); !err.empty()) out.set_error(err);
    }
    return grpc::Status::OK;
  }

 private:
  DriverState& state_;
};

KubeletPlugin::KubeletPlugin(DriverState& state, std::string registry_dir, std::string plugin_dir)
    : state_(state),
      endpoint_(plugin_dir + "/dra.sock"),
      reg_socket_(fmt::format("{}/{}-reg.sock", registry_dir, state.driver())),
      registration_(std::make_unique<Registration>(this)),
      v1_(std::make_unique<Dra<dra_v1>>(state)),
      v1beta1_(std::make_unique<Dra<dra_v1beta1>>(state)) {}

KubeletPlugin::~KubeletPlugin() {
  stop();
}

Status KubeletPlugin::start() {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& s : {endpoint_, reg_socket_}) {
    fs::create_directories(fs::path(s).parent_path(), ec);
    fs::remove(s, ec);  // a stale socket from an earlier run
    if (s.size() > 107)
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("socket path {} is longer than a unix socket allows", s));
  }
  grpc::ServerBuilder b;
  b.AddListeningPort("unix://" + endpoint_, grpc::InsecureServerCredentials());
  b.AddListeningPort("unix://" + reg_socket_, grpc::InsecureServerCredentials());
  b.RegisterService(v1_.get());
  b.RegisterService(v1beta1_.get());
  b.RegisterService(registration_.get());
  server_ = b.BuildAndStart();
  if (!server_)
    return unexpected(ErrorCode::kIo,
                      fmt::format("cannot serve gRPC on {} and {}", endpoint_, reg_socket_));
  NVDRA_INFO("{}: serving DRA on {}, registration on {}", state_.driver(), endpoint_, reg_socket_);
  return ok();
}

void KubeletPlugin::stop() {
  if (!server_) return;
  std::error_code ec;
  // Registration first, so kubelet stops sending calls before the DRA socket goes.
  std::filesystem::remove(reg_socket_, ec);
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_.reset();
  std::filesystem::remove(endpoint_, ec);
  registered_ = false;
}

}  // namespace nvdra::agent
