#include "sim/cluster/claim_controller.h"

#include <fmt/format.h>

#include "base/log.h"

namespace nvdra::sim::cluster {
namespace {

using json::Value;

// The generated claim of pod entry `claim_name`, if the pod's status records one.
std::optional<std::string> recorded_claim(const Value& pod, std::string_view claim_name) {
  const Value* statuses = json::find_path(pod, {"status", "resourceClaimStatuses"});
  if (!statuses || !statuses->IsArray()) return std::nullopt;
  for (const auto& s : statuses->GetArray()) {
    if (json::string_or(s, "name") == claim_name) {
      if (auto n = json::get_string(s, "resourceClaimName")) return std::string(*n);
    }
  }
  return std::nullopt;
}

// The pod that owns a generated claim (controller owner reference of kind Pod).
std::optional<std::pair<std::string, std::string>> owner_pod(const Value& claim) {
  const Value* owners = json::find_path(claim, {"metadata", "ownerReferences"});
  if (!owners || !owners->IsArray()) return std::nullopt;
  for (const auto& o : owners->GetArray()) {
    if (json::string_or(o, "kind") == "Pod" && json::get_bool(o, "controller").value_or(false))
      return std::make_pair(std::string(json::string_or(o, "name")),
                            std::string(json::string_or(o, "uid")));
  }
  return std::nullopt;
}

}  // namespace

// The pod's claims in the order of pod.spec.resourceClaims: keys "ns/name", or the name of the
// pod claim still waiting for its generated claim (prefixed "?").
std::vector<std::string> pod_claim_keys(const Value& pod) {
  std::vector<std::string> out;
  const Value* entries = json::find_path(pod, {"spec", "resourceClaims"});
  if (!entries || !entries->IsArray()) return out;
  const std::string ns(namespace_of(pod));
  for (const auto& e : entries->GetArray()) {
    const std::string_view entry = json::string_or(e, "name");
    if (auto n = json::get_string(e, "resourceClaimName")) {
      out.push_back(object_key(ns, *n));
      continue;
    }
    std::string generated;
    if (const Value* st = json::find_path(pod, {"status", "resourceClaimStatuses"});
        st && st->IsArray()) {
      for (const auto& s : st->GetArray()) {
        if (json::string_or(s, "name") == entry)
          generated = std::string(json::string_or(s, "resourceClaimName"));
      }
    }
    out.push_back(generated.empty() ? "?" + std::string(entry) : object_key(ns, generated));
  }
  return out;
}

bool pod_done(const Value& pod) {
  const Value* st = json::find(pod, "status");
  const std::string_view phase = st ? json::string_or(*st, "phase") : "";
  return phase == "Succeeded" || phase == "Failed";
}

void ClaimController::observe(const std::string& storage_key, const std::string& key,
                              const Doc& obj) {
  if (storage_key == kPods.storage_key()) {
    dirty_pods_.insert(key);
    // The claims a pod reserves or owns may now be released.
    if (obj) uid_of_pod_[key] = std::string(uid_of(*obj));
    if (obj == nullptr || pod_done(*obj)) {
      const std::string pod_uid = obj ? std::string(uid_of(*obj)) : gone_uid(key);
      // Its generated claims, and the claims it reserved.
      for (auto* index : {&claims_of_pod_, &reserving_}) {
        if (auto it = index->find(pod_uid); it != index->end())
          dirty_claims_.insert(it->second.begin(), it->second.end());
      }
      if (!obj) uid_of_pod_.erase(key);
    }
  } else if (storage_key == kClaims.storage_key()) {
    dirty_claims_.insert(key);
    if (auto it = pod_of_claim_.find(key); it != pod_of_claim_.end()) {
      claims_of_pod_[it->second].erase(key);
      if (claims_of_pod_[it->second].empty()) claims_of_pod_.erase(it->second);
      pod_of_claim_.erase(it);
    }
    for (const auto& uid : reserved_for_[key]) {
      reserving_[uid].erase(key);
      if (reserving_[uid].empty()) reserving_.erase(uid);
    }
    reserved_for_.erase(key);
    if (obj) {
      if (auto owner = owner_pod(*obj)) {
        pod_of_claim_[key] = owner->second;
        claims_of_pod_[owner->second].insert(key);
      }
      if (const Value* r = json::find_path(*obj, {"status", "reservedFor"}); r && r->IsArray()) {
        for (const auto& e : r->GetArray()) {
          const std::string uid(json::string_or(e, "uid"));
          reserved_for_[key].push_back(uid);
          reserving_[uid].insert(key);
        }
      }
    }
  } else if (storage_key == kClaimTemplates.storage_key()) {
    dirty_pods_.insert(waiting_pods_.begin(), waiting_pods_.end());
  }
}

std::string ClaimController::gone_uid(const std::string& pod_key) const {
  auto it = uid_of_pod_.find(pod_key);
  return it == uid_of_pod_.end() ? std::string() : it->second;
}

void ClaimController::reconcile(std::chrono::steady_clock::time_point) {
  auto pods = std::move(dirty_pods_);
  dirty_pods_.clear();
  for (const auto& k : pods)
    sync_pod(k);
  auto claims = std::move(dirty_claims_);
  dirty_claims_.clear();
  for (const auto& k : claims)
    sync_claim(k);
}

void ClaimController::sync_pod(const std::string& key) {
  waiting_pods_.erase(key);
  Doc pod = c_.cache().get(kPods, key);
  if (!pod || terminating(*pod) || pod_done(*pod)) return;
  const Value* entries = json::find_path(*pod, {"spec", "resourceClaims"});
  if (!entries || !entries->IsArray()) return;
  const std::string ns(namespace_of(*pod)), name(name_of(*pod)), uid(uid_of(*pod));
  std::vector<std::pair<std::string, std::string>> created;  // pod claim name → claim name
  for (const auto& e : entries->GetArray()) {
    const std::string claim_name(json::string_or(e, "name"));
    auto tmpl_name = json::get_string(e, "resourceClaimTemplateName");
    if (!tmpl_name || recorded_claim(*pod, claim_name)) continue;
    // A claim made before a crash, not yet recorded in the pod's status, is reused.
    std::string existing;
    if (auto owned = claims_of_pod_.find(uid); owned != claims_of_pod_.end()) {
      for (const auto& ck : owned->second) {
        Doc claim = c_.cache().get(kClaims, ck);
        const Value* ann = claim ? json::find_path(*claim, {"metadata", "annotations"}) : nullptr;
        if (ann && json::string_or(*ann, std::string(kPodClaimNameAnnotation)) == claim_name)
          existing = std::string(name_of(*claim));
      }
    }
    if (existing.empty()) {
      Doc tmpl = c_.cache().get(kClaimTemplates, object_key(ns, *tmpl_name));
      if (!tmpl) {
        waiting_pods_.insert(key);  // the template may be created later
        continue;
      }
      static const Value kEmpty(rapidjson::kObjectType);
      const Value* tspec = json::find(*tmpl, "spec");  // ResourceClaimTemplateSpec: metadata, spec
      json::Document claim = object_from_template(
          tspec ? *tspec : kEmpty, fmt::format("{}-{}-", name, claim_name), true, *pod);
      auto& a = claim.GetAllocator();
      json::set_string(json::ensure_object(claim["metadata"], "annotations", a),
                       kPodClaimNameAnnotation.data(), claim_name, a);
      auto made = c_.api().create(kClaims, ns, std::move(claim));
      if (!made) {
        NVDRA_WARN("resourceclaim controller: creating claim {} of pod {}: {}", claim_name, key,
                   made.error().message);
        continue;
      }
      auto doc = json::parse(*made);
      existing = std::string(name_of(*doc));
    }
    created.emplace_back(claim_name, existing);
  }
  if (created.empty()) return;
  auto r = c_.api().modify(kPods, ns, name, true, [&](json::Document& p, bool) -> Status {
    auto& a = p.GetAllocator();
    Value& list =
        json::ensure_array(json::ensure_object(p, "status", a), "resourceClaimStatuses", a);
    for (const auto& [claim_name, claim] : created) {
      Value s(rapidjson::kObjectType);
      json::set_string(s, "name", claim_name, a);
      json::set_string(s, "resourceClaimName", claim, a);
      list.PushBack(s, a);
    }
    return ok();
  });
  if (!r)
    NVDRA_WARN("resourceclaim controller: recording claims of pod {}: {}", key, r.error().message);
}

void ClaimController::sync_claim(const std::string& key) {
  Doc claim = c_.cache().get(kClaims, key);
  if (!claim) return;
  const std::string ns(namespace_of(*claim)), name(name_of(*claim));
  auto pod_alive = [&](std::string_view pod_name, std::string_view pod_uid) {
    Doc pod = c_.cache().get(kPods, object_key(ns, pod_name));
    return pod && uid_of(*pod) == pod_uid && !pod_done(*pod);
  };
  // reservedFor entries of pods that are gone, replaced or done.
  const Value* reserved = json::find_path(*claim, {"status", "reservedFor"});
  size_t keep = 0, total = 0;
  if (reserved && reserved->IsArray()) {
    for (const auto& r : reserved->GetArray()) {
      ++total;
      if (json::string_or(r, "resource") != "pods" ||
          pod_alive(json::string_or(r, "name"), json::string_or(r, "uid")))
        ++keep;
    }
  }
  const bool allocated = json::find_path(*claim, {"status", "allocation"}) != nullptr;
  if (keep != total || (keep == 0 && allocated)) {
    auto r = c_.api().modify(kClaims, ns, name, true, [&](json::Document& obj, bool) -> Status {
      Value* st = obj.HasMember("status") ? &obj["status"] : nullptr;
      if (!st) return ok();
      if (st->HasMember("reservedFor") && (*st)["reservedFor"].IsArray()) {
        Value& list = (*st)["reservedFor"];
        for (auto it = list.Begin(); it != list.End();) {
          const bool drop = json::string_or(*it, "resource") == "pods" &&
                            !pod_alive(json::string_or(*it, "name"), json::string_or(*it, "uid"));
          it = drop ? list.Erase(it) : it + 1;
        }
        if (list.Empty()) st->RemoveMember("reservedFor");
      }
      // Nobody reserves it any more: the devices go back to the pool.
      if (!st->HasMember("reservedFor")) st->RemoveMember("allocation");
      return ok();
    });
    if (!r) NVDRA_WARN("resourceclaim controller: releasing claim {}: {}", key, r.error().message);
    return;  // the write comes back as an event; continue from there
  }
  const Value* finalizers = json::find_path(*claim, {"metadata", "finalizers"});
  bool protected_claim = false;
  if (finalizers && finalizers->IsArray()) {
    for (const auto& f : finalizers->GetArray())
      protected_claim = protected_claim || (f.IsString() && kDeleteProtection == f.GetString());
  }
  if (protected_claim && !allocated && (keep == 0)) {
    auto r = c_.api().modify(kClaims, ns, name, false, [&](json::Document& obj, bool) -> Status {
      Value* fs =
          obj["metadata"].HasMember("finalizers") ? &obj["metadata"]["finalizers"] : nullptr;
      if (!fs || !fs->IsArray()) return ok();
      for (auto it = fs->Begin(); it != fs->End();)
        it = (it->IsString() && kDeleteProtection == it->GetString()) ? fs->Erase(it) : it + 1;
      return ok();
    });
    if (!r)
      NVDRA_WARN("resourceclaim controller: unprotecting claim {}: {}", key, r.error().message);
    return;
  }
  // A generated claim goes with its pod.
  if (auto owner = owner_pod(*claim);
      owner && !terminating(*claim) && !pod_alive(owner->first, owner->second)) {
    auto r = c_.api().remove(kClaims, ns, name, DeleteRequest{});
    if (!r && r.error().http_status != 404)
      NVDRA_WARN("resourceclaim controller: deleting claim {}: {}", key, r.error().message);
  }
}

}  // namespace nvdra::sim::cluster
