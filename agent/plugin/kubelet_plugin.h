// The kubelet-facing side of one driver: plugin registration (<registry>/<driver>-reg.sock) and
// the DRA node service v1 and v1beta1 (<plugins>/<driver>/dra.sock) over gRPC
// (k8s-protocol.md §2). The claims of one call are prepared concurrently.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "agent/prepare/driver_state.h"

namespace nvdra::agent {

class KubeletPlugin {
 public:
  KubeletPlugin(DriverState& state, std::string registry_dir, std::string plugin_dir);
  ~KubeletPlugin();
  Status start();
  void stop();  // stops serving and removes the sockets (kubelet then deregisters)
  bool registered() const { return registered_.load(); }
  const std::string& endpoint() const { return endpoint_; }
  const std::string& registration_socket() const { return reg_socket_; }

 private:
  class Registration;
  template <class Api>
  class Dra;

  DriverState& state_;
  std::string endpoint_, reg_socket_;
  std::atomic<bool> registered_{false};
  std::unique_ptr<Registration> registration_;
  std::unique_ptr<grpc::Service> v1_, v1beta1_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace nvdra::agent
