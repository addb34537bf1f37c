// CDI (Container Device Interface) claim specs: one transient spec file per claim, named as
// CDI's GenerateTransientSpecName does ("<vendor>-<class>_<claimUID>.json"), written atomically
// into the CDI root, removed on unprepare (k8s-protocol.md §3).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace nvdra::agent {

struct CdiDeviceNode {
  std::string path;       // in the container
  std::string host_path;  // "" = same as path
  std::string type = "c";
  int64_t major = -1, minor = -1;  // -1: let the runtime stat the host path
  std::string permissions = "rw";
  int file_mode = -1;  // the node's mode in the container; -1: the runtime's choice
};

struct CdiMount {
  std::string host_path, container_path;
  std::vector<std::string> options;
};

struct CdiEdits {
  std::vector<std::string> env;
  std::vector<CdiDeviceNode> device_nodes;
  std::vector<CdiMount> mounts;
  bool empty() const { return env.empty() && device_nodes.empty() && mounts.empty(); }
  void append(const CdiEdits& o);
};

struct CdiDevice {
  std::string name;  // "<claimUID>-<deviceName>"
  CdiEdits edits;
};

struct CdiSpec {
  std::string kind;  // "k8s.gpu.nvidia.com/claim"
  std::vector<CdiDevice> devices;
  CdiEdits common;
};

std::string to_json(const CdiSpec& spec);
// "<kind>=<device name>", the ID kubelet passes to the runtime.
std::string cdi_device_id(std::string_view kind, std::string_view device);

class CdiWriter {
 public:
  explicit CdiWriter(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }
  std::string claim_spec_path(std::string_view kind, std::string_view claim_uid) const;
  Status write(const CdiSpec& spec, std::string_view claim_uid) const;
  Status remove(std::string_view kind, std::string_view claim_uid) const;  // absent is fine
  // Claim UIDs that have a spec of `kind` in the root (for the orphan sweep at start).
  std::vector<std::string> claim_uids(std::string_view kind) const;
  // The device names of a claim's spec, without the "<claimUID>-" prefix; empty when unreadable.
  std::vector<std::string> claim_devices(std::string_view kind, std::string_view claim_uid) const;

 private:
  std::string root_;
};

}  // namespace nvdra::agent
