#include "sim/dra/allocator.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace nvdra::sim::dra {
namespace {

using json::Value;

constexpr int64_t kMaxSearchSteps = 200'000;  // per pod and node; beyond it the node is skipped

Unexpected<Error> invalid(std::string msg) {
  return unexpected(ErrorCode::kInvalidArgument, std::move(msg));
}

// One alternative of a request: `exactly`, or one entry of `firstAvailable`.
struct Alternative {
  std::string result_name;  // "<req>" or "<req>/<sub>"
  const DeviceClass* device_class = nullptr;
  std::vector<std::shared_ptr<const cel::Program>> selectors;
  bool all = false;
  int64_t count = 1;
  bool admin = false;
};

struct Request {
  std::string name;
  std::vector<Alternative> alternatives;
};

struct Constraint {
  std::vector<std::string> requests;  // empty = all
  std::string attribute;              // matchAttribute (fully qualified)
  bool covers(const std::string& result_name) const {
    if (requests.empty()) return true;
    const std::string main = result_name.substr(0, result_name.find('/'));
    return std::any_of(requests.begin(), requests.end(),
                       [&](const std::string& r) { return r == result_name || r == main; });
  }
};

struct Claim {
  const Value* obj = nullptr;
  std::vector<Request> requests;
  std::vector<Constraint> constraints;
};

struct Pick {
  size_t claim;
  const Alternative* alt;
  PoolView* pool;
  const Device* device;
  const NodeAccess* access;  // of the slice (or device) the device was published in
};

Result<Alternative> parse_alternative(const Value& r, std::string result_name,
                                      const AllocationContext& ctx, bool allow_admin) {
  Alternative a;
  a.result_name = std::move(result_name);
  const std::string cls(json::string_or(r, "deviceClassName"));
  a.device_class = ctx.device_class(cls);
  if (!a.device_class)
    return unexpected(
        ErrorCode::kNotFound,
        fmt::format("request {}: device class {} does not exist", a.result_name, cls));
  const std::string mode(json::string_or(r, "allocationMode", "ExactCount"));
  if (mode != "ExactCount" && mode != "All")
    return invalid(fmt::format("request {}: unknown allocationMode {}", a.result_name, mode));
  a.all = mode == "All";
  a.count = json::get_int(r, "count").value_or(1);
  if (!a.all && a.count < 1)
    return invalid(fmt::format("request {}: count must be positive", a.result_name));
  a.admin = allow_admin && json::get_bool(r, "adminAccess").value_or(false);
  if (const Value* sels = json::find(r, "selectors"); sels && sels->IsArray()) {
    for (const auto& s : sels->GetArray()) {
      const Value* cel = json::find(s, "cel");
      auto expr = cel ? json::get_string(*cel, "expression") : std::nullopt;
      if (!expr)
        return invalid(fmt::format("request {}: a selector has no cel.expression", a.result_name));
      auto p = compile_selector(std::string(*expr));
      if (!p) return invalid(fmt::format("request {}: {}", a.result_name, p.error().message));
      a.selectors.push_back(std::move(*p));
    }
  }
  return a;
}

Result<Claim> parse_claim(const Value& obj, const AllocationContext& ctx) {
  Claim c;
  c.obj = &obj;
  const Value* devices = json::find_path(obj, {"spec", "devices"});
  if (!devices) return c;
  if (const Value* reqs = json::find(*devices, "requests"); reqs && reqs->IsArray()) {
    for (const auto& r : reqs->GetArray()) {
      Request req;
      req.name = std::string(json::string_or(r, "name"));
      if (const Value* ex = json::find(r, "exactly")) {
        auto a = parse_alternative(*ex, req.name, ctx, true);
        if (!a) return unexpected(a.error());
        req.alternatives.push_back(std::move(*a));
      } else if (const Value* fa = json::find(r, "firstAvailable"); fa && fa->IsArray()) {
        for (const auto& sub : fa->GetArray()) {
          auto a = parse_alternative(
              sub, req.name + "/" + std::string(json::string_or(sub, "name")), ctx, false);
          if (!a && a.error().code == ErrorCode::kNotFound)
            continue;  // a missing class skips the entry
          if (!a) return unexpected(a.error());
          req.alternatives.push_back(std::move(*a));
        }
      } else if (json::find(r, "deviceClassName")) {  // v1beta1 shape stored unconverted
        auto a = parse_alternative(r, req.name, ctx, true);
        if (!a) return unexpected(a.error());
        req.alternatives.push_back(std::move(*a));
      } else {
        return invalid(fmt::format("request {} has neither exactly nor firstAvailable", req.name));
      }
      if (req.alternatives.empty())
        return unexpected(ErrorCode::kNotFound,
                          fmt::format("request {}: none of its device classes exist", req.name));
      c.requests.push_back(std::move(req));
    }
  }
  if (const Value* cons = json::find(*devices, "constraints"); cons && cons->IsArray()) {
    for (const auto& k : cons->GetArray()) {
      Constraint con;
      if (const Value* rs = json::find(k, "requests"); rs && rs->IsArray()) {
        for (const auto& r : rs->GetArray()) {
          if (r.IsString()) con.requests.emplace_back(r.GetString());
        }
      }
      con.attribute = std::string(json::string_or(k, "matchAttribute"));
      if (con.attribute.empty()) continue;  // distinctAttribute: consumable capacity, gate off
      c.constraints.push_back(std::move(con));
    }
  }
  return c;
}

class Search {
 public:
  Search(const AllocationContext& ctx, std::vector<Claim>& claims, std::vector<PoolView>& pools)
      : ctx_(ctx), claims_(claims), pools_(pools) {
    for (const auto& p : pools_) {
      for (const auto& [set, counters] : p.shared_counters) {
        for (const auto& [name, q] : counters)
          left_[key(p, set, name)] = q;
      }
      // Counters consumed by devices other claims already hold.
      for (const Device* d : p.devices) {
        if (ctx_.allocated.contains(DeviceId{p.driver, p.pool, d->name})) consume(p, *d, true);
      }
    }
  }

  Result<bool> run() {
    auto r = claim_step(0, 0);
    if (!r) return r;
    return *r;
  }

  const std::vector<Pick>& picks() const { return picks_; }
  const std::string& shortfall() const { return shortfall_; }

 private:
  static std::string key(const PoolView& p, std::string_view set, std::string_view counter) {
    return p.driver + "/" + p.pool + "/" + std::string(set) + "/" + std::string(counter);
  }

  // Applies (sign +) or returns (sign -) a device's counter consumption; false when short.
  bool consume(const PoolView& p, const Device& d, bool take) {
    if (take) {
      for (const auto& [set, counters] : d.consumes) {
        for (const auto& [name, q] : counters) {
          auto it = left_.find(key(p, set, name));
          if (it == left_.end() || it->second.compare(q) < 0) return false;
        }
      }
    }
    for (const auto& [set, counters] : d.consumes) {
      for (const auto& [name, q] : counters) {
        auto it = left_.find(key(p, set, name));
        if (it == left_.end()) continue;
        it->second = take ? it->second - q : it->second + q;
      }
    }
    return true;
  }

  Result<bool> matches(const Alternative& a, const Device& d) {
    const cel::Activation vars{{"device", d.cel}};
    auto check = [&](const cel::Program& p) -> Result<bool> {
      auto it = d.cel_cache.find(p.source());
      if (it == d.cel_cache.end())
        it = d.cel_cache.emplace(p.source(), p.evaluate_bool(vars)).first;
      return it->second;
    };
    for (const auto& s : a.device_class->selectors) {
      auto r = check(*s);
      if (!r)
        return invalid(fmt::format("device class {}: {}: {}", a.device_class->name, s->source(),
                                   r.error().message));
      if (!*r) return false;
    }
    for (const auto& s : a.selectors) {
      auto r = check(*s);
      if (!r)
        return invalid(
            fmt::format("request {}: {}: {}", a.result_name, s->source(), r.error().message));
      if (!*r) return false;
    }
    return true;
  }

  bool taken(const PoolView& p, const Device& d) const {
    for (const auto& pick : picks_) {
      if (pick.device == &d) return true;
    }
    return ctx_.allocated.contains(DeviceId{p.driver, p.pool, d.name});
  }

  bool constraints_allow(size_t claim, const Alternative& a, const Device& d) const {
    for (const auto& con : claims_[claim].constraints) {
      if (!con.covers(a.result_name)) continue;
      auto mine = d.attributes.find(con.attribute);
      if (mine == d.attributes.end()) return false;
      for (const auto& pick : picks_) {
        if (pick.claim != claim || !con.covers(pick.alt->result_name)) continue;
        auto theirs = pick.device->attributes.find(con.attribute);
        if (theirs == pick.device->attributes.end() || theirs->second != mine->second) return false;
        break;  // all earlier picks already agree with each other
      }
    }
    return true;
  }

  Result<bool> claim_step(size_t claim, size_t request) {
    if (claim == claims_.size()) return true;
    if (request == claims_[claim].requests.size()) return claim_step(claim + 1, 0);
    const Request& req = claims_[claim].requests[request];
    for (const auto& alt : req.alternatives) {
      auto r =
          alt.all ? pick_all(claim, request, alt) : pick_n(claim, request, alt, alt.count, 0, 0);
      if (!r || *r) return r;
    }
    return false;
  }

  // Picks `left` more devices for an ExactCount alternative, from candidate index `from` on.
  Result<bool> pick_n(size_t claim, size_t request, const Alternative& alt, int64_t left,
                      size_t pool_i, size_t dev_i) {
    if (left == 0) return claim_step(claim, request + 1);
    if (++steps_ > kMaxSearchSteps)
      return invalid("the allocation search gave up after too many steps");
    int64_t found = 0;
    for (size_t p = pool_i; p < pools_.size(); ++p) {
      PoolView& pool = pools_[p];
      if (!pool.valid) continue;
      for (size_t i = p == pool_i ? dev_i : 0; i < pool.devices.size(); ++i) {
        const Device& d = *pool.devices[i];
        if (!alt.admin && taken(pool, d)) continue;
        auto m = matches(alt, d);
        if (!m) return m;
        if (!*m || !constraints_allow(claim, alt, d)) continue;
        ++found;
        if (!alt.admin && !consume(pool, d, true)) continue;
        picks_.push_back(Pick{claim, &alt, &pool, &d, pool.access[i]});
        auto r = pick_n(claim, request, alt, left - 1, p, i + 1);
        if (!r || *r) return r;
        picks_.pop_back();
        if (!alt.admin) consume(pool, d, false);
      }
    }
    if (found < left && shortfall_.empty())
      shortfall_ =
          fmt::format("cannot allocate all claims: request {} needs {} more device(s), {} found",
                      alt.result_name, left, found);
    return false;
  }

  // allocationMode All: every matching device of the node's pools, all of them free.
  Result<bool> pick_all(size_t claim, size_t request, const Alternative& alt) {
    const size_t mark = picks_.size();
    auto undo = [&] {
      while (picks_.size() > mark) {
        const Pick& p = picks_.back();
        if (!p.alt->admin) consume(*p.pool, *p.device, false);
        picks_.pop_back();
      }
    };
    for (auto& pool : pools_) {
      for (size_t i = 0; i < pool.devices.size(); ++i) {
        const Device* d = pool.devices[i];
        auto m = matches(alt, *d);
        if (!m) return m;
        if (!*m) continue;
        if (!pool.complete || !pool.valid) {
          undo();
          shortfall_ = fmt::format("request {}: pool {} is incomplete or invalid", alt.result_name,
                                   pool.pool);
          return false;
        }
        if ((!alt.admin && taken(pool, *d)) || !constraints_allow(claim, alt, *d) ||
            (!alt.admin && !consume(pool, *d, true))) {
          undo();
          shortfall_ =
              fmt::format("request {}: device {} is already in use", alt.result_name, d->name);
          return false;
        }
        picks_.push_back(Pick{claim, &alt, &pool, d, pool.access[i]});
      }
    }
    if (picks_.size() == mark) {
      shortfall_ = fmt::format("request {}: no matching devices", alt.result_name);
      return false;
    }
    auto r = claim_step(claim, request + 1);
    if (!r || *r) return r;
    undo();
    return false;
  }

  const AllocationContext& ctx_;
  std::vector<Claim>& claims_;
  std::vector<PoolView>& pools_;
  std::vector<Pick> picks_;
  std::map<std::string, Quantity> left_;
  int64_t steps_ = 0;
  std::string shortfall_;
};

std::string allocation_json(const Claim& c, size_t index, const std::vector<Pick>& picks,
                            const NodeInfo& node) {
  std::string results, config;
  bool node_local = false;
  const json::Document* selector = nullptr;
  for (const auto& p : picks) {
    if (p.claim != index) continue;
    results +=
        fmt::format("{}{{\"request\":{},\"driver\":{},\"pool\":{},\"device\":{}{}}}",
                    results.empty() ? "" : ",", json::quote(p.alt->result_name),
                    json::quote(p.pool->driver), json::quote(p.pool->pool),
                    json::quote(p.device->name), p.alt->admin ? ",\"adminAccess\":true" : "");
    node_local = node_local || !p.access->node_name.empty();
    if (!selector && p.access->selector) selector = p.access->selector.get();
  }
  // Class configuration first, one entry per class config and request that used the class.
  std::vector<std::string> seen;
  for (const auto& p : picks) {
    if (p.claim != index) continue;
    if (std::find(seen.begin(), seen.end(), p.alt->result_name) != seen.end()) continue;
    seen.push_back(p.alt->result_name);
    for (const auto& opaque : p.alt->device_class->config)
      config += fmt::format("{}{{\"source\":\"FromClass\",\"requests\":[{}],\"opaque\":{}}}",
                            config.empty() ? "" : ",", json::quote(p.alt->result_name), opaque);
  }
  if (const Value* cfg = json::find_path(*c.obj, {"spec", "devices", "config"});
      cfg && cfg->IsArray()) {
    for (const auto& e : cfg->GetArray()) {
      const Value* opaque = json::find(e, "opaque");
      if (!opaque) continue;
      const Value* reqs = json::find(e, "requests");
      config += fmt::format("{}{{\"source\":\"FromClaim\",\"requests\":{},\"opaque\":{}}}",
                            config.empty() ? "" : ",", reqs ? json::write(*reqs) : "[]",
                            json::write(*opaque));
    }
  }
  std::string out = "{\"devices\":{\"results\":[" + results + "]";
  if (!config.empty()) out += ",\"config\":[" + config + "]";
  out += "}";
  // Node-local devices pin the claim to the node; devices published for a node selector carry it;
  // devices usable everywhere leave the claim unpinned.
  if (node_local) {
    out +=
        ",\"nodeSelector\":{\"nodeSelectorTerms\":[{\"matchFields\":[{\"key\":\"metadata.name\","
        "\"operator\":\"In\",\"values\":[" +
        json::quote(node.name) + "]}]}]}";
  } else if (selector) {
    out += ",\"nodeSelector\":" + json::write(*selector);
  }
  return out + "}";
}

}  // namespace

Result<std::vector<ClaimAllocation>> allocate(const AllocationContext& ctx,
                                              const std::vector<const json::Value*>& claim_objs,
                                              const NodeInfo& node) {
  std::vector<Claim> claims;
  for (const Value* obj : claim_objs) {
    auto c = parse_claim(*obj, ctx);
    if (!c) return unexpected(c.error());
    claims.push_back(std::move(*c));
  }
  std::vector<PoolView> pools = ctx.inventory.pools_for(node);
  Search search(ctx, claims, pools);
  auto found = search.run();
  if (!found) return unexpected(found.error());
  if (!*found)
    return unexpected(ErrorCode::kNotFound, search.shortfall().empty()
                                                ? "cannot allocate all claims"
                                                : search.shortfall());
  std::vector<ClaimAllocation> out;
  for (size_t i = 0; i < claims.size(); ++i) {
    ClaimAllocation a;
    a.allocation_json = allocation_json(claims[i], i, search.picks(), node);
    for (const auto& p : search.picks()) {
      if (p.claim == i && !p.alt->admin)
        a.devices.push_back(DeviceId{p.pool->driver, p.pool->pool, p.device->name});
    }
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<DeviceId> allocated_devices(const json::Value& allocation) {
  std::vector<DeviceId> out;
  const Value* results = json::find_path(allocation, {"devices", "results"});
  if (!results || !results->IsArray()) return out;
  for (const auto& r : results->GetArray()) {
    if (json::get_bool(r, "adminAccess").value_or(false)) continue;
    out.push_back(DeviceId{std::string(json::string_or(r, "driver")),
                           std::string(json::string_or(r, "pool")),
                           std::string(json::string_or(r, "device"))});
  }
  return out;
}

}  // namespace nvdra::sim::dra
