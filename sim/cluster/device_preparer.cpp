#include "sim/cluster/device_preparer.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/log.h"
#include "sim/cluster/claim_controller.h"

namespace nvdra::sim::cluster {
namespace {

using json::Value;

constexpr auto kScanEvery = std::chrono::milliseconds(500);
constexpr auto kWipeDelay = std::chrono::seconds(30);  // kubelet's defaultWipingDelay

std::chrono::milliseconds backoff(int failures) {
  return std::chrono::milliseconds(std::min<int64_t>(500LL << std::min(failures, 6), 30'000));
}

// Calls NodePrepareResources (or NodeUnprepareResources) on each driver's plugin. Returns the
// (driver, claim uid) pairs that succeeded and a message for each failure.
std::pair<std::vector<std::pair<std::string, std::string>>, std::vector<std::string>> call_drivers(
    DraPluginRegistry& registry, const std::map<std::string, std::vector<ClaimRef>>& by_driver,
    const std::string& node, bool prepare) {
  std::vector<std::pair<std::string, std::string>> done;
  std::vector<std::string> errors;
  for (const auto& [driver, claims] : by_driver) {
    auto plugin = registry.find(driver);
    if (!plugin) {
      errors.push_back(fmt::format("DRA driver {} is not registered on node {}", driver, node));
      continue;
    }
    std::map<std::string, Status> per_claim;
    if (prepare) {
      auto r = plugin->prepare(claims);
      if (!r) {
        errors.push_back(r.error().message);
        continue;
      }
      for (const auto& [uid, devices] : *r)
        per_claim[uid] = devices ? ok() : Status(unexpected(devices.error()));
    } else {
      auto r = plugin->unprepare(claims);
      if (!r) {
        errors.push_back(r.error().message);
        continue;
      }
      per_claim = std::move(*r);
    }
    for (const auto& [uid, st] : per_claim) {
      if (st) {
        done.emplace_back(driver, uid);
      } else {
        errors.push_back(fmt::format("{}: claim {}: {}", driver, uid, st.error().message));
      }
    }
  }
  return {std::move(done), std::move(errors)};
}

}  // namespace

void DevicePreparer::failed(Work& w, const Doc& pod, const std::string& node,
                            const std::string& reason, const std::string& prefix,
                            const std::vector<std::string>& errors) {
  std::string message = prefix;
  for (size_t i = 0; i < errors.size(); ++i)
    message += (i ? "; " : "") + errors[i];
  NVDRA_WARN("kubelet {}: pod {}/{}: {}", node, namespace_of(*pod), name_of(*pod), message);
  c_.api().pod_event(*pod, "Warning", reason, message, "kubelet", node);
  w.next_try = Steady::now() + backoff(w.failures++);
}

DevicePreparer::DevicePreparer(Cluster& c, const std::string& root, const Topology& topology,
                               int workers)
    : c_(c), state_file_(root + "/kubelet-dra-state.json") {
  load_state();
  for (const auto& n : topology.nodes) {
    const std::string dir = root + "/" + n.name + "/var/lib/kubelet";
    std::error_code ec;
    std::filesystem::create_directories(dir + "/plugins", ec);
    registries_[n.name] = std::make_unique<DraPluginRegistry>(dir + "/plugins_registry");
  }
  for (int i = 0; i < workers; ++i) {
    threads_.emplace_back([this] {
      for (;;) {
        std::function<std::function<void()>()> job;
        {
          std::unique_lock lock(mu_);
          cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
          if (stopping_) return;
          job = std::move(jobs_.front());
          jobs_.pop_front();
        }
        auto completion = job();
        std::lock_guard lock(mu_);
        done_.push_back(std::move(completion));
      }
    });
  }
}

DevicePreparer::~DevicePreparer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    t.join();
}

void DevicePreparer::submit(std::function<std::function<void()>()> job) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

std::map<std::string, std::vector<ClaimRef>> DevicePreparer::claims_by_driver(
    const Doc& pod, bool* complete) const {
  std::map<std::string, std::vector<ClaimRef>> out;
  *complete = true;
  for (const auto& key : pod_claim_keys(*pod)) {
    Doc claim = key.starts_with("?") ? nullptr : c_.cache().get(kClaims, key);
    const Value* results =
        claim ? json::find_path(*claim, {"status", "allocation", "devices", "results"}) : nullptr;
    if (!results || !results->IsArray()) {
      *complete = false;  // not allocated (yet, or any more)
      continue;
    }
    std::set<std::string> drivers;
    for (const auto& r : results->GetArray())
      drivers.insert(std::string(json::string_or(r, "driver")));
    for (const auto& d : drivers)
      out[d].push_back(ClaimRef{std::string(namespace_of(*claim)), std::string(name_of(*claim)),
                                std::string(uid_of(*claim))});
  }
  return out;
}

bool DevicePreparer::ready(const std::string& pod_key, const Doc& pod, const std::string& node) {
  bool complete = false;
  auto by_driver = claims_by_driver(pod, &complete);
  if (!complete) return false;
  // Only what is not prepared on this node yet.
  return converge(pod_key, pod, node, std::move(by_driver), true,
                  [&](const std::string& driver, const ClaimRef& c) {
                    return is_prepared(node, c.uid, driver);
                  });
}

bool DevicePreparer::released(const std::string& pod_key, const Doc& pod, const std::string& node) {
  bool complete = false;
  auto by_driver = claims_by_driver(pod, &complete);
  // A claim stays prepared while another pod on this node still uses it.
  std::set<std::string> still_used;
  for (const auto& [key, other] : c_.cache().all(kPods)) {
    if (key == pod_key || terminating(*other) || pod_done(*other)) continue;
    const Value* spec = json::find(*other, "spec");
    if (!spec || json::string_or(*spec, "nodeName") != node) continue;
    for (const auto& ck : pod_claim_keys(*other)) {
      if (Doc c = c_.cache().get(kClaims, ck)) still_used.insert(std::string(uid_of(*c)));
    }
  }
  return converge(pod_key, pod, node, std::move(by_driver), false,
                  [&](const std::string& driver, const ClaimRef& c) {
                    return still_used.contains(c.uid) || !is_prepared(node, c.uid, driver);
                  });
}

bool DevicePreparer::converge(
    const std::string& pod_key, const Doc& pod, const std::string& node,
    std::map<std::string, std::vector<ClaimRef>> by_driver, bool prepare,
    const std::function<bool(const std::string&, const ClaimRef&)>& settled) {
  for (auto it = by_driver.begin(); it != by_driver.end();) {
    std::erase_if(it->second, [&](const ClaimRef& c) { return settled(it->first, c); });
    it = it->second.empty() ? by_driver.erase(it) : std::next(it);
  }
  if (by_driver.empty()) {
    work_.erase(pod_key);
    return true;
  }
  Work& w = work_[pod_key];
  const std::string pod_uid(uid_of(*pod));
  if (w.pod_uid != pod_uid) w = Work{pod_uid};
  if (w.in_flight || Steady::now() < w.next_try) return false;
  w.in_flight = true;
  DraPluginRegistry* registry = registries_.at(node).get();
  submit([this, registry, by_driver, pod_key, pod, node, prepare]() -> std::function<void()> {
    auto [done, errors] = call_drivers(*registry, by_driver, node, prepare);
    return [this, done, errors, pod_key, pod, node, by_driver, prepare] {
      for (const auto& [driver, uid] : done) {
        if (prepare) {
          for (const auto& c : by_driver.at(driver)) {
            if (c.uid != uid) continue;
            Prepared& p = prepared_[node + "/" + uid];
            p.node = node;
            p.claim = c;
            p.drivers.insert(driver);
          }
          continue;
        }
        auto it = prepared_.find(node + "/" + uid);
        if (it == prepared_.end()) continue;
        it->second.drivers.erase(driver);
        if (it->second.drivers.empty()) prepared_.erase(it);
      }
      save_state();
      auto it = work_.find(pod_key);
      if (it == work_.end() || it->second.pod_uid != uid_of(*pod)) return;  // the pod is gone
      Work& w = it->second;
      w.in_flight = false;
      if (errors.empty()) {
        w.failures = 0;
        w.next_try = {};
        return;
      }
      failed(w, pod, node,
             prepare ? "FailedPrepareDynamicResources" : "FailedUnprepareDynamicResources",
             prepare ? "error preparing devices: " : "error unpreparing devices: ", errors);
    };
  });
  return false;
}

// The claims prepared per node survive a restart of the simulator, as kubelet's
// dra_manager_state checkpoint does: without it, claims of pods that end later would never be
// unprepared.
void DevicePreparer::load_state() {
  std::ifstream in(state_file_);
  if (!in) return;
  std::stringstream ss;
  ss << in.rdbuf();
  auto doc = json::parse(ss.str());
  if (!doc || !doc->IsArray()) {
    NVDRA_WARN("kubelet: ignoring unreadable state file {}", state_file_);
    return;
  }
  for (const auto& e : doc->GetArray()) {
    Prepared p;
    p.node = std::string(json::string_or(e, "node"));
    p.claim =
        ClaimRef{std::string(json::string_or(e, "namespace")),
                 std::string(json::string_or(e, "name")), std::string(json::string_or(e, "uid"))};
    if (const Value* ds = json::find(e, "drivers"); ds && ds->IsArray()) {
      for (const auto& d : ds->GetArray()) {
        if (d.IsString()) p.drivers.insert(d.GetString());
      }
    }
    if (!p.node.empty() && !p.claim.uid.empty() && !p.drivers.empty())
      prepared_[p.node + "/" + p.claim.uid] = std::move(p);
  }
}

void DevicePreparer::save_state() {
  std::string out = "[";
  for (const auto& [key, p] : prepared_) {
    std::string drivers;
    for (const auto& d : p.drivers)
      drivers += (drivers.empty() ? "" : ",") + json::quote(d);
    out += fmt::format("{}{{\"node\":{},\"namespace\":{},\"name\":{},\"uid\":{},\"drivers\":[{}]}}",
                       out.size() > 1 ? "," : "", json::quote(p.node), json::quote(p.claim.ns),
                       json::quote(p.claim.name), json::quote(p.claim.uid), drivers);
  }
  out += "]";
  const std::string tmp = state_file_ + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << out;
    if (!f.flush()) {
      NVDRA_WARN("kubelet: cannot write {}", tmp);
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, state_file_, ec);
  if (ec) NVDRA_WARN("kubelet: cannot replace {}: {}", state_file_, ec.message());
}

bool DevicePreparer::is_prepared(const std::string& node, const std::string& uid,
                                 const std::string& driver) {
  auto it = prepared_.find(node + "/" + uid);
  return it != prepared_.end() && it->second.drivers.contains(driver);
}

void DevicePreparer::release_orphans() {
  std::set<std::string> used;  // "node/claim uid" of every pod still on a node
  for (const auto& [key, pod] : c_.cache().all(kPods)) {
    const Value* spec = json::find(*pod, "spec");
    const std::string_view node = spec ? json::string_or(*spec, "nodeName") : "";
    if (node.empty() || pod_done(*pod)) continue;
    for (const auto& ck : pod_claim_keys(*pod)) {
      if (Doc c = c_.cache().get(kClaims, ck))
        used.insert(std::string(node) + "/" + std::string(uid_of(*c)));
    }
  }
  for (const auto& [key, p] : prepared_) {
    if (used.contains(key) || releasing_.contains(key)) continue;
    releasing_.insert(key);
    DraPluginRegistry* registry = registries_.at(p.node).get();
    submit([this, registry, key, p]() -> std::function<void()> {
      std::vector<std::string> done;
      for (const auto& driver : p.drivers) {
        auto plugin = registry->find(driver);
        if (!plugin) continue;
        auto r = plugin->unprepare({p.claim});
        if (r && r->count(p.claim.uid) && (*r)[p.claim.uid]) done.push_back(driver);
      }
      return [this, key, done] {
        releasing_.erase(key);
        auto it = prepared_.find(key);
        if (it == prepared_.end()) return;
        for (const auto& d : done)
          it->second.drivers.erase(d);
        if (it->second.drivers.empty()) prepared_.erase(it);
        save_state();
      };
    });
  }
}

void DevicePreparer::wipe_node_slices(const std::string& node, const std::string& driver) {
  auto t = c_.api().type(kSlices);
  ListQuery q;
  q.field_selector = "spec.nodeName=" + node + (driver.empty() ? "" : ",spec.driver=" + driver);
  auto list = c_.api().store().list(*t, "", q);
  if (!list) return;
  for (const auto& item : list->items) {
    auto d = json::parse(item);
    if (d) (void)c_.api().remove(kSlices, "", std::string(name_of(*d)), DeleteRequest{});
  }
}

std::set<std::string> DevicePreparer::poll(Steady::time_point now) {
  std::vector<std::function<void()>> done;
  {
    std::lock_guard lock(mu_);
    done.swap(done_);
  }
  for (auto& f : done)
    f();
  if (!scanning_ && now >= next_scan_) {
    scanning_ = true;
    std::vector<DraPluginRegistry*> regs;
    for (auto& [node, r] : registries_)
      regs.push_back(r.get());
    submit([this, regs]() -> std::function<void()> {
      for (auto* r : regs)
        r->scan();
      return [this] {
        scanning_ = false;
        next_scan_ = Steady::now() + kScanEvery;
      };
    });
  }
  // Drivers gone for longer than the wiping delay lose their slices.
  for (auto& [node, r] : registries_) {
    for (const auto& [driver, since] : r->gone()) {
      if (now - since < kWipeDelay) continue;
      NVDRA_INFO("kubelet {}: DRA driver {} gone for {} s, deleting its ResourceSlices", node,
                 driver, kWipeDelay.count());
      wipe_node_slices(node, driver);
      r->forget_gone(driver);
    }
  }
  if (now >= next_orphan_sweep_) {
    next_orphan_sweep_ = now + std::chrono::seconds(2);
    release_orphans();
  }
  std::set<std::string> again;
  for (const auto& [key, w] : work_) {
    if (!w.in_flight && now >= w.next_try) again.insert(key);
  }
  return again;
}

}  // namespace nvdra::sim::cluster
