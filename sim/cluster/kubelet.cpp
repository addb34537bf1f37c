#include "sim/cluster/kubelet.h"

#include <fmt/format.h>

#include "base/log.h"
#include "sim/cluster/claim_controller.h"
#include "sim/cluster/node_slices.h"

namespace nvdra::sim::cluster {
namespace {

using json::Value;

std::string node_ip(const NodeSpec& n) {
  return fmt::format("10.0.{}.{}", n.ordinal / 250, n.ordinal % 250 + 2);
}

std::string pod_ip(const NodeSpec& n, std::string_view uid) {
  return fmt::format("10.{}.{}.{}", 64 + n.ordinal / 250, n.ordinal % 250,
                     std::hash<std::string_view>{}(uid) % 250 + 2);
}

// Writes what the kubelet owns of an object, creating it when missing. An existing Node keeps
// its spec (cordons, taints added later) and the labels others set; the kubelet's labels are set.
Result<std::string> create_or_replace(Cluster& c, const Kind& k, const std::string& ns,
                                      const std::string& name, const std::string& body,
                                      bool status) {
  auto doc = json::parse(body);
  if (!doc) return unexpected(doc.error());
  const bool node = &k == &kNodes;
  auto r = c.api().modify(k, ns, name, status, [&](json::Document& obj, bool) -> Status {
    auto& a = obj.GetAllocator();
    for (auto m = doc->MemberBegin(); m != doc->MemberEnd(); ++m) {
      const std::string_view member(m->name.GetString(), m->name.GetStringLength());
      if (member == "metadata" || (node && member == "spec")) continue;
      obj.RemoveMember(m->name);
      obj.AddMember(Value(m->name, a), Value(m->value, a), a);
    }
    if (const Value* labels = json::find_path(*doc, {"metadata", "labels"});
        labels && labels->IsObject()) {
      Value& mine = json::ensure_object(obj["metadata"], "labels", a);
      for (auto l = labels->MemberBegin(); l != labels->MemberEnd(); ++l)
        json::set_string(mine, l->name.GetString(), json::string_or(*labels, l->name.GetString()),
                         a);
    }
    return ok();
  });
  if (r || r.error().http_status != 404) return r;
  return c.api().create(k, ns, std::move(*doc));
}

}  // namespace

Kubelets::Kubelets(Cluster& c, Topology topology, KubeletOptions options)
    : c_(c), topology_(std::move(topology)), options_(options) {
  for (const auto& n : topology_.nodes)
    by_name_[n.name] = &n;
  if (!options_.root.empty())
    devices_ = std::make_unique<DevicePreparer>(c_, options_.root, topology_);
  if (!options_.root.empty() && !options_.bin_dir.empty())
    containers_ = std::make_unique<ContainerRunner>(
        ContainerOptions{options_.bin_dir, options_.kubeconfig_for, options_.root});
}

void Kubelets::observe(const std::string& storage_key, const std::string& key, const Doc& obj) {
  if (storage_key == kPods.storage_key()) {
    if (!obj) {
      finish_at_.erase(key);
      if (devices_) devices_->forget(key);
      if (containers_) containers_->kill(key);
      return;
    }
    const Value* spec = json::find(*obj, "spec");
    if (spec && by_name_.contains(json::string_or(*spec, "nodeName"))) dirty_pods_.insert(key);
  } else if (storage_key == kNodes.storage_key() && !obj && by_name_.contains(key)) {
    registered_ = false;  // someone deleted our Node: register it again, as kubelet does
  }
}

void Kubelets::register_node(const NodeSpec& n) {
  std::string labels, taints;
  for (const auto& [k, v] : n.labels)
    labels += fmt::format("{}{}:{}", labels.empty() ? "" : ",", json::quote(k), json::quote(v));
  for (const auto& t : n.taints)
    taints += fmt::format(R"({}{{"key":{},"value":{},"effect":{}}})", taints.empty() ? "" : ",",
                          json::quote(t.key), json::quote(t.value), json::quote(t.effect));
  const std::string now = c_.api().now();
  const std::string capacity =
      R"({"cpu":"128","memory":"2Ti","pods":"110","ephemeral-storage":"8Ti"})";
  const std::string body = fmt::format(
      R"({{"apiVersion":"v1","kind":"Node","metadata":{{"name":{},"labels":{{{}}}}},"spec":{{"taints":[{}]}},)"
      R"("status":{{"capacity":{},"allocatable":{},"addresses":[{{"type":"InternalIP","address":"{}"}},)"
      R"({{"type":"Hostname","address":{}}}],"conditions":[{{"type":"Ready","status":"True","reason":"KubeletReady",)"
      R"("message":"kubelet is posting ready status","lastHeartbeatTime":"{}","lastTransitionTime":"{}"}}],)"
      R"("nodeInfo":{{"kubeletVersion":"v1.34.0","containerRuntimeVersion":"nvdra-sim://1","architecture":{},)"
      R"("operatingSystem":"linux","osImage":"nvdra-sim"}}}}}})",
      json::quote(n.name), labels, taints, capacity, capacity, node_ip(n), json::quote(n.name), now,
      now, json::quote(n.labels.at("kubernetes.io/arch")));
  auto main = create_or_replace(c_, kNodes, "", n.name, body, false);
  if (!main) {
    NVDRA_WARN("kubelet {}: registering the node: {}", n.name, main.error().message);
    return;
  }
  auto status = create_or_replace(c_, kNodes, "", n.name, body, true);
  if (!status) NVDRA_WARN("kubelet {}: node status: {}", n.name, status.error().message);
  if (options_.publish_slices) {
    for (const auto& s : node_slices(n)) {
      auto doc = json::parse(s);
      const std::string name(name_of(*doc));
      auto r = create_or_replace(c_, kSlices, "", name, s, false);
      if (!r)
        NVDRA_WARN("kubelet {}: publishing ResourceSlice {}: {}", n.name, name, r.error().message);
    }
  }
}

void Kubelets::renew_lease(const NodeSpec& n) {
  const std::string now = c_.api().now();
  const std::string body = fmt::format(
      R"({{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{{"name":{},"namespace":"kube-node-lease"}},)"
      R"("spec":{{"holderIdentity":{},"leaseDurationSeconds":40,"renewTime":"{}"}}}})",
      json::quote(n.name), json::quote(n.name), now);
  auto r = create_or_replace(c_, kLeases, "kube-node-lease", n.name, body, false);
  if (!r) NVDRA_V(2, "kubelet {}: renewing its lease: {}", n.name, r.error().message);
}

bool Kubelets::start_containers(const Doc& pod, const NodeSpec& node,
                                std::chrono::steady_clock::time_point now, bool* ready) {
  *ready = true;
  if (!containers_ || !containers_->runs(*pod)) return true;
  // The pod's claims by UID: their CDI specs carry the container edits.
  std::vector<std::string> claims;
  for (const auto& claim_key : pod_claim_keys(*pod)) {
    Doc claim = claim_key.starts_with("?") ? nullptr : c_.cache().get(kClaims, claim_key);
    if (claim) claims.emplace_back(uid_of(*claim));
  }
  const std::string key = object_key(namespace_of(*pod), name_of(*pod));
  auto s = containers_->start(key, *pod, node.name, pod_ip(node, uid_of(*pod)), claims, now);
  if (!s) {
    c_.api().pod_event(*pod, "Warning", "Failed", "Error: " + s.error().message, "kubelet",
                       node.name);
    return false;
  }
  *ready = false;  // until its readiness probe passes
  return true;
}

void Kubelets::set_ready(const std::string& key, bool ready) {
  Doc pod = c_.cache().get(kPods, key);
  if (!pod || terminating(*pod)) return;
  const std::string ts = c_.api().now();
  auto r = c_.api().modify(kPods, std::string(namespace_of(*pod)), std::string(name_of(*pod)), true,
                           [&](json::Document& p, bool) -> Status {
                             auto& a = p.GetAllocator();
                             Value* cs = json::find_path(p, {"status", "containerStatuses"})
                                             ? &p["status"]["containerStatuses"]
                                             : nullptr;
                             if (cs && cs->IsArray())
                               for (auto& c : cs->GetArray())
                                 json::set_bool(c, "ready", ready, a);
                             for (const char* c : {"ContainersReady", "Ready"})
                               json::set_condition(p, c, ready ? "True" : "False",
                                                   ready ? "" : "ContainersNotReady", "", ts);
                             return ok();
                           });
  if (!r && r.error().http_status != 404)
    NVDRA_WARN("kubelet: pod {} readiness: {}", key, r.error().message);
}

void Kubelets::start_pod(const Doc& pod, const NodeSpec& node,
                         std::chrono::steady_clock::time_point now) {
  const std::string ns(namespace_of(*pod)), name(name_of(*pod));
  bool ready = true;
  if (!start_containers(pod, node, now, &ready)) return;
  const std::string ts = c_.api().now();
  std::string containers;
  if (const Value* cs = json::find_path(*pod, {"spec", "containers"}); cs && cs->IsArray()) {
    for (const auto& ctr : cs->GetArray()) {
      containers += fmt::format(
          R"({}{{"name":{},"image":{},"imageID":"","containerID":"sim://{}-{}","ready":{},"started":true,)"
          R"("restartCount":0,"state":{{"running":{{"startedAt":"{}"}}}}}})",
          containers.empty() ? "" : ",", json::quote(json::string_or(ctr, "name")),
          json::quote(json::string_or(ctr, "image")), uid_of(*pod).substr(0, 8),
          json::string_or(ctr, "name"), ready, ts);
    }
  }
  auto statuses = json::parse("[" + containers + "]");
  auto r = c_.api().modify(kPods, ns, name, true, [&](json::Document& p, bool) -> Status {
    auto& a = p.GetAllocator();
    Value& st = json::ensure_object(p, "status", a);
    json::set_string(st, "phase", "Running", a);
    json::set_string(st, "hostIP", node_ip(node), a);
    json::set_string(st, "podIP", pod_ip(node, uid_of(p)), a);
    json::set_string(st, "startTime", ts, a);
    st.RemoveMember("containerStatuses");
    st.AddMember("containerStatuses", Value(*statuses, a), a);
    for (const char* c : {"PodReadyToStartContainers", "Initialized"})
      json::set_condition(p, c, "True", "", "", ts);
    for (const char* c : {"ContainersReady", "Ready"})
      json::set_condition(p, c, ready ? "True" : "False", ready ? "" : "ContainersNotReady", "",
                          ts);
    return ok();
  });
  if (!r) {
    NVDRA_WARN("kubelet {}: starting pod {}/{}: {}", node.name, ns, name, r.error().message);
    return;
  }
  c_.api().pod_event(*pod, "Normal", "Started", "Started the pod's containers (simulated)",
                     "kubelet", node.name);
  const std::string_view restart =
      json::string_or(*json::find(*pod, "spec"), "restartPolicy", "Always");
  if (restart != "Always") {
    auto run = options_.default_run_time;
    if (const Value* ann = json::find_path(*pod, {"metadata", "annotations"})) {
      if (auto s = json::get_string(*ann, kRunSecondsAnnotation))
        run = std::chrono::milliseconds(
            static_cast<int64_t>(std::atof(std::string(*s).c_str()) * 1000));
    }
    if (run.count() >= 0) finish_at_[object_key(ns, name)] = now + run;  // negative: until deleted
  }
}

void Kubelets::finish_pod(const Doc& pod) {
  const std::string ns(namespace_of(*pod)), name(name_of(*pod));
  const std::string ts = c_.api().now();
  auto r = c_.api().modify(kPods, ns, name, true, [&](json::Document& p, bool) -> Status {
    auto& a = p.GetAllocator();
    Value& st = json::ensure_object(p, "status", a);
    json::set_string(st, "phase", "Succeeded", a);
    if (st.HasMember("containerStatuses") && st["containerStatuses"].IsArray()) {
      for (auto& cs : st["containerStatuses"].GetArray()) {
        json::set_bool(cs, "ready", false, a);
        json::set_bool(cs, "started", false, a);
        Value term(rapidjson::kObjectType);
        json::set_int(term, "exitCode", 0, a);
        json::set_string(term, "reason", "Completed", a);
        json::set_string(term, "finishedAt", ts, a);
        Value state(rapidjson::kObjectType);
        state.AddMember("terminated", term, a);
        cs.RemoveMember("state");
        cs.AddMember("state", state, a);
      }
    }
    for (const char* c : {"ContainersReady", "Ready"})
      json::set_condition(p, c, "False", "PodCompleted", "", ts);
    return ok();
  });
  if (!r && r.error().http_status != 404)
    NVDRA_WARN("kubelet: completing pod {}/{}: {}", ns, name, r.error().message);
}

void Kubelets::sync_pod(const std::string& key, std::chrono::steady_clock::time_point now) {
  Doc pod = c_.cache().get(kPods, key);
  if (!pod) return;
  // The key may now name another pod (deleted and created again), not bound or not bound here.
  const Value* spec = json::find(*pod, "spec");
  auto it = by_name_.find(std::string(spec ? json::string_or(*spec, "nodeName") : ""));
  if (it == by_name_.end()) return;
  const NodeSpec* node = it->second;
  if (terminating(*pod)) {
    // Real containers get SIGTERM and their grace period; the others stop at once. Then the
    // devices are released and the deletion confirmed.
    if (containers_ && !containers_->stopped(key, now)) {
      dirty_pods_.insert(key);
      return;
    }
    if (devices_ && !devices_->released(key, pod, node->name)) return;
    DeleteRequest now_req;
    now_req.grace_period_seconds = 0;
    auto r = c_.api().remove(kPods, std::string(namespace_of(*pod)), std::string(name_of(*pod)),
                             now_req);
    if (!r && r.error().http_status != 404)
      NVDRA_WARN("kubelet {}: removing pod {}: {}", node->name, key, r.error().message);
    finish_at_.erase(key);
    return;
  }
  const Value* st = json::find(*pod, "status");
  const std::string_view phase = st ? json::string_or(*st, "phase", "Pending") : "Pending";
  if (phase == "Running" && containers_ && containers_->runs(*pod) && !containers_->started(key)) {
    // A pod that ran before the simulator restarted: as kubelet after a reboot, prepare its
    // claims again (drivers treat that as a no-op) and restart its containers.
    if (devices_ && !devices_->ready(key, pod, node->name)) return;
    bool ready = false;
    if (start_containers(pod, *node, now, &ready)) set_ready(key, ready);
    return;
  }
  if (phase != "Pending") return;
  if (devices_ && !devices_->ready(key, pod, node->name)) return;
  start_pod(pod, *node, now);
}

bool Kubelets::remove_machine(const std::string& node) {
  if (!by_name_.contains(node)) return false;
  by_name_.erase(node);
  removed_.insert(node);
  lease_due_.erase(node);
  for (const auto& [key, pod] : c_.cache().all(kPods)) {
    const Value* spec = json::find(*pod, "spec");
    if (!spec || json::string_or(*spec, "nodeName") != node) continue;
    if (containers_) containers_->kill(key);
    finish_at_.erase(key);
    dirty_pods_.erase(key);
  }
  for (const auto& [kind, ns] : {std::pair{&kNodes, ""}, std::pair{&kLeases, "kube-node-lease"}}) {
    auto r = c_.api().remove(*kind, ns, node, DeleteRequest{});
    if (!r && r.error().http_status != 404)
      NVDRA_WARN("removing machine {}: deleting its {}: {}", node, kind->resource,
                 r.error().message);
  }
  NVDRA_INFO("machine {} removed: its kubelet stopped, its Node deleted", node);
  return true;
}

void Kubelets::reconcile(std::chrono::steady_clock::time_point now) {
  if (!registered_) {
    registered_ = true;
    const bool starting = lease_due_.empty();
    for (const auto& n : topology_.nodes) {
      if (removed_.contains(n.name)) continue;
      if (devices_ && starting)
        devices_->wipe_node_slices(n.name, "");  // as kubelet does when it starts
      register_node(n);
      if (lease_due_.contains(n.name)) continue;  // registering again (our Node was deleted)
      // Spread lease renewals over the period instead of renewing every node at once.
      lease_due_[n.name] = now + options_.lease_renew * (n.ordinal % 16 + 1) / 16;
      renew_lease(n);
    }
  }
  for (auto& [node, due] : lease_due_) {
    if (due > now) continue;
    renew_lease(*by_name_.at(node));
    due = now + options_.lease_renew;
  }
  if (devices_) {
    auto again = devices_->poll(now);
    dirty_pods_.insert(again.begin(), again.end());
  }
  if (containers_) {
    for (const auto& [key, ready] : containers_->poll(now))
      set_ready(key, ready);
  }
  auto pods = std::move(dirty_pods_);
  dirty_pods_.clear();
  for (const auto& key : pods)
    sync_pod(key, now);
  for (auto it = finish_at_.begin(); it != finish_at_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    Doc pod = c_.cache().get(kPods, it->first);
    it = finish_at_.erase(it);
    if (pod && !terminating(*pod) && !pod_done(*pod)) finish_pod(pod);
  }
}

}  // namespace nvdra::sim::cluster
