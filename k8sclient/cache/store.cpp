#include "k8sclient/cache/store.h"

namespace nvdra::k8s {

std::vector<std::string> namespace_index(const Object& o) {
  return {std::string(o.namespace_())};
}

Store::Store() {
  indexers_[kNamespaceIndex] = namespace_index;
}

void Store::add_indexer(const std::string& name, IndexFunc f) {
  std::lock_guard lock(mu_);
  indexers_[name] = std::move(f);
  for (const auto& [key, obj] : items_) {
    for (auto& v : indexers_[name](*obj))
      indices_[name][v].insert(obj->key());
  }
}

void Store::index_locked(const ObjectPtr& obj) {
  for (const auto& [name, f] : indexers_) {
    for (auto& v : f(*obj))
      indices_[name][v].insert(obj->key());
  }
}

void Store::unindex_locked(const ObjectPtr& obj) {
  for (const auto& [name, f] : indexers_) {
    auto& idx = indices_[name];
    for (auto& v : f(*obj)) {
      auto it = idx.find(v);
      if (it == idx.end()) continue;
      it->second.erase(obj->key());
      if (it->second.empty()) idx.erase(it);
    }
  }
}

ObjectPtr Store::upsert(ObjectPtr obj) {
  std::lock_guard lock(mu_);
  ObjectPtr old;
  if (auto it = items_.find(obj->key()); it != items_.end()) {
    old = std::move(it->second);
    unindex_locked(old);
    items_.erase(it);  // the key views the old object: re-insert with the new one's
  }
  index_locked(obj);
  std::string_view key = obj->key();
  items_.emplace(key, std::move(obj));
  return old;
}

ObjectPtr Store::remove(std::string_view key) {
  std::lock_guard lock(mu_);
  auto it = items_.find(key);
  if (it == items_.end()) return nullptr;
  ObjectPtr old = std::move(it->second);
  unindex_locked(old);
  items_.erase(it);
  return old;
}

std::vector<ObjectPtr> Store::replace(std::vector<ObjectPtr> objects) {
  std::lock_guard lock(mu_);
  std::unordered_map<std::string_view, ObjectPtr> next;
  next.reserve(objects.size());
  for (auto& o : objects) {
    std::string_view key = o->key();
    next[key] = std::move(o);
  }
  std::vector<ObjectPtr> dropped;
  for (auto& [key, obj] : items_) {
    if (!next.count(key)) dropped.push_back(obj);
  }
  items_ = std::move(next);
  indices_.clear();
  for (const auto& [key, obj] : items_)
    index_locked(obj);
  return dropped;
}

ObjectPtr Store::get(std::string_view key) const {
  std::lock_guard lock(mu_);
  auto it = items_.find(key);
  return it == items_.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Store::list() const {
  std::lock_guard lock(mu_);
  std::vector<ObjectPtr> out;
  out.reserve(items_.size());
  for (const auto& [k, o] : items_)
    out.push_back(o);
  return out;
}

std::vector<std::string> Store::keys() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const auto& [k, o] : items_)
    out.emplace_back(k);
  return out;
}

std::vector<ObjectPtr> Store::by_index(const std::string& index, const std::string& value) const {
  std::lock_guard lock(mu_);
  std::vector<ObjectPtr> out;
  auto idx = indices_.find(index);
  if (idx == indices_.end()) return out;
  auto it = idx->second.find(value);
  if (it == idx->second.end()) return out;
  for (const auto& key : it->second) {
    auto obj = items_.find(key);
    if (obj != items_.end()) out.push_back(obj->second);
  }
  return out;
}

size_t Store::size() const {
  std::lock_guard lock(mu_);
  return items_.size();
}

}  // namespace nvdra::k8s
