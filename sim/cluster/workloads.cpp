#include "sim/cluster/workloads.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/log.h"
#include "sim/cluster/claim_controller.h"
#include "sim/cluster/kubelet.h"
#include "sim/cluster/scheduler.h"

namespace nvdra::sim::cluster {
namespace {

using json::Value;

// The controller owner reference of an object: (kind, name, uid).
struct OwnerRef {
  std::string kind, name, uid;
};
std::optional<OwnerRef> controller_of(const Value& obj) {
  const Value* owners = json::find_path(obj, {"metadata", "ownerReferences"});
  if (!owners || !owners->IsArray()) return std::nullopt;
  for (const auto& o : owners->GetArray()) {
    if (json::get_bool(o, "controller").value_or(false))
      return OwnerRef{std::string(json::string_or(o, "kind")),
                      std::string(json::string_or(o, "name")),
                      std::string(json::string_or(o, "uid"))};
  }
  return std::nullopt;
}

int64_t int_or(const Value& obj, std::initializer_list<std::string_view> path, int64_t def) {
  const Value* v = json::find_path(obj, path);
  return v && v->IsInt64() ? v->GetInt64() : def;
}

bool has_true_condition(const Value& obj, std::string_view type) {
  const Value* conds = json::find_path(obj, {"status", "conditions"});
  if (!conds || !conds->IsArray()) return false;
  for (const auto& c : conds->GetArray()) {
    if (json::string_or(c, "type") == type && json::string_or(c, "status") == "True") return true;
  }
  return false;
}

// When condition `type` last changed to its current status, or `now` for a new condition.
std::string since(const Value& obj, std::string_view type, const std::string& now) {
  const Value* conds = json::find_path(obj, {"status", "conditions"});
  if (!conds || !conds->IsArray()) return now;
  for (const auto& c : conds->GetArray()) {
    if (json::string_or(c, "type") == type && json::string_or(c, "status") == "True")
      return std::string(json::string_or(c, "lastTransitionTime", now));
  }
  return now;
}

std::string phase_of(const Value& pod) {
  const Value* st = json::find(pod, "status");
  return std::string(st ? json::string_or(*st, "phase", "Pending") : "Pending");
}

// The node a DaemonSet pod is meant for: its nodeName, or the matchFields pin.
std::string target_node(const Value& pod) {
  if (const Value* spec = json::find(pod, "spec")) {
    if (auto n = json::get_string(*spec, "nodeName"); n && !n->empty()) return std::string(*n);
  }
  const Value* terms =
      json::find_path(pod, {"spec", "affinity", "nodeAffinity",
                            "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"});
  if (terms && terms->IsArray()) {
    for (const auto& t : terms->GetArray()) {
      const Value* fields = json::find(t, "matchFields");
      if (!fields || !fields->IsArray()) continue;
      for (const auto& f : fields->GetArray()) {
        const Value* vals = json::find(f, "values");
        if (json::string_or(f, "key") == "metadata.name" && vals && vals->IsArray() &&
            vals->Size() == 1 && (*vals)[0].IsString())
          return (*vals)[0].GetString();
      }
    }
  }
  return {};
}

std::string short_hash(const std::string& text) {
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  size_t h = std::hash<std::string>{}(text);
  std::string out;
  for (int i = 0; i < 10; ++i) {
    out.push_back(kAlphabet[h % 27]);
    h /= 27;
  }
  return out;
}

}  // namespace

bool pod_ready(const Value& pod) {
  return has_true_condition(pod, "Ready");
}

bool pod_active(const Value& pod) {
  return !terminating(pod) && !pod_done(pod);
}

void WorkloadController::observe(const std::string& storage_key, const std::string& key,
                                 const Doc& obj) {
  if (storage_key == kind_.storage_key()) {
    dirty_.insert(key);
    if (obj) key_of_owner_[std::string(uid_of(*obj))] = key;
    return;
  }
  if (storage_key == kPods.storage_key()) {
    if (auto it = owner_of_pod_.find(key); it != owner_of_pod_.end()) {
      pods_by_owner_[it->second].erase(key);
      if (auto o = key_of_owner_.find(it->second); o != key_of_owner_.end())
        dirty_.insert(o->second);
      owner_of_pod_.erase(it);
    }
    if (!obj) return;
    auto owner = controller_of(*obj);
    if (!owner) return;
    owner_of_pod_[key] = owner->uid;
    pods_by_owner_[owner->uid].insert(key);
    if (auto o = key_of_owner_.find(owner->uid); o != key_of_owner_.end()) dirty_.insert(o->second);
    return;
  }
  observe_other(storage_key, key, obj);
}

void WorkloadController::reconcile(std::chrono::steady_clock::time_point) {
  auto keys = std::move(dirty_);
  dirty_.clear();
  for (const auto& key : keys) {
    Doc owner = c_.cache().get(kind_, key);
    if (owner && !terminating(*owner)) sync(key, owner);
  }
}

void WorkloadController::mark_all_dirty() {
  for (const auto& [key, owner] : c_.cache().all(kind_))
    dirty_.insert(key);
}

std::vector<Doc> WorkloadController::pods_of(const Doc& owner) const {
  std::vector<Doc> out;
  auto it = pods_by_owner_.find(std::string(uid_of(*owner)));
  if (it == pods_by_owner_.end()) return out;
  for (const auto& key : it->second) {
    if (Doc p = c_.cache().get(kPods, key)) out.push_back(p);
  }
  return out;
}

void WorkloadController::create_pod(const Doc& owner, const Value& tmpl, const std::string& name,
                                    const std::map<std::string, std::string>& extra_labels,
                                    const std::string& pin_to_node) {
  json::Document pod = object_from_template(
      tmpl, name.empty() ? std::string(name_of(*owner)) + "-" : name, name.empty(), *owner);
  auto& a = pod.GetAllocator();
  Value& labels = json::ensure_object(pod["metadata"], "labels", a);
  for (const auto& [k, v] : extra_labels)
    json::set_string(labels, k.c_str(), v, a);
  Value& spec = json::ensure_object(pod, "spec", a);
  if (!pin_to_node.empty()) {
    // As the DaemonSet controller does: a required node affinity on the node's name.
    auto pin = json::parse(fmt::format(
        R"({{"requiredDuringSchedulingIgnoredDuringExecution":{{"nodeSelectorTerms":[{{"matchFields":[)"
        R"({{"key":"metadata.name","operator":"In","values":[{}]}}]}}]}}}})",
        json::quote(pin_to_node)));
    Value& affinity = json::ensure_object(spec, "affinity", a);
    affinity.RemoveMember("nodeAffinity");
    affinity.AddMember("nodeAffinity", Value(*pin, a), a);
  }
  auto r = c_.api().create(kPods, std::string(namespace_of(*owner)), std::move(pod));
  if (!r && r.error().http_status != 409)
    NVDRA_WARN("{} {}: creating a pod: {}", json::string_or(*owner, "kind"), name_of(*owner),
               r.error().message);
}

void WorkloadController::delete_pod(const Doc& pod) {
  auto r = c_.api().remove(kPods, std::string(namespace_of(*pod)), std::string(name_of(*pod)),
                           DeleteRequest{});
  if (!r && r.error().http_status != 404)
    NVDRA_WARN("deleting pod {}: {}", name_of(*pod), r.error().message);
}

void WorkloadController::write_status(const Doc& owner, const std::string& status) {
  auto wanted = json::parse(status);
  if (!wanted) return;
  const Value* current = json::find(*owner, "status");
  if (current && *current == *wanted) return;
  auto r = c_.api().modify(kind_, std::string(namespace_of(*owner)), std::string(name_of(*owner)),
                           true, [&](json::Document& obj, bool) -> Status {
                             obj.RemoveMember("status");
                             obj.AddMember("status", Value(*wanted, obj.GetAllocator()),
                                           obj.GetAllocator());
                             return ok();
                           });
  if (!r && r.error().http_status != 404)
    NVDRA_WARN("{} {}: writing status: {}", json::string_or(*owner, "kind"), name_of(*owner),
               r.error().message);
}

// ---- ReplicaSet ----

void ReplicaSetController::sync(const std::string&, const Doc& rs) {
  const int64_t want = int_or(*rs, {"spec", "replicas"}, 1);
  std::vector<Doc> active;
  for (auto& p : pods_of(rs)) {
    if (pod_active(*p)) active.push_back(p);
  }
  const Value* tmpl = json::find_path(*rs, {"spec", "template"});
  if (tmpl) {
    for (int64_t i = static_cast<int64_t>(active.size()); i < want; ++i)
      create_pod(rs, *tmpl, "", {}, "");
  }
  if (static_cast<int64_t>(active.size()) > want) {
    // Scale down: pods that are not ready first, then the newest.
    std::sort(active.begin(), active.end(), [](const Doc& a, const Doc& b) {
      if (pod_ready(*a) != pod_ready(*b)) return !pod_ready(*a);
      return json::string_or(*json::find(*a, "metadata"), "creationTimestamp") >
             json::string_or(*json::find(*b, "metadata"), "creationTimestamp");
    });
    for (size_t i = 0; i < active.size() - static_cast<size_t>(want); ++i)
      delete_pod(active[i]);
  }
  int64_t ready = 0;
  for (const auto& p : active)
    ready += pod_ready(*p);
  write_status(
      rs,
      fmt::format(
          R"({{"replicas":{0},"fullyLabeledReplicas":{0},"readyReplicas":{1},"availableReplicas":{1},)"
          R"("observedGeneration":{2}}})",
          active.size(), ready, int_or(*rs, {"metadata", "generation"}, 1)));
}

// ---- Deployment ----

void DeploymentController::observe_other(const std::string& storage_key, const std::string&,
                                         const Doc& obj) {
  if (storage_key != kReplicaSets.storage_key() || !obj) return;
  if (auto owner = controller_of(*obj); owner && owner->kind == "Deployment")
    dirty_.insert(object_key(namespace_of(*obj), owner->name));
}

void DeploymentController::sync(const std::string&, const Doc& d) {
  const Value* tmpl = json::find_path(*d, {"spec", "template"});
  if (!tmpl) return;
  const std::string ns(namespace_of(*d)), name(name_of(*d)), uid(uid_of(*d));
  const int64_t want = int_or(*d, {"spec", "replicas"}, 1);
  const std::string hash = short_hash(json::write(*tmpl));
  const std::string rs_name = name + "-" + hash;
  int64_t replicas = 0, updated = 0, ready = 0;
  bool have_current = false;
  for (const auto& [key, rs] : c_.cache().all(kReplicaSets)) {
    auto owner = controller_of(*rs);
    if (!owner || owner->uid != uid) continue;
    const bool current = name_of(*rs) == rs_name;
    have_current = have_current || current;
    replicas += int_or(*rs, {"status", "replicas"}, 0);
    ready += int_or(*rs, {"status", "readyReplicas"}, 0);
    if (current) updated = int_or(*rs, {"status", "replicas"}, 0);
    const int64_t rs_want = current ? want : 0;  // old templates scale to zero
    if (int_or(*rs, {"spec", "replicas"}, 1) != rs_want) {
      auto r = c_.api().modify(kReplicaSets, ns, std::string(name_of(*rs)), false,
                               [&](json::Document& o, bool) {
                                 json::set_int(json::ensure_object(o, "spec", o.GetAllocator()),
                                               "replicas", rs_want, o.GetAllocator());
                                 return ok();
                               });
      if (!r)
        NVDRA_WARN("deployment {}/{}: scaling {}: {}", ns, name, name_of(*rs), r.error().message);
    }
  }
  if (!have_current) {
    json::Document rs;
    rs.SetObject();
    auto& a = rs.GetAllocator();
    json::set_string(rs, "apiVersion", "apps/v1", a);
    json::set_string(rs, "kind", "ReplicaSet", a);
    Value& meta = json::ensure_object(rs, "metadata", a);
    json::set_string(meta, "name", rs_name, a);
    add_controller_reference(rs, *d);
    Value& spec = json::ensure_object(rs, "spec", a);
    json::set_int(spec, "replicas", want, a);
    if (const Value* sel = json::find_path(*d, {"spec", "selector"}))
      spec.AddMember("selector", Value(*sel, a), a);
    Value t(*tmpl, a);
    json::set_string(json::ensure_object(json::ensure_object(t, "metadata", a), "labels", a),
                     "pod-template-hash", hash, a);
    rs["spec"].AddMember("template", t, a);
    json::set_string(json::ensure_object(rs["metadata"], "labels", a), "pod-template-hash", hash,
                     a);
    auto r = c_.api().create(kReplicaSets, ns, std::move(rs));
    if (!r && r.error().http_status != 409)
      NVDRA_WARN("deployment {}/{}: creating its ReplicaSet: {}", ns, name, r.error().message);
  }
  const std::string now = c_.api().now();
  const Value* old_conds = json::find_path(*d, {"status", "conditions"});
  std::string since = now;
  if (old_conds && old_conds->IsArray()) {
    for (const auto& c : old_conds->GetArray()) {
      if (json::string_or(c, "type") == "Available" &&
          (json::string_or(c, "status") == "True") == (ready >= want))
        since = std::string(json::string_or(c, "lastTransitionTime", now));
    }
  }
  write_status(
      d,
      fmt::format(
          R"({{"observedGeneration":{},"replicas":{},"updatedReplicas":{},"readyReplicas":{},)"
          R"("availableReplicas":{},"conditions":[{{"type":"Available","status":"{}",)"
          R"("reason":"{}","lastTransitionTime":"{}","lastUpdateTime":"{}"}}]}})",
          int_or(*d, {"metadata", "generation"}, 1), replicas, updated, ready, ready,
          ready >= want ? "True" : "False",
          ready >= want ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable", since, since));
}

// ---- Job ----

void JobController::sync(const std::string&, const Doc& job) {
  const Value* tmpl = json::find_path(*job, {"spec", "template"});
  if (!tmpl) return;
  const bool finished = has_true_condition(*job, "Complete") || has_true_condition(*job, "Failed");
  const Value* completions_v = json::find_path(*job, {"spec", "completions"});
  const int64_t parallelism = int_or(*job, {"spec", "parallelism"}, 1);
  const int64_t completions =
      completions_v && completions_v->IsInt64() ? completions_v->GetInt64() : -1;
  const int64_t backoff = int_or(*job, {"spec", "backoffLimit"}, 6);
  std::vector<Doc> active;
  int64_t succeeded = 0, failed = 0;
  for (auto& p : pods_of(job)) {
    const std::string phase = phase_of(*p);
    if (phase == "Succeeded") {
      ++succeeded;
    } else if (phase == "Failed") {
      ++failed;
    } else if (!terminating(*p)) {
      active.push_back(p);
    }
  }
  const std::string now = c_.api().now();
  const Value* st = json::find(*job, "status");
  const std::string start(st ? json::string_or(*st, "startTime", now) : now);
  std::string condition;
  if (completions >= 0 ? succeeded >= completions : (succeeded > 0 && active.empty())) {
    condition = "Complete";
  } else if (failed > backoff) {
    condition = "Failed";
  }
  if (!condition.empty() || finished) {
    if (condition == "Failed" || finished) {
      for (const auto& p : active)
        delete_pod(p);
    }
    if (finished) return;
    const std::string name(name_of(*job));
    write_status(
        job,
        fmt::format(
            R"({{"startTime":"{0}","completionTime":"{1}","active":0,"succeeded":{2},"failed":{3},)"
            R"("conditions":[{{"type":"{4}","status":"True","reason":"{5}","lastProbeTime":"{1}",)"
            R"("lastTransitionTime":"{1}"}}]}})",
            start, now, succeeded, failed, condition,
            condition == "Complete" ? "CompletionsReached" : "BackoffLimitExceeded"));
    return;
  }
  const int64_t remaining =
      completions >= 0 ? completions - succeeded : (succeeded > 0 ? 0 : parallelism);
  const int64_t want_active = std::min(parallelism, remaining);
  const std::string name(name_of(*job)), uid(uid_of(*job));
  for (int64_t i = static_cast<int64_t>(active.size()); i < want_active; ++i)
    create_pod(job, *tmpl, "",
               {{"batch.kubernetes.io/job-name", name},
                {"job-name", name},
                {"batch.kubernetes.io/controller-uid", uid},
                {"controller-uid", uid}},
               "");
  write_status(job,
               fmt::format(R"({{"startTime":"{}","active":{},"succeeded":{},"failed":{}}})", start,
                           std::max<int64_t>(static_cast<int64_t>(active.size()), want_active),
                           succeeded, failed));
}

// ---- DaemonSet ----

void DaemonSetController::observe_other(const std::string& storage_key, const std::string&,
                                        const Doc&) {
  if (storage_key == kNodes.storage_key()) mark_all_dirty();
}

void DaemonSetController::sync(const std::string&, const Doc& ds) {
  const Value* tmpl = json::find_path(*ds, {"spec", "template"});
  if (!tmpl) return;
  std::map<std::string, std::vector<Doc>> by_node;
  for (auto& p : pods_of(ds)) {
    if (pod_active(*p)) by_node[target_node(*p)].push_back(p);
  }
  int64_t desired = 0, current = 0, ready = 0;
  std::set<std::string> wanted;
  for (const auto& [name, node] : c_.cache().all(kNodes)) {
    if (!node_misfit(*tmpl, *node, node_info(name, *node)).empty()) continue;
    wanted.insert(name);
    ++desired;
    auto it = by_node.find(name);
    if (it == by_node.end()) {
      create_pod(ds, *tmpl, "", {}, name);
      continue;
    }
    ++current;
    ready += std::any_of(it->second.begin(), it->second.end(),
                         [](const Doc& p) { return pod_ready(*p); });
  }
  for (const auto& [node, pods] : by_node) {
    if (wanted.contains(node)) continue;
    for (const auto& p : pods)
      delete_pod(p);  // the node left the selection (labels changed, or it is gone)
  }
  write_status(
      ds,
      fmt::format(
          R"({{"desiredNumberScheduled":{0},"currentNumberScheduled":{1},"updatedNumberScheduled":{1},)"
          R"("numberReady":{2},"numberAvailable":{2},"numberMisscheduled":0,"observedGeneration":{3}}})",
          desired, current, ready, int_or(*ds, {"metadata", "generation"}, 1)));
}

// ---- MPIJob (kubeflow.org/v2beta1) ----

void MpiJobController::sync(const std::string&, const Doc& job) {
  const Value* specs = json::find_path(*job, {"spec", "mpiReplicaSpecs"});
  if (!specs) return;
  const Value* launcher_spec = json::find(*specs, "Launcher");
  const Value* worker_spec = json::find(*specs, "Worker");
  const std::string name(name_of(*job));
  const bool finished = has_true_condition(*job, "Succeeded") || has_true_condition(*job, "Failed");
  const std::string clean(json::find_path(*job, {"spec", "runPolicy"})
                              ? json::string_or(*json::find_path(*job, {"spec", "runPolicy"}),
                                                "cleanPodPolicy", "Running")
                              : "Running");
  std::map<std::string, Doc> pods;
  for (auto& p : pods_of(job))
    pods[std::string(name_of(*p))] = p;
  const int64_t workers = worker_spec ? int_or(*worker_spec, {"replicas"}, 1) : 0;
  if (finished) {
    for (const auto& [n, p] : pods) {
      if (clean != "None" && n != name + "-launcher" && pod_active(*p)) delete_pod(p);
    }
    return;
  }
  int64_t workers_ready = 0, workers_active = 0;
  for (int64_t i = 0; i < workers; ++i) {
    const std::string wname = fmt::format("{}-worker-{}", name, i);
    auto it = pods.find(wname);
    if (it == pods.end()) {
      json::Document tmpl;
      tmpl.CopyFrom(*json::find(*worker_spec, "template"), tmpl.GetAllocator());
      auto& a = tmpl.GetAllocator();
      // Workers are servers (sshd for mpirun): they run until the job is over.
      Value& anns = json::ensure_object(json::ensure_object(tmpl, "metadata", a), "annotations", a);
      if (!anns.HasMember(kRunSecondsAnnotation.data()))
        json::set_string(anns, kRunSecondsAnnotation.data(), "-1", a);
      Value& spec = json::ensure_object(tmpl, "spec", a);
      json::set_string(spec, "hostname", wname, a);
      if (!spec.HasMember("restartPolicy"))
        json::set_string(spec, "restartPolicy",
                         json::string_or(*worker_spec, "restartPolicy", "Never"), a);
      create_pod(job, tmpl, wname,
                 {{"training.kubeflow.org/job-name", name},
                  {"training.kubeflow.org/job-role", "worker"},
                  {"training.kubeflow.org/replica-index", std::to_string(i)}},
                 "");
      continue;
    }
    workers_active += pod_active(*it->second);
    workers_ready += pod_ready(*it->second);
  }
  const std::string policy(
      json::string_or(*json::find(*job, "spec"), "launcherCreationPolicy", "AtStartup"));
  const std::string lname = name + "-launcher";
  auto launcher = pods.find(lname);
  if (launcher == pods.end() && launcher_spec &&
      (policy != "WaitForWorkersReady" || workers_ready == workers)) {
    json::Document tmpl;
    tmpl.CopyFrom(*json::find(*launcher_spec, "template"), tmpl.GetAllocator());
    Value& spec = json::ensure_object(tmpl, "spec", tmpl.GetAllocator());
    if (!spec.HasMember("restartPolicy"))
      json::set_string(spec, "restartPolicy",
                       json::string_or(*launcher_spec, "restartPolicy", "OnFailure"),
                       tmpl.GetAllocator());
    create_pod(
        job, tmpl, lname,
        {{"training.kubeflow.org/job-name", name}, {"training.kubeflow.org/job-role", "launcher"}},
        "");
  }
  const std::string now = c_.api().now();
  const Value* st = json::find(*job, "status");
  const std::string start(st ? json::string_or(*st, "startTime", now) : now);
  std::string phase = launcher == pods.end() ? "Pending" : phase_of(*launcher->second);
  std::string conditions = fmt::format(
      R"({{"type":"Created","status":"True","reason":"MPIJobCreated","lastTransitionTime":"{}"}})",
      start);
  if (phase == "Running")
    conditions += fmt::format(
        R"(,{{"type":"Running","status":"True","reason":"MPIJobRunning","lastTransitionTime":"{}"}})",
        since(*job, "Running", now));
  if (phase == "Succeeded" || phase == "Failed")
    conditions += fmt::format(
        R"(,{{"type":"{0}","status":"True","reason":"MPIJob{0}","lastTransitionTime":"{1}"}})",
        phase, now);
  write_status(
      job,
      fmt::format(
          R"({{"startTime":"{}",{}"replicaStatuses":{{"Launcher":{{"active":{},"succeeded":{},"failed":{}}},)"
          R"("Worker":{{"active":{}}}}},"conditions":[{}]}})",
          start,
          phase == "Succeeded" || phase == "Failed" ? fmt::format(R"("completionTime":"{}",)", now)
                                                    : "",
          phase == "Running" || phase == "Pending" ? (launcher == pods.end() ? 0 : 1) : 0,
          phase == "Succeeded" ? 1 : 0, phase == "Failed" ? 1 : 0, workers_active, conditions));
}

void PodGarbageCollector::observe(const std::string& storage_key, const std::string&, const Doc&) {
  if (storage_key == kNodes.storage_key() || storage_key == kPods.storage_key()) dirty_ = true;
}

void PodGarbageCollector::reconcile(std::chrono::steady_clock::time_point now) {
  if (!dirty_ && gone_since_.empty()) return;
  dirty_ = false;
  std::map<std::string, std::chrono::steady_clock::time_point> gone;
  for (const auto& [key, pod] : c_.cache().all(kPods)) {
    const Value* spec = json::find(*pod, "spec");
    const std::string node(spec ? json::string_or(*spec, "nodeName") : "");
    if (node.empty() || c_.cache().get(kNodes, node)) continue;
    auto it = gone_since_.find(node);
    const auto since = it == gone_since_.end() ? now : it->second;
    gone[node] = since;
    if (now - since < quarantine_) continue;
    DeleteRequest force;
    force.grace_period_seconds = 0;
    auto r =
        c_.api().remove(kPods, std::string(namespace_of(*pod)), std::string(name_of(*pod)), force);
    if (r)
      NVDRA_INFO("pod garbage collector: deleted {} (node {} is gone)", key, node);
    else if (r.error().http_status != 404)
      NVDRA_WARN("pod garbage collector: deleting {}: {}", key, r.error().message);
  }
  gone_since_ = std::move(gone);
}

}  // namespace nvdra::sim::cluster
