// The kubelet's side of DRA drivers on one simulated node, over the real gRPC protocols: it finds
// registration sockets in the node's plugins_registry folder, registers them (GetInfo within 1 s,
// NotifyRegistrationStatus), and calls NodePrepareResources / NodeUnprepareResources on the
// driver's DRA socket with the newest version both sides speak (v1, else v1beta1).
// Calls block; Kubelets runs them on worker threads.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"

namespace nvdra::sim::cluster {

struct ClaimRef {
  std::string ns, name, uid;
};

struct PreparedDevice {
  std::vector<std::string> request_names;
  std::string pool, device;
  std::vector<std::string> cdi_device_ids;
};

// Per claim UID: the devices, or the driver's error for that claim.
using PrepareResult = std::map<std::string, Result<std::vector<PreparedDevice>>>;
using UnprepareResult = std::map<std::string, Status>;

class DraPlugin;

class DraPluginRegistry {
 public:
  explicit DraPluginRegistry(std::string registry_dir);
  ~DraPluginRegistry();

  // Registers new sockets and forgets removed ones. Thread-safe.
  void scan();
  // The registered plugin of a driver, or nullptr.
  std::shared_ptr<DraPlugin> find(const std::string& driver) const;
  // Drivers that were registered and whose socket went away, with when that happened.
  std::map<std::string, std::chrono::steady_clock::time_point> gone() const;
  void forget_gone(const std::string& driver);

 private:
  std::string dir_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<DraPlugin>> by_socket_;  // registration socket → plugin
  std::map<std::string, std::chrono::steady_clock::time_point> gone_;
};

class DraPlugin {
 public:
  virtual ~DraPlugin() = default;
  virtual const std::string& driver() const = 0;
  virtual const std::string& version() const = 0;  // "v1.DRAPlugin" or "v1beta1.DRAPlugin"
  // A gRPC failure is an error for the whole batch.
  virtual Result<PrepareResult> prepare(const std::vector<ClaimRef>& claims) = 0;
  virtual Result<UnprepareResult> unprepare(const std::vector<ClaimRef>& claims) = 0;
};

}  // namespace nvdra::sim::cluster
