#include "sim/dra/inventory.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <set>

#include "cel/value.h"

namespace nvdra::sim::dra {
namespace {

using json::Value;

Unexpected<Error> bad(std::string msg) {
  return unexpected(ErrorCode::kInvalidArgument, std::move(msg));
}

Result<NodeAccess> parse_access(const Value& v) {
  NodeAccess a;
  a.node_name = std::string(json::string_or(v, "nodeName"));
  a.all_nodes = json::get_bool(v, "allNodes").value_or(false);
  a.per_device = json::get_bool(v, "perDeviceNodeSelection").value_or(false);
  if (const Value* sel = json::find(v, "nodeSelector"); sel && sel->IsObject()) {
    auto d = std::make_shared<json::Document>();
    d->CopyFrom(*sel, d->GetAllocator());
    a.selector = std::move(d);
  }
  return a;
}

Result<Counters> parse_counters(const Value* v, std::string_view where) {
  Counters out;
  if (!v) return out;
  if (!v->IsObject()) return bad(fmt::format("{}: counters must be a map", where));
  for (auto m = v->MemberBegin(); m != v->MemberEnd(); ++m) {
    auto text = json::get_string(m->value, "value");
    auto q = text ? Quantity::parse(*text) : Result<Quantity>(bad("missing value"));
    if (!q)
      return bad(fmt::format("{}: counter {}: {}", where, m->name.GetString(), q.error().message));
    out.emplace(m->name.GetString(), *q);
  }
  return out;
}

// One DeviceAttribute ({"int":0}, {"string":"gpu"}, {"bool":true}, {"version":"1.2.3"}) as CEL sees
// it.
Result<cel::Value> attribute_value(const Value& a, std::string_view name) {
  if (const Value* i = json::find(a, "int"); i && i->IsInt64()) return cel::Value(i->GetInt64());
  if (const Value* b = json::find(a, "bool"); b && b->IsBool()) return cel::Value(b->GetBool());
  if (auto s = json::get_string(a, "string")) return cel::Value(std::string(*s));
  if (auto v = json::get_string(a, "version")) {
    auto sv = cel::Semver::parse(*v);
    if (!sv) return bad(fmt::format("attribute {}: {}", name, sv.error().message));
    return cel::Value(std::move(*sv));
  }
  return bad(fmt::format("attribute {} has no int, bool, string or version value", name));
}

// Splits "domain/name" (or a bare name, filed under the driver's domain).
std::pair<std::string, std::string> qualify(std::string_view key, std::string_view driver) {
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return {std::string(driver), std::string(key)};
  return {std::string(key.substr(0, slash)), std::string(key.substr(slash + 1))};
}

Result<Device> parse_device(const Value& d, std::string_view driver) {
  Device dev;
  dev.name = std::string(json::string_or(d, "name"));
  if (dev.name.empty()) return bad("a device has no name");
  std::map<std::string, cel::Map> attrs, caps;
  if (const Value* a = json::find(d, "attributes"); a && a->IsObject()) {
    for (auto m = a->MemberBegin(); m != a->MemberEnd(); ++m) {
      auto v = attribute_value(m->value, m->name.GetString());
      if (!v) return bad(fmt::format("device {}: {}", dev.name, v.error().message));
      auto [domain, id] = qualify(m->name.GetString(), driver);
      attrs[domain].entries.emplace(id, std::move(*v));
      dev.attributes.emplace(domain + "/" + id, json::write(m->value));
    }
  }
  if (const Value* c = json::find(d, "capacity"); c && c->IsObject()) {
    for (auto m = c->MemberBegin(); m != c->MemberEnd(); ++m) {
      auto text = json::get_string(m->value, "value");
      auto q = text ? Quantity::parse(*text) : Result<Quantity>(bad("missing value"));
      if (!q)
        return bad(fmt::format("device {}: capacity {}: {}", dev.name, m->name.GetString(),
                               q.error().message));
      auto [domain, id] = qualify(m->name.GetString(), driver);
      caps[domain].entries.emplace(id, cel::Value(*q));
    }
  }
  if (const Value* cc = json::find(d, "consumesCounters"); cc && cc->IsArray()) {
    for (const auto& e : cc->GetArray()) {
      auto counters = parse_counters(json::find(e, "counters"), dev.name);
      if (!counters) return unexpected(counters.error());
      dev.consumes.emplace_back(std::string(json::string_or(e, "counterSet")),
                                std::move(*counters));
    }
  }
  auto access = parse_access(d);
  if (!access) return unexpected(access.error());
  dev.access = std::move(*access);

  cel::Map attr_domains, cap_domains;
  attr_domains.missing_key_is_empty_map = cap_domains.missing_key_is_empty_map = true;
  for (auto& [k, v] : attrs)
    attr_domains.entries.emplace(k, cel::Value(std::move(v)));
  for (auto& [k, v] : caps)
    cap_domains.entries.emplace(k, cel::Value(std::move(v)));
  cel::Map device;
  device.entries.emplace("driver", cel::Value(std::string(driver)));
  device.entries.emplace("attributes", cel::Value(std::move(attr_domains)));
  device.entries.emplace("capacity", cel::Value(std::move(cap_domains)));
  dev.cel = cel::Value(std::move(device));
  return dev;
}

}  // namespace

bool NodeAccess::allows(const NodeInfo& node) const {
  if (all_nodes) return true;
  if (!node_name.empty()) return node_name == node.name;
  if (selector) return node_selector_matches(*selector, node);
  return false;
}

Result<Slice> parse_slice(const json::Value& obj) {
  const Value* spec = json::find(obj, "spec");
  if (!spec || !spec->IsObject()) return bad("ResourceSlice has no spec");
  Slice s;
  if (const Value* meta = json::find(obj, "metadata"))
    s.name = std::string(json::string_or(*meta, "name"));
  s.driver = std::string(json::string_or(*spec, "driver"));
  const Value* pool = json::find(*spec, "pool");
  if (!pool) return bad(fmt::format("ResourceSlice {} has no pool", s.name));
  s.pool = std::string(json::string_or(*pool, "name"));
  s.generation = json::get_int(*pool, "generation").value_or(0);
  s.slice_count = json::get_int(*pool, "resourceSliceCount").value_or(1);
  auto access = parse_access(*spec);
  if (!access) return unexpected(access.error());
  s.access = std::move(*access);
  if (const Value* devs = json::find(*spec, "devices"); devs && devs->IsArray()) {
    for (const auto& d : devs->GetArray()) {
      auto dev = parse_device(d, s.driver);
      if (!dev) return bad(fmt::format("ResourceSlice {}: {}", s.name, dev.error().message));
      s.devices.push_back(std::move(*dev));
    }
  }
  if (const Value* sc = json::find(*spec, "sharedCounters"); sc && sc->IsArray()) {
    for (const auto& set : sc->GetArray()) {
      const std::string name(json::string_or(set, "name"));
      auto counters = parse_counters(json::find(set, "counters"), name);
      if (!counters)
        return bad(fmt::format("ResourceSlice {}: {}", s.name, counters.error().message));
      s.shared_counters.emplace(name, std::move(*counters));
    }
  }
  return s;
}

Result<std::shared_ptr<const cel::Program>> compile_selector(const std::string& expression) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<const cel::Program>> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find(expression); it != cache.end()) return it->second;
  auto p = cel::Program::compile(expression, {"device"});
  if (!p) return unexpected(p.error());
  if (cache.size() > 4096) cache.clear();
  auto shared = std::make_shared<const cel::Program>(std::move(*p));
  cache.emplace(expression, shared);
  return shared;
}

Result<DeviceClass> parse_device_class(const json::Value& obj) {
  DeviceClass c;
  if (const Value* meta = json::find(obj, "metadata"))
    c.name = std::string(json::string_or(*meta, "name"));
  const Value* spec = json::find(obj, "spec");
  if (!spec) return c;
  if (const Value* sels = json::find(*spec, "selectors"); sels && sels->IsArray()) {
    for (const auto& sel : sels->GetArray()) {
      const Value* cel = json::find(sel, "cel");
      auto expr = cel ? json::get_string(*cel, "expression") : std::nullopt;
      if (!expr)
        return bad(fmt::format("DeviceClass {}: a selector has no cel.expression", c.name));
      auto p = compile_selector(std::string(*expr));
      if (!p) return bad(fmt::format("DeviceClass {}: {}", c.name, p.error().message));
      c.selectors.push_back(std::move(*p));
    }
  }
  if (const Value* cfg = json::find(*spec, "config"); cfg && cfg->IsArray()) {
    for (const auto& e : cfg->GetArray()) {
      if (const Value* opaque = json::find(e, "opaque")) c.config.push_back(json::write(*opaque));
    }
  }
  return c;
}

void Inventory::unindex(const Slice& s) {
  auto drop = [&](std::vector<std::string>& v) {
    v.erase(std::remove(v.begin(), v.end(), s.name), v.end());
  };
  if (!s.access.node_name.empty()) {
    auto it = node_local_.find(s.access.node_name);
    if (it != node_local_.end()) {
      drop(it->second);
      if (it->second.empty()) node_local_.erase(it);
    }
  } else {
    drop(shared_);
  }
}

void Inventory::upsert(Slice s) {
  remove(s.name);
  if (!s.access.node_name.empty()) {
    node_local_[s.access.node_name].push_back(s.name);
  } else {
    shared_.push_back(s.name);
  }
  std::string name = s.name;
  slices_.emplace(std::move(name), std::move(s));
}

void Inventory::remove(const std::string& slice_name) {
  auto it = slices_.find(slice_name);
  if (it == slices_.end()) return;
  unindex(it->second);
  slices_.erase(it);
}

std::vector<PoolView> Inventory::pools_for(const NodeInfo& node) const {
  // Visible slices, grouped by pool.
  std::map<std::pair<std::string, std::string>, std::vector<const Slice*>> pools;
  auto consider = [&](const std::string& name) {
    auto it = slices_.find(name);
    if (it == slices_.end()) return;
    const Slice& s = it->second;
    if (s.access.per_device || s.access.allows(node) || s.devices.empty())
      pools[{s.driver, s.pool}].push_back(&s);
  };
  if (auto it = node_local_.find(node.name); it != node_local_.end()) {
    for (const auto& n : it->second)
      consider(n);
  }
  for (const auto& n : shared_)
    consider(n);

  std::vector<PoolView> out;
  for (auto& [key, slices] : pools) {
    int64_t gen = 0;
    for (const Slice* s : slices)
      gen = std::max(gen, s->generation);
    PoolView v;
    v.driver = key.first;
    v.pool = key.second;
    int64_t count = 0, want = 0;
    std::set<std::string_view> names;
    bool visible_any = false;
    for (const Slice* s : slices) {
      if (s->generation != gen) continue;
      ++count;
      want = s->slice_count;
      for (const auto& [set, counters] : s->shared_counters)
        v.shared_counters.emplace(set, counters);
      const bool slice_visible = !s->access.per_device && s->access.allows(node);
      for (const auto& d : s->devices) {
        if (!names.insert(d.name).second) v.valid = false;
        if (slice_visible || (s->access.per_device && d.access.allows(node))) {
          v.devices.push_back(&d);
          v.access.push_back(s->access.per_device ? &d.access : &s->access);
          visible_any = true;
        }
      }
    }
    v.complete = count == want;
    if (visible_any || !v.shared_counters.empty()) out.push_back(std::move(v));
  }
  // Node-local pools first: the allocator's first solution then prefers the node's own devices.
  std::stable_sort(out.begin(), out.end(), [&](const PoolView& a, const PoolView& b) {
    return (a.pool == node.name) > (b.pool == node.name);
  });
  return out;
}

}  // namespace nvdra::sim::dra
