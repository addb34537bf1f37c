#include "sim/cluster/cluster.h"

#include <fmt/format.h>

#include "base/log.h"

namespace nvdra::sim::cluster {
namespace {

const Kind* const kFollowed[] = {&kNamespaces,     &kNodes,      &kPods,          &kClaims,
                                 &kClaimTemplates, &kSlices,     &kDeviceClasses, &kReplicaSets,
                                 &kDeployments,    &kDaemonSets, &kJobs,          &kMpiJobs,
                                 &kLeases};

bool followed(const std::string& storage_key) {
  for (const Kind* k : kFollowed) {
    if (k->storage_key() == storage_key) return true;
  }
  return false;
}

Doc parse(const std::string& text) {
  auto d = std::make_shared<json::Document>();
  d->Parse(text.data(), text.size());
  if (d->HasParseError() || !d->IsObject()) return nullptr;
  return d;
}

}  // namespace

const std::map<std::string, Doc> ObjectCache::kEmpty;

std::string object_key(std::string_view ns, std::string_view name) {
  return ns.empty() ? std::string(name) : std::string(ns) + "/" + std::string(name);
}

std::string_view name_of(const json::Value& obj) {
  const json::Value* m = json::find(obj, "metadata");
  return m ? json::string_or(*m, "name") : std::string_view();
}
std::string_view namespace_of(const json::Value& obj) {
  const json::Value* m = json::find(obj, "metadata");
  return m ? json::string_or(*m, "namespace") : std::string_view();
}
std::string_view uid_of(const json::Value& obj) {
  const json::Value* m = json::find(obj, "metadata");
  return m ? json::string_or(*m, "uid") : std::string_view();
}
bool terminating(const json::Value& obj) {
  return json::find_path(obj, {"metadata", "deletionTimestamp"}) != nullptr;
}

void add_controller_reference(json::Document& obj, const json::Value& owner) {
  auto& a = obj.GetAllocator();
  json::Value ref(rapidjson::kObjectType);
  json::set_string(ref, "apiVersion", json::string_or(owner, "apiVersion"), a);
  json::set_string(ref, "kind", json::string_or(owner, "kind"), a);
  json::set_string(ref, "name", name_of(owner), a);
  json::set_string(ref, "uid", uid_of(owner), a);
  json::set_bool(ref, "controller", true, a);
  json::set_bool(ref, "blockOwnerDeletion", true, a);
  json::ensure_array(json::ensure_object(obj, "metadata", a), "ownerReferences", a)
      .PushBack(ref, a);
}

json::Document object_from_template(const json::Value& tmpl, const std::string& name, bool generate,
                                    const json::Value& owner) {
  json::Document obj;
  obj.SetObject();
  auto& a = obj.GetAllocator();
  json::Value& meta = json::ensure_object(obj, "metadata", a);
  json::set_string(meta, generate ? "generateName" : "name", name, a);
  if (const json::Value* tm = json::find(tmpl, "metadata")) {
    for (const char* f : {"labels", "annotations"}) {
      if (const json::Value* v = json::find(*tm, f))
        meta.AddMember(json::Value(f, a), json::Value(*v, a), a);
    }
  }
  add_controller_reference(obj, owner);
  if (const json::Value* spec = json::find(tmpl, "spec"))
    obj.AddMember("spec", json::Value(*spec, a), a);
  return obj;
}

Doc ObjectCache::get(const Kind& k, const std::string& key) const {
  auto b = objects_.find(k.storage_key());
  if (b == objects_.end()) return nullptr;
  auto it = b->second.find(key);
  return it == b->second.end() ? nullptr : it->second;
}

const std::map<std::string, Doc>& ObjectCache::all(const Kind& k) const {
  auto b = objects_.find(k.storage_key());
  return b == objects_.end() ? kEmpty : b->second;
}

void ObjectCache::put(const std::string& storage_key, const std::string& key, Doc d) {
  objects_[storage_key][key] = std::move(d);
}

void ObjectCache::erase(const std::string& storage_key, const std::string& key) {
  auto b = objects_.find(storage_key);
  if (b != objects_.end()) b->second.erase(key);
}

std::shared_ptr<const ResourceType> ClusterApi::type(const Kind& k) const {
  return registry_.find(k.group, k.version, k.resource);
}

Result<std::string> ClusterApi::create(const Kind& k, const std::string& ns, json::Document obj) {
  auto t = type(k);
  if (!t) return unexpected(ErrorCode::kNotFound, k.storage_key() + " is not served");
  return store_.create(*t, ns, std::move(obj));
}

Result<std::string> ClusterApi::modify(const Kind& k, const std::string& ns,
                                       const std::string& name, bool status,
                                       const Store::Mutator& mutate) {
  auto t = type(k);
  if (!t) return unexpected(ErrorCode::kNotFound, k.storage_key() + " is not served");
  return store_.modify(*t, ns, name, status, false, false, mutate);
}

Result<std::string> ClusterApi::remove(const Kind& k, const std::string& ns,
                                       const std::string& name, const DeleteRequest& req) {
  auto t = type(k);
  if (!t) return unexpected(ErrorCode::kNotFound, k.storage_key() + " is not served");
  return store_.remove(*t, ns, name, req);
}

void ClusterApi::pod_event(const json::Value& pod, const std::string& type,
                           const std::string& reason, const std::string& message,
                           const std::string& component, const std::string& host) {
  static const Kind kEvents{"", "v1", "events"};
  const std::string ts = now();
  auto body = json::parse(fmt::format(
      R"({{"apiVersion":"v1","kind":"Event","metadata":{{"generateName":{}}},"involvedObject":{{"apiVersion":"v1",)"
      R"("kind":"Pod","namespace":{},"name":{},"uid":{}}},"reason":{},"message":{},"type":{},)"
      R"("source":{{"component":{},"host":{}}},"reportingComponent":{},"reportingInstance":{},)"
      R"("firstTimestamp":"{}","lastTimestamp":"{}","count":1}})",
      json::quote(std::string(name_of(pod)) + "."), json::quote(namespace_of(pod)),
      json::quote(name_of(pod)), json::quote(uid_of(pod)), json::quote(reason),
      json::quote(message), json::quote(type), json::quote(component), json::quote(host),
      json::quote(component), json::quote(host.empty() ? component : host), ts, ts));
  if (!body) return;
  auto r = create(kEvents, std::string(namespace_of(pod)), std::move(*body));
  if (!r) NVDRA_V(2, "{}: recording an event: {}", component, r.error().message);
}

void Cluster::resync() {
  rv_ = api_.store().current_rv();
  for (const Kind* k : kFollowed) {
    auto t = api_.type(*k);
    if (!t) continue;
    auto list = api_.store().list(*t, "", ListQuery{});
    if (!list) continue;
    std::map<std::string, Doc> fresh;
    for (const auto& text : list->items) {
      Doc d = parse(text);
      if (!d) continue;
      fresh.emplace(object_key(namespace_of(*d), name_of(*d)), d);
    }
    // Objects that vanished while we were not looking are reported as deleted.
    std::vector<std::string> gone;
    for (const auto& [key, d] : cache_.all(*k)) {
      if (!fresh.contains(key)) gone.push_back(key);
    }
    for (const auto& key : gone) {
      cache_.erase(k->storage_key(), key);
      for (auto& c : controllers_)
        c->observe(k->storage_key(), key, nullptr);
    }
    for (auto& [key, d] : fresh) {
      cache_.put(k->storage_key(), key, d);
      for (auto& c : controllers_)
        c->observe(k->storage_key(), key, d);
    }
  }
}

void Cluster::apply(const StoreEvent& e) {
  rv_ = e.rv;
  if (!followed(e.storage_key)) return;
  const std::string key = object_key(e.ns, e.name);
  Doc d;
  if (e.type == "DELETED") {
    cache_.erase(e.storage_key, key);
  } else {
    d = parse(e.json);
    if (!d) return;
    cache_.put(e.storage_key, key, d);
  }
  for (auto& c : controllers_)
    c->observe(e.storage_key, key, d);
}

void Cluster::step() {
  if (rv_ < 0) resync();
  // Reconciling writes; their events feed the next round, until nothing changes.
  for (int round = 0; round < 100; ++round) {
    auto events = api_.store().events_after(rv_, "", "");
    if (!events) {
      NVDRA_INFO("cluster: event history compacted, relisting");
      resync();
      continue;
    }
    for (const auto& e : *events)
      apply(e);
    const int64_t before = api_.store().current_rv();
    for (auto& c : controllers_)
      c->reconcile(std::chrono::steady_clock::now());
    if (api_.store().current_rv() == before) return;
  }
}

awaitable<void> Cluster::run(Cancellation& cancel, std::chrono::milliseconds tick) {
  while (!cancel.cancelled()) {
    // A controller's bug must not stop the whole simulated cluster without a word.
    try {
      step();
    } catch (const std::exception& e) {
      NVDRA_ERROR("cluster: a controller failed, going on: {}", e.what());
    }
    co_await api_.store().wait_for_change(rv_, tick);
  }
}

}  // namespace nvdra::sim::cluster
