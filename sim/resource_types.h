// The resource types nvdra-sim serves: what discovery lists and what the store validates against.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/json.h"

namespace nvdra::sim {

// A CRD's additionalPrinterColumns entry.
struct PrinterColumn {
  std::string name, type, format, description, json_path;
  int priority = 0;
};

struct ResourceType {
  std::string group;  // "" for the core group
  std::string version;
  std::string resource;  // plural
  std::string kind;
  std::string singular;
  bool namespaced = true;
  bool status_subresource = false;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  // Fields usable in fieldSelector besides metadata.name and metadata.namespace.
  std::vector<std::string> selectable_fields;
  // `kubectl get` columns after Name; empty = Age only (as for a CRD without printer columns).
  std::vector<PrinterColumn> printer_columns;
  // A CRD version's openAPIV3Schema; objects are validated against it (null for built-ins).
  std::shared_ptr<const json::Document> schema;

  std::string group_version() const { return group.empty() ? version : group + "/" + version; }
  // Objects of one group/resource share storage across versions.
  std::string storage_key() const { return group + "/" + resource; }
};

// Built-in types plus those CRDs add. Thread-safe; types are never removed while referenced
// (shared_ptr), so handlers may keep one across a request.
class ResourceRegistry {
 public:
  ResourceRegistry();
  void add(ResourceType t);
  void remove(const std::string& group, const std::string& version, const std::string& resource);
  std::shared_ptr<const ResourceType> find(const std::string& group, const std::string& version,
                                           const std::string& resource) const;
  std::shared_ptr<const ResourceType> find_kind(const std::string& group_version,
                                                const std::string& kind) const;
  std::vector<std::shared_ptr<const ResourceType>> all() const;
  // Group -> versions (preferred first), in registration order of groups.
  std::vector<std::pair<std::string, std::vector<std::string>>> groups() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<const ResourceType>> types_;  // guarded by mu_
};

}  // namespace nvdra::sim
