#include "agent/slices/publisher.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "base/json.h"
#include "base/log.h"

namespace nvdra::agent {
namespace {

using json::Value;

const k8s::ResourceRef kSlices{"resource.k8s.io", "v1", "resourceslices"};

struct Existing {
  std::string name, uid, rv;
  int64_t generation = 0, count = 0;
  std::set<std::string> keys;  // device names, or counter-set names for a counters-only slice
  std::string content;         // canonical devices + sharedCounters
  bool matched = false;
};

struct Desired {
  const api::SliceContent* slice;
  std::set<std::string> keys;
  std::string content;
  Existing* match = nullptr;
};

std::string content_of(const Value* devices, const Value* counters) {
  return (devices ? canonical_json(*devices) : "[]") + "|" +
         (counters ? canonical_json(*counters) : "[]");
}

std::set<std::string> names_in(const Value* list) {
  std::set<std::string> out;
  if (!list || !list->IsArray()) return out;
  for (const auto& d : list->GetArray())
    out.emplace(json::string_or(d, "name"));
  return out;
}

}  // namespace

std::string canonical_json(const Value& v) {
  if (v.IsObject()) {
    std::map<std::string_view, const Value*> sorted;
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      const std::string_view k(it->name.GetString(), it->name.GetStringLength());
      if (k != "timeAdded") sorted.emplace(k, &it->value);
    }
    std::string out = "{";
    for (const auto& [k, val] : sorted) {
      if (out.size() > 1) out += ',';
      out += json::quote(k) + ":" + canonical_json(*val);
    }
    return out + "}";
  }
  if (v.IsArray()) {
    std::string out = "[";
    for (const auto& e : v.GetArray()) {
      if (out.size() > 1) out += ',';
      out += canonical_json(e);
    }
    return out + "]";
  }
  return json::write(v);
}

SlicePublisher::SlicePublisher(std::shared_ptr<k8s::RestClient> client, std::string driver,
                               std::string node, std::string node_uid)
    : client_(std::move(client)),
      driver_(std::move(driver)),
      node_(std::move(node)),
      node_uid_(std::move(node_uid)) {
  informer_ = std::make_shared<k8s::Informer>(
      std::make_shared<k8s::RestListerWatcher>(
          client_, kSlices, "", fmt::format("spec.driver={},spec.nodeName={}", driver_, node_)),
      k8s::ReflectorOptions{.name = "resourceslices/" + driver_});
  // A created slice is known once the watch showed it (added, or already deleted again).
  auto seen = [this](const k8s::ObjectPtr& o) {
    {
      std::lock_guard lock(mu_);
      pending_.erase(std::string(o->name()));
    }
    dirty_ = true;
  };
  informer_->add_handlers(
      {seen, [this](const k8s::ObjectPtr&, const k8s::ObjectPtr&) { dirty_ = true; }, seen});
}

void SlicePublisher::set_desired(std::vector<api::SliceContent> slices) {
  std::lock_guard lock(mu_);
  desired_ = std::move(slices);
  dirty_ = true;
}

awaitable<void> SlicePublisher::run(Cancellation* cancel) {
  net::co_spawn(co_await net::this_coro::executor, k8s::run_informer(informer_, cancel),
                net::detached);
  auto last_full = std::chrono::steady_clock::now();
  std::chrono::milliseconds backoff{500};
  while (!cancel->cancelled()) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_full > std::chrono::seconds(60)) {
      dirty_ = true;  // a periodic check, in case a watch event was missed
      last_full = now;
    }
    if (informer_->has_synced() && dirty_.exchange(false)) {
      Status s = co_await sync();
      if (!s) {
        NVDRA_WARN("{}: publishing ResourceSlices failed: {}; retrying in {} ms", driver_,
                   s.error().message, backoff.count());
        dirty_ = true;
        if (!co_await sleep_for(backoff, cancel)) break;
        backoff = std::min(backoff * 2, std::chrono::milliseconds(30'000));
        continue;
      }
      backoff = std::chrono::milliseconds(500);
    }
    if (!co_await sleep_for(std::chrono::milliseconds(100), cancel)) break;
  }
}

awaitable<Status> SlicePublisher::sync() {
  std::vector<api::SliceContent> want;
  {
    std::lock_guard lock(mu_);
    want = desired_;
    if (!pending_.empty()) {
      NVDRA_V(3, "{}: waiting for {} created slice(s) to show in the watch", driver_,
              pending_.size());
      if (std::chrono::steady_clock::now() - pending_since_ < std::chrono::seconds(10)) {
        dirty_ = true;
        co_return ok();
      }
      pending_.clear();
    }
  }
  // Slices this agent created a moment ago may not have reached the informer yet.
  std::vector<Existing> existing;
  for (const auto& obj : informer_->store().list()) {
    auto doc = obj->doc();
    if (!doc) continue;
    const Value* spec = json::find(*doc, "spec");
    const Value* pool = spec ? json::find(*spec, "pool") : nullptr;
    if (!pool || json::string_or(*pool, "name") != node_) continue;
    Existing e;
    e.name = std::string(obj->name());
    e.uid = std::string(obj->uid());
    e.rv = std::string(obj->resource_version());
    e.generation = json::get_int(*pool, "generation").value_or(0);
    e.count = json::get_int(*pool, "resourceSliceCount").value_or(0);
    const Value* devices = json::find(*spec, "devices");
    const Value* counters = json::find(*spec, "sharedCounters");
    e.keys = names_in(devices);
    if (e.keys.empty()) e.keys = names_in(counters);
    e.content =
        content_of(devices && devices->IsArray() && devices->Size() ? devices : nullptr,
                   counters && counters->IsArray() && counters->Size() ? counters : nullptr);
    existing.push_back(std::move(e));
  }
  std::vector<Desired> desired;
  for (const auto& s : want) {
    Desired d{&s};
    d.keys = std::set<std::string>(s.device_names.begin(), s.device_names.end());
    auto devices = json::parse("[" + s.devices + "]");
    auto counters = json::parse("[" + s.shared_counters + "]");
    if (!devices || !counters) co_return unexpected(ErrorCode::kInternal, "bad slice content");
    if (d.keys.empty()) d.keys = names_in(&*counters);
    d.content =
        content_of(devices->Size() ? &*devices : nullptr, counters->Size() ? &*counters : nullptr);
    desired.push_back(std::move(d));
  }
  int64_t max_gen = last_generation_;
  for (const auto& e : existing)
    max_gen = std::max(max_gen, e.generation);
  for (auto& d : desired) {
    for (auto& e : existing) {
      if (!e.matched && e.generation >= max_gen && e.keys == d.keys) {
        e.matched = true;
        d.match = &e;
        break;
      }
    }
  }
  if (desired.size() == 1 && existing.size() == 1 && !desired[0].match &&
      existing[0].generation >= max_gen) {
    existing[0].matched = true;
    desired[0].match = &existing[0];
  }
  // A server may spell what we wrote differently (quantities, defaults): a slice still at the
  // resourceVersion of our last write of the same content is unchanged, or every sync would
  // write again and again.
  auto differs = [&](const Desired& d) {
    if (d.match->count != static_cast<int64_t>(desired.size())) return true;
    if (d.match->content == d.content) return false;
    auto w = written_.find(d.match->name);
    return w == written_.end() || w->second.first != d.match->rv || w->second.second != d.content;
  };
  size_t changed = 0, created = 0, obsolete = 0;
  for (const auto& d : desired) {
    if (!d.match) {
      ++created;
    } else if (differs(d)) {
      ++changed;
    }
  }
  for (const auto& e : existing)
    obsolete += e.matched ? 0 : 1;
  NVDRA_V(3, "{}: sync: {} existing, {} desired", driver_, existing.size(), desired.size());
  if (changed == 0 && created == 0 && obsolete == 0) {
    published_ = desired.size();
    co_return ok();
  }
  const bool bump = created > 0 || obsolete > 0 || changed > 1;
  const int64_t gen = bump ? max_gen + 1 : std::max<int64_t>(max_gen, 1);
  NVDRA_V(2, "{}: syncing ResourceSlices: {} new, {} changed, {} obsolete, generation {}", driver_,
          created, changed, obsolete, gen);
  for (const auto& e : existing) {
    if (e.matched) continue;
    k8s::DeleteOptions del;
    del.precondition_uid = e.uid;
    del.precondition_resource_version = e.rv;  // our view may lag our own last write
    const k8s::ResourceRef ref = kSlices.with_name(e.name);
    auto r = co_await client_->remove(ref, del);
    if (!r && r.error().http_status == 409) {
      dirty_ = true;  // it changed since we looked: sync again from a fresher view
      co_return ok();
    }
    if (!r && r.error().http_status != 404)
      co_return unexpected(r.error().wrap("delete " + e.name));
    written_.erase(e.name);
  }
  const std::string prefix = fmt::format("{}-{}-", node_, driver_);
  for (const auto& d : desired) {
    const bool write = !d.match || bump || differs(d);
    if (!write) continue;
    std::string body = api::resource_slice_json(driver_, node_, d.match ? d.match->name : prefix,
                                                !d.match, gen, desired.size(), *d.slice, node_uid_);
    if (d.match) {
      auto doc = json::parse(body);
      if (!doc) co_return unexpected(doc.error());
      json::set_string(json::ensure_object(*doc, "metadata", doc->GetAllocator()),
                       "resourceVersion", d.match->rv, doc->GetAllocator());
      const k8s::ResourceRef ref = kSlices.with_name(d.match->name);
      std::string updated = json::write(*doc);
      auto r = co_await client_->update(ref, std::move(updated));
      if (!r) co_return unexpected(r.error().wrap("update " + d.match->name));
      written_[d.match->name] = {std::string((*r)->resource_version()), d.content};
    } else {
      auto r = co_await client_->create(kSlices, std::move(body));
      if (!r) co_return unexpected(r.error().wrap("create slice"));
      written_[std::string((*r)->name())] = {std::string((*r)->resource_version()), d.content};
      std::lock_guard lock(mu_);
      // The watch may have shown it already (another thread runs the informer).
      if (!informer_->store().get((*r)->name())) {
        pending_.insert(std::string((*r)->name()));
        pending_since_ = std::chrono::steady_clock::now();
      }
    }
  }
  last_generation_ = gen;
  published_ = desired.size();
  NVDRA_INFO("{}: published {} ResourceSlice(s) for pool {} (generation {})", driver_,
             desired.size(), node_, gen);
  co_return ok();
}

}  // namespace nvdra::agent
