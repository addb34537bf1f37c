// Store: the informer's local copy of a resource, keyed by "namespace/name", with indexers
// (client-go's thread_safe_store + Indexer). Objects are immutable and shared, so readers get
// snapshots without copying JSON. Keys are views into the stored objects themselves, so a cached
// object costs its JSON plus a few dozen bytes. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "k8sclient/object.h"

namespace nvdra::k8s {

// Maps an object to the index values it is filed under (may be none).
using IndexFunc = std::function<std::vector<std::string>(const Object&)>;

inline const char* kNamespaceIndex = "namespace";
std::vector<std::string> namespace_index(const Object& o);

class Store {
 public:
  Store();
  void add_indexer(const std::string& name, IndexFunc f);

  // Inserts or replaces; returns the previous object (null when new).
  ObjectPtr upsert(ObjectPtr obj);
  // Removes by key; returns what was stored (null when absent).
  ObjectPtr remove(std::string_view key);
  // Replaces the whole content. Returns the objects that were dropped.
  std::vector<ObjectPtr> replace(std::vector<ObjectPtr> objects);

  ObjectPtr get(std::string_view key) const;
  std::vector<ObjectPtr> list() const;
  std::vector<std::string> keys() const;
  std::vector<ObjectPtr> by_index(const std::string& index, const std::string& value) const;
  size_t size() const;

 private:
  void index_locked(const ObjectPtr& obj);
  void unindex_locked(const ObjectPtr& obj);

  mutable std::mutex mu_;
  // Keys view the mapped object's own key() (replaced together on update); guarded by mu_.
  std::unordered_map<std::string_view, ObjectPtr> items_;
  std::map<std::string, IndexFunc> indexers_;  // guarded by mu_
  // index name -> value -> keys (views as above); guarded by mu_
  std::map<std::string, std::unordered_map<std::string, std::unordered_set<std::string_view>>>
      indices_;
};

}  // namespace nvdra::k8s
