#include "sim/cluster/scheduler.h"

#include <fmt/format.h>

#include "base/log.h"
#include "sim/cluster/claim_controller.h"
#include "sim/pod_binding.h"

namespace nvdra::sim::cluster {
namespace {

using json::Value;

bool pending(const Value& pod) {
  const Value* spec = json::find(pod, "spec");
  if (!spec || !json::string_or(*spec, "nodeName").empty()) return false;
  const std::string_view scheduler = json::string_or(*spec, "schedulerName", "default-scheduler");
  return scheduler == "default-scheduler" && !terminating(pod) && !pod_done(pod);
}

bool tolerates(const Value& pod, const Value& taint) {
  const std::string_view effect = json::string_or(taint, "effect");
  if (effect != "NoSchedule" && effect != "NoExecute") return true;
  const Value* tols = json::find_path(pod, {"spec", "tolerations"});
  if (!tols || !tols->IsArray()) return false;
  for (const auto& t : tols->GetArray()) {
    const std::string_view key = json::string_or(t, "key"),
                           op = json::string_or(t, "operator", "Equal");
    const std::string_view te = json::string_or(t, "effect");
    if (!te.empty() && te != effect) continue;
    if (key.empty() && op == "Exists") return true;
    if (key != json::string_or(taint, "key")) continue;
    if (op == "Exists" || json::string_or(t, "value") == json::string_or(taint, "value"))
      return true;
  }
  return false;
}

bool reserved_for(const Value& claim, std::string_view uid) {
  const Value* r = json::find_path(claim, {"status", "reservedFor"});
  if (!r || !r->IsArray()) return false;
  for (const auto& e : r->GetArray()) {
    if (json::string_or(e, "uid") == uid) return true;
  }
  return false;
}

}  // namespace

dra::NodeInfo node_info(const std::string& name, const Value& node) {
  dra::NodeInfo info{name, {}};
  if (const Value* labels = json::find_path(node, {"metadata", "labels"});
      labels && labels->IsObject()) {
    for (auto m = labels->MemberBegin(); m != labels->MemberEnd(); ++m) {
      if (m->value.IsString()) info.labels.emplace(m->name.GetString(), m->value.GetString());
    }
  }
  return info;
}

std::string node_misfit(const Value& pod, const Value& node, const dra::NodeInfo& info) {
  if (const Value* spec = json::find(node, "spec");
      spec && json::get_bool(*spec, "unschedulable").value_or(false))
    return "node(s) were unschedulable";
  bool ready = false;
  if (const Value* conds = json::find_path(node, {"status", "conditions"});
      conds && conds->IsArray()) {
    for (const auto& c : conds->GetArray())
      ready = ready ||
              (json::string_or(c, "type") == "Ready" && json::string_or(c, "status") == "True");
  }
  if (!ready) return "node(s) were not ready";
  if (const Value* sel = json::find_path(pod, {"spec", "nodeSelector"}); sel && sel->IsObject()) {
    for (auto m = sel->MemberBegin(); m != sel->MemberEnd(); ++m) {
      auto it = info.labels.find(std::string_view(m->name.GetString(), m->name.GetStringLength()));
      if (it == info.labels.end() || !m->value.IsString() || it->second != m->value.GetString())
        return "node(s) didn't match Pod's node affinity/selector";
    }
  }
  if (const Value* req = json::find_path(pod, {"spec", "affinity", "nodeAffinity",
                                               "requiredDuringSchedulingIgnoredDuringExecution"})) {
    if (!dra::node_selector_matches(*req, info))
      return "node(s) didn't match Pod's node affinity/selector";
  }
  if (const Value* taints = json::find_path(node, {"spec", "taints"});
      taints && taints->IsArray()) {
    for (const auto& t : taints->GetArray()) {
      if (!tolerates(pod, t)) return "node(s) had untolerated taint";
    }
  }
  return {};
}

void Scheduler::observe(const std::string& storage_key, const std::string& key, const Doc& obj) {
  if (storage_key == kPods.storage_key()) {
    // Pods per node, kept as pods come, go, bind and finish.
    if (auto old = node_of_pod_.find(key); old != node_of_pod_.end()) {
      --pods_on_node_[old->second];
      node_of_pod_.erase(old);
    }
    if (obj && !pod_done(*obj)) {
      const std::string_view node = json::string_or(*json::find(*obj, "spec"), "nodeName");
      if (!node.empty()) {
        node_of_pod_.emplace(key, node);
        ++pods_on_node_[std::string(node)];
      }
    }
    tried_at_.erase(key);
    if (obj && pending(*obj)) {
      if (queued_.insert(key).second) pending_.push_back(key);
    } else {
      ++capacity_generation_;  // a pod left or was bound elsewhere: room may have opened
    }
  } else if (storage_key == kNodes.storage_key()) {
    nodes_dirty_ = true;
    ++capacity_generation_;
  } else if (storage_key == kSlices.storage_key()) {
    inventory_.remove(key);
    if (obj) {
      auto s = dra::parse_slice(*obj);
      if (s) {
        inventory_.upsert(std::move(*s));
      } else {
        NVDRA_WARN("scheduler: ignoring ResourceSlice {}: {}", key, s.error().message);
      }
    }
    ++capacity_generation_;
  } else if (storage_key == kDeviceClasses.storage_key()) {
    classes_.erase(key);
    if (obj) {
      auto dc = dra::parse_device_class(*obj);
      if (dc) {
        classes_[key] = std::move(*dc);
      } else {
        NVDRA_WARN("scheduler: ignoring DeviceClass {}: {}", key, dc.error().message);
      }
    }
    ++capacity_generation_;
  } else if (storage_key == kClaims.storage_key()) {
    for (const auto& d : claim_devices_[key])
      allocated_.erase(d);
    claim_devices_.erase(key);
    if (obj) {
      if (const Value* a = json::find_path(*obj, {"status", "allocation"})) {
        auto devs = dra::allocated_devices(*a);
        allocated_.insert(devs.begin(), devs.end());
        claim_devices_[key] = std::move(devs);
      }
    }
    ++capacity_generation_;
  }
}

std::string Scheduler::misfit(const Value& pod, const NodeState& n) const {
  if (std::string why = node_misfit(pod, *n.obj, n.info); !why.empty()) return why;
  auto it = pods_on_node_.find(n.info.name);
  if (it != pods_on_node_.end() && it->second >= n.max_pods) return "Too many pods";
  return {};
}

void Scheduler::unschedulable(const Doc& pod, const std::string& message) {
  // Only a changed message is written: an unschedulable pod costs nothing while nothing changes.
  if (const Value* conds = json::find_path(*pod, {"status", "conditions"});
      conds && conds->IsArray()) {
    for (const auto& c : conds->GetArray()) {
      if (json::string_or(c, "type") == "PodScheduled" && json::string_or(c, "message") == message)
        return;
    }
  }
  const std::string now = c_.api().now();
  c_.api().pod_event(*pod, "Warning", "FailedScheduling", message, "default-scheduler", "");
  auto r = c_.api().modify(kPods, std::string(namespace_of(*pod)), std::string(name_of(*pod)), true,
                           [&](json::Document& p, bool) -> Status {
                             json::set_condition(p, "PodScheduled", "False", "Unschedulable",
                                                 message, now);
                             return ok();
                           });
  if (!r && r.error().http_status != 404)
    NVDRA_WARN("scheduler: marking pod {} unschedulable: {}", name_of(*pod), r.error().message);
}

Scheduler::Outcome Scheduler::schedule(const std::string& key, const Doc& pod) {
  const std::string ns(namespace_of(*pod)), name(name_of(*pod)), uid(uid_of(*pod));
  // Every claim must exist first (generated ones come from the resourceclaim controller).
  std::vector<Doc> claims;
  std::vector<const Value*> to_allocate;
  std::vector<size_t> to_allocate_index;
  const auto keys = pod_claim_keys(*pod);
  for (const auto& ck : keys) {
    if (claims_written_.contains(ck)) return Outcome::kLater;
  }
  for (const auto& ck : keys) {
    Doc claim = ck.starts_with("?") ? nullptr : c_.cache().get(kClaims, ck);
    if (!claim || terminating(*claim)) {
      // Usually the resourceclaim controller is about to create it: say so only when it takes long.
      auto seen = waiting_since_.emplace(key, Steady::now()).first;
      if (Steady::now() - seen->second < options_.claim_grace) return Outcome::kLater;
      unschedulable(pod, fmt::format("waiting for ResourceClaim {} to be created",
                                     ck.starts_with("?") ? "of " + ck.substr(1)
                                                         : ck.substr(ck.find('/') + 1)));
      return Outcome::kUnschedulable;
    }
    claims.push_back(claim);
    if (!json::find_path(*claim, {"status", "allocation"})) {
      to_allocate.push_back(claim.get());
      to_allocate_index.push_back(claims.size() - 1);
    }
  }
  if (nodes_dirty_) {
    nodes_.clear();
    for (const auto& [nk, node] : c_.cache().all(kNodes)) {
      NodeState state{node_info(nk, *node), node};
      if (const Value* alloc = json::find_path(*node, {"status", "allocatable"})) {
        if (auto p = json::get_string(*alloc, "pods"))
          state.max_pods = std::atoll(std::string(*p).c_str());
      }
      nodes_.push_back(std::move(state));
    }
    nodes_dirty_ = false;
  }
  ++stats_.attempts;
  std::map<std::string, int> misfits;
  std::string claim_error;
  dra::AllocationContext ctx{inventory_,
                             [this](std::string_view n) -> const dra::DeviceClass* {
                               auto it = classes_.find(n);
                               return it == classes_.end() ? nullptr : &it->second;
                             },
                             allocated_};
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const NodeState& node = nodes_[(next_node_ + i) % nodes_.size()];
    std::string why = misfit(*pod, node);
    // Claims allocated already (shared claims) pin the pod to where their devices are.
    for (const auto& claim : claims) {
      const Value* sel = json::find_path(*claim, {"status", "allocation", "nodeSelector"});
      if (why.empty() && sel && !dra::node_selector_matches(*sel, node.info))
        why = "node(s) didn't match the allocated claims' node selector";
    }
    if (!why.empty()) {
      ++misfits[why];
      continue;
    }
    std::vector<dra::ClaimAllocation> result;
    if (!to_allocate.empty()) {
      const auto start = std::chrono::steady_clock::now();
      auto r = dra::allocate(ctx, to_allocate, node.info);
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (!r) {
        if (r.error().code != ErrorCode::kNotFound) {
          claim_error = r.error().message;  // the claims can never fit: say so, stop looking
          break;
        }
        ++misfits["cannot allocate all claims"];
        if (claim_error.empty()) claim_error = r.error().message;
        continue;
      }
      stats_.allocation_seconds.push_back(secs);
      result = std::move(*r);
    }
    // Write what kube-scheduler writes, claim by claim, then bind.
    for (size_t c = 0; c < claims.size(); ++c) {
      const std::string cns(namespace_of(*claims[c])), cname(name_of(*claims[c]));
      const std::string* allocation = nullptr;
      for (size_t a = 0; a < to_allocate_index.size(); ++a) {
        if (to_allocate_index[a] == c) allocation = &result[a].allocation_json;
      }
      if (allocation) {
        auto fin =
            c_.api().modify(kClaims, cns, cname, false, [&](json::Document& obj, bool) -> Status {
              auto& a = obj.GetAllocator();
              Value& fs = json::ensure_array(obj["metadata"], "finalizers", a);
              for (const auto& f : fs.GetArray()) {
                if (f.IsString() && kDeleteProtection == f.GetString()) return ok();
              }
              fs.PushBack(Value(kDeleteProtection.data(), a), a);
              return ok();
            });
        if (!fin) {
          NVDRA_WARN("scheduler: protecting claim {}/{}: {}", cns, cname, fin.error().message);
          return Outcome::kLater;
        }
      }
      if (reserved_for(*claims[c], uid) && !allocation) continue;
      auto st =
          c_.api().modify(kClaims, cns, cname, true, [&](json::Document& obj, bool) -> Status {
            auto& a = obj.GetAllocator();
            Value& status = json::ensure_object(obj, "status", a);
            if (allocation) {
              if (status.HasMember("allocation"))
                return unexpected(api_error(409, "Conflict", "the claim was allocated meanwhile"));
              auto parsed = json::parse(*allocation);
              status.AddMember("allocation", Value(*parsed, a), a);
            }
            Value& reserved = json::ensure_array(obj["status"], "reservedFor", a);
            for (const auto& r : reserved.GetArray()) {
              if (json::string_or(r, "uid") == uid) return ok();
            }
            if (reserved.Size() >= 256)
              return unexpected(api_error(422, "Invalid",
                                          "status.reservedFor: Too many: more than 256 consumers"));
            Value ref(rapidjson::kObjectType);
            json::set_string(ref, "resource", "pods", a);
            json::set_string(ref, "name", name, a);
            json::set_string(ref, "uid", uid, a);
            reserved.PushBack(ref, a);
            return ok();
          });
      claims_written_.insert(object_key(cns, cname));
      if (!st) {
        NVDRA_WARN("scheduler: reserving claim {}/{} for pod {}: {}", cns, cname, key,
                   st.error().message);
        return Outcome::kLater;
      }
      if (allocation) {
        for (const auto& d :
             result[std::find(to_allocate_index.begin(), to_allocate_index.end(), c) -
                    to_allocate_index.begin()]
                 .devices)
          allocated_.insert(d);
      }
    }
    if (auto b = bind_pod(c_.api().store(), *c_.api().type(kPods), ns, name, node.info.name); !b) {
      NVDRA_WARN("scheduler: binding pod {} to {}: {}", key, node.info.name, b.error().message);
      return Outcome::kLater;
    }
    c_.api().pod_event(*pod, "Normal", "Scheduled",
                       fmt::format("Successfully assigned {}/{} to {}", ns, name, node.info.name),
                       "default-scheduler", "");
    next_node_ = (next_node_ + i + 1) % nodes_.size();
    ++stats_.scheduled;
    return Outcome::kScheduled;
  }
  std::string message = fmt::format("0/{} nodes are available", nodes_.size());
  std::string reasons;
  for (const auto& [why, n] : misfits)
    reasons += fmt::format("{}{} {}", reasons.empty() ? ": " : ", ", n, why);
  message += reasons.empty() ? "." : reasons + ".";
  if (!claim_error.empty()) message += " " + claim_error;
  unschedulable(pod, message);
  return Outcome::kUnschedulable;
}

void Scheduler::reconcile(std::chrono::steady_clock::time_point) {
  claims_written_.clear();
  const size_t n = pending_.size();
  for (size_t i = 0; i < n; ++i) {
    std::string key = std::move(pending_.front());
    pending_.pop_front();
    Doc pod = c_.cache().get(kPods, key);
    if (!pod || !pending(*pod)) {
      queued_.erase(key);
      waiting_since_.erase(key);
      continue;
    }
    auto tried = tried_at_.find(key);
    if (tried != tried_at_.end() && tried->second == capacity_generation_) {
      pending_.push_back(std::move(key));  // nothing changed since it last failed
      continue;
    }
    switch (schedule(key, pod)) {
      case Outcome::kScheduled:
        waiting_since_.erase(key);
        queued_.erase(key);
        tried_at_.erase(key);
        break;
      case Outcome::kUnschedulable:
        tried_at_[key] = capacity_generation_;
        pending_.push_back(std::move(key));
        break;
      case Outcome::kLater:
        pending_.push_back(std::move(key));
        break;
    }
  }
}

}  // namespace nvdra::sim::cluster
