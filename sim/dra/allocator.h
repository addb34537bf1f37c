// DRA structured allocation, as kube-scheduler's allocator does it: for one pod's claims on one
// node, an exhaustive depth-first search over claims → requests → devices that takes the first
// solution. It honours DeviceClass and request selectors, `exactly` and `firstAvailable`
// requests, ExactCount/All, matchAttribute constraints, admin access, devices allocated to other
// claims, shared counters of partitionable devices, and complete/valid pools.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "sim/dra/inventory.h"

namespace nvdra::sim::dra {

struct DeviceId {
  std::string driver, pool, device;
  auto operator<=>(const DeviceId&) const = default;
};

struct AllocationContext {
  const Inventory& inventory;
  // DeviceClasses by name (nullptr = the class does not exist).
  std::function<const DeviceClass*(std::string_view)> device_class;
  const std::set<DeviceId>& allocated;  // devices other claims hold (admin access excluded)
};

struct ClaimAllocation {
  std::string allocation_json;  // status.allocation
  std::vector<DeviceId> devices;
};

// Allocates every claim in `claims` (ResourceClaim objects, v1 JSON, not yet allocated) for `node`.
// Errors: kNotFound when the claims do not fit this node (the message says why: which request
// found too few devices); kInvalidArgument for claims that can never be allocated (unknown
// class, bad selector, a CEL runtime error, an unknown allocation mode).
Result<std::vector<ClaimAllocation>> allocate(const AllocationContext& ctx,
                                              const std::vector<const json::Value*>& claims,
                                              const NodeInfo& node);

// The devices an allocation (status.allocation JSON) holds, except admin-access ones.
std::vector<DeviceId> allocated_devices(const json::Value& allocation);

}  // namespace nvdra::sim::dra
