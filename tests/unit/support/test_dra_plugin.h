// A small DRA driver for tests: serves plugin registration and the DRA node service (v1 and/or
// v1beta1) over unix sockets with gRPC, exactly as a kubelet plugin does, and records what the
// kubelet asks. Preparing fails for claims listed in `fail_claims` (by name).
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "dra/v1/api.grpc.pb.h"
#include "dra/v1beta1/api.grpc.pb.h"
#include "pluginregistration/v1/api.grpc.pb.h"

namespace nvdra::testing {

class TestDraPlugin {
 public:
  struct Call {
    std::string method;  // "prepare" / "unprepare"
    std::string version;
    std::string ns, name, uid;
  };

  // `kubelet_dir` is the node's kubelet folder (plugins_registry/ and plugins/ below it).
  TestDraPlugin(const std::string& kubelet_dir, std::string driver,
                std::vector<std::string> versions)
      : driver_(std::move(driver)),
        versions_(std::move(versions)),
        registration_(this),
        v1_(this),
        v1beta1_(this) {
    const std::string data = kubelet_dir + "/plugins/" + driver_;
    std::filesystem::create_directories(data);
    std::filesystem::create_directories(kubelet_dir + "/plugins_registry");
    endpoint_ = data + "/dra.sock";
    reg_socket_ = kubelet_dir + "/plugins_registry/" + driver_ + "-reg.sock";
    std::filesystem::remove(endpoint_);
    std::filesystem::remove(reg_socket_);
    grpc::ServerBuilder b;
    b.AddListeningPort("unix://" + endpoint_, grpc::InsecureServerCredentials());
    b.AddListeningPort("unix://" + reg_socket_, grpc::InsecureServerCredentials());
    b.RegisterService(&registration_);
    for (const auto& v : versions_) {
      if (v == "v1.DRAPlugin") b.RegisterService(&v1_);
      if (v == "v1beta1.DRAPlugin") b.RegisterService(&v1beta1_);
    }
    server_ = b.BuildAndStart();
  }
  ~TestDraPlugin() { stop(); }

  // As a plugin does on exit: stop serving and remove its sockets.
  void stop() {
    if (!server_) return;
    server_->Shutdown();
    server_.reset();
    std::filesystem::remove(reg_socket_);
    std::filesystem::remove(endpoint_);
  }

  std::vector<Call> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  std::vector<std::pair<bool, std::string>> registrations() {
    std::lock_guard lock(mu_);
    return registrations_;
  }
  // While held, NodePrepareResources calls wait (each is recorded when it arrives).
  void hold_prepares(bool hold) {
    {
      std::lock_guard lock(mu_);
      hold_ = hold;
    }
    released_.notify_all();
  }
  void fail_claim(const std::string& name, bool fail) {
    std::lock_guard lock(mu_);
    if (fail) {
      fail_claims_.insert(name);
    } else {
      fail_claims_.erase(name);
    }
  }

 private:
  class Registration : public pluginregistration::Registration::Service {
   public:
    explicit Registration(TestDraPlugin* p) : p_(p) {}
    grpc::Status GetInfo(grpc::ServerContext*, const pluginregistration::InfoRequest*,
                         pluginregistration::PluginInfo* out) override {
      out->set_type("DRAPlugin");
      out->set_name(p_->driver_);
      out->set_endpoint(p_->endpoint_);
      for (const auto& v : p_->versions_)
        out->add_supported_versions(v);
      return grpc::Status::OK;
    }
    grpc::Status NotifyRegistrationStatus(
        grpc::ServerContext*, const pluginregistration::RegistrationStatus* s,
        pluginregistration::RegistrationStatusResponse*) override {
      std::lock_guard lock(p_->mu_);
      p_->registrations_.emplace_back(s->plugin_registered(), s->error());
      return grpc::Status::OK;
    }

   private:
    TestDraPlugin* p_;
  };

  template <class Api>
  class Dra : public Api::DRAPlugin::Service {
   public:
    explicit Dra(TestDraPlugin* p) : p_(p) {}
    grpc::Status NodePrepareResources(grpc::ServerContext*,
                                      const typename Api::NodePrepareResourcesRequest* req,
                                      typename Api::NodePrepareResourcesResponse* resp) override {
      std::unique_lock lock(p_->mu_);
      for (const auto& c : req->claims())
        p_->calls_.push_back(Call{"prepare", Api::kVersion, c.namespace_(), c.name(), c.uid()});
      p_->released_.wait(lock, [this] { return !p_->hold_; });
      for (const auto& c : req->claims()) {
        auto& r = (*resp->mutable_claims())[c.uid()];
        if (p_->fail_claims_.contains(c.name())) {
          r.set_error("injected failure for " + c.name());
          continue;
        }
        auto* d = r.add_devices();
        d->set_pool_name("pool");
        d->set_device_name("dev");
        d->add_cdi_device_ids("k8s.test/claim=" + c.uid());
      }
      return grpc::Status::OK;
    }
    grpc::Status NodeUnprepareResources(
        grpc::ServerContext*, const typename Api::NodeUnprepareResourcesRequest* req,
        typename Api::NodeUnprepareResourcesResponse* resp) override {
      std::lock_guard lock(p_->mu_);
      for (const auto& c : req->claims()) {
        p_->calls_.push_back(Call{"unprepare", Api::kVersion, c.namespace_(), c.name(), c.uid()});
        (*resp->mutable_claims())[c.uid()];
      }
      return grpc::Status::OK;
    }

   private:
    TestDraPlugin* p_;
  };

  struct V1 {
    using DRAPlugin = ::k8s::io::kubelet::pkg::apis::dra::v1::DRAPlugin;
    using NodePrepareResourcesRequest =
        ::k8s::io::kubelet::pkg::apis::dra::v1::NodePrepareResourcesRequest;
    using NodePrepareResourcesResponse =
        ::k8s::io::kubelet::pkg::apis::dra::v1::NodePrepareResourcesResponse;
    using NodeUnprepareResourcesRequest =
        ::k8s::io::kubelet::pkg::apis::dra::v1::NodeUnprepareResourcesRequest;
    using NodeUnprepareResourcesResponse =
        ::k8s::io::kubelet::pkg::apis::dra::v1::NodeUnprepareResourcesResponse;
    static constexpr const char* kVersion = "v1";
  };
  struct V1beta1 {
    using DRAPlugin = ::k8s::io::kubelet::pkg::apis::dra::v1beta1::DRAPlugin;
    using NodePrepareResourcesRequest =
        ::k8s::io::kubelet::pkg::apis::dra::v1beta1::NodePrepareResourcesRequest;
    using NodePrepareResourcesResponse =
        ::k8s::io::kubelet::pkg::apis::dra::v1beta1::NodePrepareResourcesResponse;
    using NodeUnprepareResourcesRequest =
        ::k8s::io::kubelet::pkg::apis::dra::v1beta1::NodeUnprepareResourcesRequest;
    using NodeUnprepareResourcesResponse =
        ::k8s::io::kubelet::pkg::apis::dra::v1beta1::NodeUnprepareResourcesResponse;
    static constexpr const char* kVersion = "v1beta1";
  };

  std::string driver_;
  std::vector<std::string> versions_;
  std::string endpoint_, reg_socket_;
  Registration registration_;
  Dra<V1> v1_;
  Dra<V1beta1> v1beta1_;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mu_;
  std::vector<Call> calls_;
  std::vector<std::pair<bool, std::string>> registrations_;
  std::set<std::string> fail_claims_;
  bool hold_ = false;
  std::condition_variable released_;
};

}  // namespace nvdra::testing
