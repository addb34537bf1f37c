// What the scheduler knows about devices: ResourceSlices parsed once into Devices (with their CEL
// view), grouped into pools, and DeviceClasses with compiled selectors.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/json.h"
#include "base/quantity.h"
#include "cel/cel.h"
#include "sim/dra/node_selector.h"

namespace nvdra::sim::dra {

using Counters = std::map<std::string, Quantity, std::less<>>;

// Which nodes can use a slice (or, with perDeviceNodeSelection, a device).
struct NodeAccess {
  std::string node_name;                           // nodeName
  bool all_nodes = false;                          // allNodes
  std::shared_ptr<const json::Document> selector;  // nodeSelector
  bool per_device = false;                         // perDeviceNodeSelection (slice level only)
  bool allows(const NodeInfo& node) const;
};

struct Device {
  std::string name;
  cel::Value cel;  // the `device` variable of selectors
  // Fully qualified attribute name ("gpu.nvidia.com/index") → canonical JSON of the attribute
  // ({"int":0}), for matchAttribute.
  std::map<std::string, std::string, std::less<>> attributes;
  std::vector<std::pair<std::string, Counters>> consumes;  // counter set → amounts
  NodeAccess access;                                       // only with perDeviceNodeSelection
  // Selector outcomes by expression text: devices are immutable once parsed.
  mutable std::unordered_map<std::string, Result<bool>> cel_cache;
};

struct Slice {
  std::string name;  // metadata.name
  std::string driver, pool;
  int64_t generation = 0, slice_count = 1;
  NodeAccess access;
  std::vector<Device> devices;
  std::map<std::string, Counters, std::less<>> shared_counters;
};

// A ResourceSlice (resource.k8s.io/v1 JSON) → Slice. Malformed attributes are an error naming them.
Result<Slice> parse_slice(const json::Value& obj);

struct DeviceClass {
  std::string name;
  std::vector<std::shared_ptr<const cel::Program>> selectors;
  std::vector<std::string> config;  // each entry's `opaque` as JSON
};
Result<DeviceClass> parse_device_class(const json::Value& obj);

// Compiles a selector expression for the `device` variable, once per distinct text.
Result<std::shared_ptr<const cel::Program>> compile_selector(const std::string& expression);

// A pool as seen from one node: the slices of its highest generation.
struct PoolView {
  std::string driver, pool;
  bool complete = true;                   // all resourceSliceCount slices are present
  bool valid = true;                      // no device name twice
  std::vector<const Device*> devices;     // visible from the node
  std::vector<const NodeAccess*> access;  // for each device: the node access it was published with
  std::map<std::string, Counters, std::less<>> shared_counters;
};

class Inventory {
 public:
  void upsert(Slice s);
  void remove(const std::string& slice_name);

  // The pools a node can use. Node-local pools come first, by driver and pool name.
  std::vector<PoolView> pools_for(const NodeInfo& node) const;

 private:
  std::map<std::string, Slice, std::less<>> slices_;  // by slice name
  // Indexes, so that a node's pools are found without scanning every slice.
  std::map<std::string, std::vector<std::string>, std::less<>> node_local_;  // node → slices
  std::vector<std::string> shared_;  // slices with allNodes, a selector or per-device access
  void unindex(const Slice& s);
};

}  // namespace nvdra::sim::dra
