#include "sim/store.h"

#include <fmt/format.h>

#include <ctime>
#include <random>
#include <set>

#include "base/base64.h"
#include "base/log.h"
#include "base/random.h"
#include "k8sclient/object.h"

namespace nvdra::sim {

Error api_error(int code, std::string_view reason, std::string message) {
  Error e(ErrorCode::kApi, std::move(message));
  e.http_status = code;
  e.reason = std::string(reason);
  return e;
}

namespace {

using json::Document;
using json::Value;

using json::ensure_object;
using json::remove_member;
using json::set_int;
using json::set_string;

std::string key_of(const std::string& ns, const std::string& name) {
  return ns.empty() ? name : ns + "/" + name;
}

bool valid_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!alnum(c) && c != '-' && c != '.') return false;
  }
  return true;
}

Error invalid(const ResourceType& t, std::string_view name, std::string field, std::string msg) {
  Error e = api_error(422, "Invalid",
                      fmt::format("{}.{} \"{}\" is invalid: {}: {}", t.resource,
                                  t.group.empty() ? "" : t.group, name, field, msg));
  if (t.group.empty())
    e.message = fmt::format("{} \"{}\" is invalid: {}: {}", t.kind, name, field, msg);
  e.details_name = std::string(name);
  e.details_group = t.group;
  e.details_kind = t.kind;  // NewInvalid names the kind (other Statuses the resource)
  e.causes.push_back(ErrorCause{"FieldValueInvalid", msg, std::move(field)});
  return e;
}

Error not_found(const ResourceType& t, const std::string& name) {
  std::string gr = t.group.empty() ? t.resource : t.resource + "." + t.group;
  Error e = api_error(404, "NotFound", fmt::format("{} \"{}\" not found", gr, name));
  e.details_name = name;
  e.details_group = t.group;
  e.details_kind = t.resource;
  return e;
}

Error conflict(const ResourceType& t, const std::string& name) {
  std::string gr = t.group.empty() ? t.resource : t.resource + "." + t.group;
  Error e = api_error(409, "Conflict",
                      fmt::format("Operation cannot be fulfilled on {} \"{}\": the object has been "
                                  "modified; please apply your changes to the latest version and "
                                  "try again",
                                  gr, name));
  e.details_name = name;
  e.details_group = t.group;
  e.details_kind = t.resource;
  return e;
}

// The part of an object that counts for metadata.generation.
std::string spec_fingerprint(const Value& obj, bool status_subresource) {
  Document copy;
  copy.CopyFrom(obj, copy.GetAllocator());
  remove_member(copy, "metadata");
  if (status_subresource) remove_member(copy, "status");
  remove_member(copy, "kind");
  remove_member(copy, "apiVersion");
  return json::write(copy);
}

std::vector<std::string> finalizers_of(const Value& obj) {
  std::vector<std::string> out;
  const Value* f = json::find_path(obj, {"metadata", "finalizers"});
  if (f && f->IsArray()) {
    for (const auto& v : f->GetArray()) {
      if (v.IsString()) out.emplace_back(v.GetString());
    }
  }
  return out;
}

std::vector<std::string> owner_uids(const Value& obj) {
  std::vector<std::string> out;
  const Value* refs = json::find_path(obj, {"metadata", "ownerReferences"});
  if (refs && refs->IsArray()) {
    for (const auto& r : refs->GetArray())
      out.emplace_back(json::string_or(r, "uid"));
  }
  return out;
}

}  // namespace

namespace {
size_t event_bytes(const StoreEvent& e) {
  return e.json.size() + e.prev_json.size();
}
}  // namespace

Store::Store(const Clock& clock, size_t history_limit, size_t history_bytes)
    : clock_(clock), history_limit_(history_limit), history_bytes_limit_(history_bytes) {}

int64_t Store::current_rv() const {
  std::lock_guard lock(mu_);
  return rv_;
}

std::string Store::now_rfc3339() const {
  std::time_t t = std::chrono::system_clock::to_time_t(clock_.system_now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

bool Store::namespace_terminating_locked(const std::string& ns) const {
  auto b = buckets_.find("/namespaces");
  if (b == buckets_.end()) return false;
  auto n = b->second.find(ns);
  return n != b->second.end() && n->second.json.find("\"deletionTimestamp\"") != std::string::npos;
}

bool Store::namespace_empty_locked(const std::string& ns) const {
  // Keys are "ns/name" in sorted maps: the first key at or after "ns/" tells.
  const std::string prefix = ns + "/";
  for (const auto& [skey, b] : buckets_) {
    auto it = b.lower_bound(prefix);
    if (it != b.end() && it->first.rfind(prefix, 0) == 0) return false;
  }
  return true;
}

bool Store::namespace_exists_locked(const std::string& ns) const {
  auto b = buckets_.find("/namespaces");
  return b != buckets_.end() && b->second.count(ns) > 0;
}

void Store::notify_locked() {
  for (auto& t : waiters_)
    net::post(t->get_executor(), [t] { t->cancel(); });
  waiters_.clear();
}

Status Store::open_data_dir(const std::string& dir) {
  std::lock_guard lock(mu_);
  PersistedState state;
  auto wal = Wal::open(dir, &state);
  if (!wal) return unexpected(wal.error());
  wal_ = std::move(*wal);
  buckets_.clear();
  for (auto& [sk, objs] : state.objects) {
    for (auto& [key, text] : objs) {
      auto o = k8s::Object::parse(text);
      int64_t rv = o ? std::atoll(std::string((*o)->resource_version()).c_str()) : 0;
      buckets_[sk][key] = Entry{std::move(text), rv};
    }
  }
  rv_ = std::max<int64_t>(rv_, state.resource_version);
  // Watches from before the restart cannot be resumed exactly: they get 410 and relist.
  history_.clear();
  history_bytes_ = 0;
  history_start_rv_ = rv_;
  return ok();
}

void Store::record_locked(std::string type, const std::string& storage_key, const std::string& ns,
                          const std::string& name, const std::string& json, int64_t rv,
                          std::string prev_json) {
  if (wal_) {
    const std::string key = key_of(ns, name);
    Status s = type == "DELETED" ? wal_->remove(rv, storage_key, key)
                                 : wal_->put(rv, storage_key, key, json);
    if (!s)
      NVDRA_ERROR("data dir: change at resourceVersion {} not persisted: {}", rv,
                  s.error().message);
    if (wal_->wants_snapshot()) {
      PersistedState state;
      state.resource_version = rv_;
      for (const auto& [sk, b] : buckets_) {
        for (const auto& [k, e] : b)
          state.objects[sk][k] = e.json;
      }
      if (auto snap = wal_->maybe_snapshot(state); !snap) {
        NVDRA_ERROR("data dir: snapshot failed: {}", snap.error().message);
      }
    }
  }
  history_.push_back(
      StoreEvent{rv, std::move(type), storage_key, ns, name, json, std::move(prev_json)});
  history_bytes_ += event_bytes(history_.back());
  // The newest event always stays, whatever its size: a watch that is current must not get 410.
  while (history_.size() > history_limit_ ||
         (history_bytes_ > history_bytes_limit_ && history_.size() > 1)) {
    history_start_rv_ = history_.front().rv;
    history_bytes_ -= event_bytes(history_.front());
    history_.pop_front();
  }
  notify_locked();
}

std::optional<std::string> Store::field_value(const Value& obj, const std::string& field) {
  const Value* cur = &obj;
  std::string_view rest = field;
  while (!rest.empty()) {
    size_t dot = rest.find('.');
    std::string part(rest.substr(0, dot));
    cur = json::find(*cur, part);
    if (cur == nullptr) return std::string();  // absent fields compare as empty, as upstream
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  }
  if (cur->IsString()) return std::string(cur->GetString(), cur->GetStringLength());
  if (cur->IsBool()) return cur->GetBool() ? "true" : "false";
  if (cur->IsInt64()) return std::to_string(cur->GetInt64());
  return std::string();
}

Result<std::string> Store::create(const ResourceType& t, const std::string& ns, Document obj,
                                  bool dry_run) {
  std::lock_guard lock(mu_);
  return write_locked(t, ns, "", std::move(obj), false, dry_run, true);
}

Result<std::string> Store::update(const ResourceType& t, const std::string& ns,
                                  const std::string& name, Document obj, bool status,
                                  bool dry_run) {
  std::lock_guard lock(mu_);
  return write_locked(t, ns, name, std::move(obj), status, dry_run, false);
}

Result<std::string> Store::modify(const ResourceType& t, const std::string& ns,
                                  const std::string& name, bool status, bool dry_run,
                                  bool create_if_missing, const Mutator& mutate) {
  std::lock_guard lock(mu_);
  auto& bucket = buckets_[t.storage_key()];
  auto it = bucket.find(key_of(t.namespaced ? ns : "", name));
  Document doc;
  const bool exists = it != bucket.end();
  if (!exists) {
    if (!create_if_missing) return unexpected(not_found(t, name));
    doc.SetObject();
  } else {
    doc.Parse(it->second.json.data(), it->second.json.size());
  }
  if (auto st = mutate(doc, exists); !st) return unexpected(st.error());
  if (!doc.IsObject())
    return unexpected(api_error(422, "Invalid", "the patched object is not a JSON object"));
  if (!exists) {
    Value& meta = ensure_object(doc, "metadata", doc.GetAllocator());
    set_string(meta, "name", name, doc.GetAllocator());
    return write_locked(t, ns, "", std::move(doc), false, dry_run, true);
  }
  return write_locked(t, ns, name, std::move(doc), status, dry_run, false);
}

Result<std::string> Store::write_locked(const ResourceType& t, const std::string& ns_in,
                                        const std::string& name_in, Document obj, bool status,
                                        bool dry_run, bool is_create) {
  if (!obj.IsObject())
    return unexpected(api_error(400, "BadRequest", "the body is not a JSON object"));
  auto& a = obj.GetAllocator();
  set_string(obj, "apiVersion", t.group_version(), a);
  set_string(obj, "kind", t.kind, a);
  ensure_object(obj, "metadata", a);
  // Adding or removing top-level members moves them: always re-find metadata.
  auto meta_of = [&obj]() -> Value& { return obj["metadata"]; };
  const std::string ns = t.namespaced ? ns_in : "";
  if (t.namespaced && ns.empty()) {
    return unexpected(
        api_error(400, "BadRequest", "the namespace of the provided object is missing"));
  }
  if (auto body_ns = json::get_string(meta_of(), "namespace");
      body_ns && !body_ns->empty() && t.namespaced && *body_ns != ns) {
    return unexpected(api_error(400, "BadRequest",
                                "the namespace of the provided object does not match the namespace "
                                "sent on the request"));
  }
  if (t.namespaced) {
    set_string(meta_of(), "namespace", ns, a);
  } else {
    remove_member(meta_of(), "namespace");
  }
  remove_member(meta_of(), "selfLink");

  auto& bucket = buckets_[t.storage_key()];
  const std::string now = now_rfc3339();

  if (is_create) {
    std::string name(json::string_or(meta_of(), "name"));
    if (name.empty()) {
      std::string gen(json::string_or(meta_of(), "generateName"));
      if (gen.empty()) {
        return unexpected(invalid(t, "", "metadata.name", "name or generateName is required"));
      }
      for (int i = 0; i < 8; ++i) {
        name = gen + random_string(5, "bcdfghjklmnpqrstvwxz2456789");
        if (!bucket.count(key_of(ns, name))) break;
      }
      set_string(meta_of(), "name", name, a);
    }
    if (!valid_dns_subdomain(name)) {
      return unexpected(
          invalid(t, name, "metadata.name",
                  "a lowercase RFC 1123 subdomain must consist of lower case "
                  "alphanumeric characters, '-' or '.', and must start and end with an "
                  "alphanumeric character"));
    }
    if (t.namespaced && !namespace_exists_locked(ns)) {
      Error e = api_error(404, "NotFound", fmt::format("namespaces \"{}\" not found", ns));
      e.details_name = ns;
      e.details_kind = "namespaces";
      return unexpected(e);
    }
    if (t.namespaced && namespace_terminating_locked(ns)) {
      // The NamespaceLifecycle admission's answer: details name the object and its resource,
      // with a NamespaceTerminating cause.
      Error e = api_error(
          403, "Forbidden",
          fmt::format("unable to create new content in namespace {} because it is being terminated",
                      ns));
      e.details_name = name;
      e.details_group = t.group;
      e.details_kind = t.resource;
      e.causes.push_back(ErrorCause{"NamespaceTerminating",
                                    fmt::format("namespace {} is being terminated", ns),
                                    "metadata.namespace"});
      return unexpected(e);
    }
    if (bucket.count(key_of(ns, name))) {
      std::string gr = t.group.empty() ? t.resource : t.resource + "." + t.group;
      Error e = api_error(409, "AlreadyExists", fmt::format("{} \"{}\" already exists", gr, name));
      e.details_name = name;
      e.details_group = t.group;
      e.details_kind = t.resource;
      return unexpected(e);
    }
    if (t.status_subresource && t.resource != "namespaces") remove_member(obj, "status");
    if (t.resource == "namespaces") {
      Value& st = ensure_object(obj, "status", a);
      set_string(st, "phase", "Active", a);
    }
    if (t.group.empty() && t.resource == "secrets" && !json::find(obj, "type")) {
      set_string(obj, "type", "Opaque", a);  // the API server's default
    }
    if (t.group.empty() && t.resource == "pods") {
      Value& st = ensure_object(obj, "status", a);  // as kube-apiserver's pod strategy does
      set_string(st, "phase", "Pending", a);
      set_string(st, "qosClass", "BestEffort", a);
    }
    Value& meta = meta_of();
    set_string(meta, "uid", random_uuid(), a);
    set_string(meta, "creationTimestamp", now, a);
    set_int(meta, "generation", 1, a);
    remove_member(meta, "deletionTimestamp");
    remove_member(meta, "deletionGracePeriodSeconds");
    if (dry_run) {
      set_string(meta, "resourceVersion", std::to_string(rv_), a);
      return json::write(obj);
    }
    const int64_t rv = ++rv_;
    set_string(meta, "resourceVersion", std::to_string(rv), a);
    std::string text = json::write(obj);
    bucket[key_of(ns, name)] = Entry{text, rv};
    record_locked("ADDED", t.storage_key(), ns, name, text, rv);
    return text;
  }

  // Update.
  const std::string name = name_in;
  const Value& meta = meta_of();
  if (auto body_name = json::get_string(meta, "name"); body_name && *body_name != name) {
    return unexpected(
        api_error(400, "BadRequest", "the name of the object does not match the name on the URL"));
  }
  auto it = bucket.find(key_of(ns, name));
  if (it == bucket.end()) return unexpected(not_found(t, name));
  Document old;
  old.Parse(it->second.json.data(), it->second.json.size());
  auto want_rv = json::get_string(meta, "resourceVersion");
  if (want_rv && !want_rv->empty() && *want_rv != std::to_string(it->second.rv)) {
    return unexpected(conflict(t, name));
  }
  Value& old_meta = old["metadata"];
  Document next;
  if (status) {
    // Only .status (and who manages it) changes through the status subresource.
    next.CopyFrom(old, next.GetAllocator());
    remove_member(next, "status");
    if (const Value* st = json::find(obj, "status")) {
      next.AddMember("status", Value(*st, next.GetAllocator()), next.GetAllocator());
    }
    Value& next_meta = next["metadata"];
    remove_member(next_meta, "managedFields");
    if (const Value* mf = json::find(meta, "managedFields")) {
      next_meta.AddMember("managedFields", Value(*mf, next.GetAllocator()), next.GetAllocator());
    }
  } else {
    next.CopyFrom(obj, next.GetAllocator());
    if (t.status_subresource) {
      remove_member(next, "status");
      if (const Value* st = json::find(old, "status")) {
        next.AddMember("status", Value(*st, next.GetAllocator()), next.GetAllocator());
      }
    }
    // Fields the server owns.
    Value& nm = next["metadata"];
    auto& na = next.GetAllocator();
    for (const char* f : {"uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generateName"}) {
      remove_member(nm, f);
      if (const Value* v = json::find(old_meta, f)) nm.AddMember(Value(f, na), Value(*v, na), na);
    }
    const bool deleting = json::find(old_meta, "deletionTimestamp") != nullptr;
    if (deleting) {
      auto before = finalizers_of(old);
      for (const auto& f : finalizers_of(next)) {
        if (std::find(before.begin(), before.end(), f) == before.end()) {
          Error e = invalid(t, name, "metadata.finalizers",
                            "no new finalizers can be added if the object is being deleted");
          e.causes.back().reason = "FieldValueForbidden";  // ValidateNoNewFinalizers
          return unexpected(e);
        }
      }
    }
  }
  Value& nm = next["metadata"];
  auto& na = next.GetAllocator();
  int64_t generation = json::get_int(old_meta, "generation").value_or(1);
  if (!status &&
      spec_fingerprint(next, t.status_subresource) != spec_fingerprint(old, t.status_subresource)) {
    ++generation;
  }
  set_int(nm, "generation", generation, na);
  set_string(nm, "resourceVersion", std::to_string(it->second.rv), na);
  if (next == old) return it->second.json;  // a no-op write changes nothing, not even the RV
  if (dry_run) return json::write(next);
  const int64_t rv = ++rv_;
  set_string(nm, "resourceVersion", std::to_string(rv), na);
  std::string text = json::write(next);
  std::string prev = std::move(it->second.json);
  it->second = Entry{text, rv};
  record_locked("MODIFIED", t.storage_key(), ns, name, text, rv, std::move(prev));
  if (json::find(nm, "deletionTimestamp") && finalizers_of(next).empty()) {
    auto r = delete_now_locked(t.storage_key(), key_of(ns, name), "Background");
    if (!r) return unexpected(r.error());
  }
  return text;
}

Result<std::string> Store::get(const ResourceType& t, const std::string& ns,
                               const std::string& name) const {
  std::lock_guard lock(mu_);
  auto b = buckets_.find(t.storage_key());
  if (b != buckets_.end()) {
    auto it = b->second.find(key_of(t.namespaced ? ns : "", name));
    if (it != b->second.end()) return it->second.json;
  }
  return unexpected(not_found(t, name));
}

Result<ListResult> Store::list(const ResourceType& t, const std::string& ns,
                               const ListQuery& q) const {
  auto labels = k8s::LabelSelector::parse(q.label_selector);
  if (!labels) return unexpected(api_error(400, "BadRequest", labels.error().message));
  auto fields = k8s::FieldSelector::parse(q.field_selector);
  if (!fields) return unexpected(api_error(400, "BadRequest", fields.error().message));
  for (const auto& r : fields->requirements()) {
    if (r.field != "metadata.name" && r.field != "metadata.namespace" &&
        std::find(t.selectable_fields.begin(), t.selectable_fields.end(), r.field) ==
            t.selectable_fields.end()) {
      return unexpected(
          api_error(400, "BadRequest", fmt::format("field label not supported: {}", r.field)));
    }
  }
  std::string after;
  if (!q.continue_token.empty()) {
    auto decoded = base64_decode(q.continue_token);
    if (!decoded || decoded->rfind("k:", 0) != 0) {
      return unexpected(api_error(400, "BadRequest", "continue key is not valid"));
    }
    after = decoded->substr(2);
  }
  std::lock_guard lock(mu_);
  ListResult out;
  out.resource_version = rv_;
  auto b = buckets_.find(t.storage_key());
  if (b == buckets_.end()) return out;
  const std::string prefix = t.namespaced && !ns.empty() ? ns + "/" : "";
  auto it = after.empty() ? b->second.lower_bound(prefix) : b->second.upper_bound(after);
  int64_t remaining = 0;
  std::string last;
  for (; it != b->second.end(); ++it) {
    if (!prefix.empty() && it->first.rfind(prefix, 0) != 0) break;
    if (!labels->empty()) {  // parse only when a label selector needs the labels
      auto obj = k8s::Object::parse(it->second.json);
      if (!obj || !labels->matches((*obj)->labels())) continue;
    }
    if (!fields->requirements().empty()) {
      Document d;
      d.Parse(it->second.json.data(), it->second.json.size());
      if (!fields->matches([&](const std::string& f) { return field_value(d, f); })) continue;
    }
    if (q.limit > 0 && static_cast<int64_t>(out.items.size()) >= q.limit) {
      ++remaining;
      continue;
    }
    out.items.push_back(it->second.json);
    last = it->first;
  }
  if (remaining > 0) {
    out.continue_token = base64_encode("k:" + last);
    // As kube-apiserver: a count only for an unfiltered list (it would not count what a selector
    // filters out).
    if (labels->empty() && fields->requirements().empty()) out.remaining = remaining;
  }
  return out;
}

Result<std::string> Store::remove(const ResourceType& t, const std::string& ns,
                                  const std::string& name, const DeleteRequest& req) {
  std::lock_guard lock(mu_);
  auto& bucket = buckets_[t.storage_key()];
  const std::string key = key_of(t.namespaced ? ns : "", name);
  auto it = bucket.find(key);
  if (it == bucket.end()) return unexpected(not_found(t, name));
  Document obj;
  obj.Parse(it->second.json.data(), it->second.json.size());
  auto& a = obj.GetAllocator();
  Value& meta = obj["metadata"];
  // kube-apiserver's BeforeDelete checks the preconditions first: a Conflict whose details name
  // the kind (GroupResource{gvk.Group, gvk.Kind}).
  auto precondition_failed = [&](std::string message) {
    Error e = api_error(409, "Conflict", std::move(message));
    e.details_name = name;
    e.details_group = t.group;
    e.details_kind = t.kind;
    return unexpected(e);
  };
  if (req.precondition_uid && *req.precondition_uid != json::string_or(meta, "uid")) {
    return precondition_failed(
        fmt::format("Precondition failed: UID in precondition: {}, UID in "
                    "object meta: {}",
                    *req.precondition_uid, json::string_or(meta, "uid")));
  }
  if (req.precondition_rv && *req.precondition_rv != std::to_string(it->second.rv)) {
    return precondition_failed(
        fmt::format("Precondition failed: ResourceVersion in precondition: "
                    "{}, ResourceVersion in object meta: {}",
                    *req.precondition_rv, it->second.rv));
  }
  if (req.dry_run) return it->second.json;
  const bool waits = req.grace_period_seconds != 0 && deletion_waits_locked(t.storage_key(), obj);
  auto finalizers = finalizers_of(obj);
  const bool foreground = req.propagation == "Foreground";
  const bool is_namespace = t.resource == "namespaces";
  if (waits || foreground || is_namespace) {
    const bool already = json::find(meta, "deletionTimestamp") != nullptr;
    if (!already) {
      if (is_namespace) set_string(ensure_object(obj, "status", a), "phase", "Terminating", a);
      Value& m = obj["metadata"];  // re-found: adding status may have moved it
      set_string(m, "deletionTimestamp", now_rfc3339(), a);
      set_int(m, "deletionGracePeriodSeconds", 0, a);
      const int64_t rv = ++rv_;
      set_string(m, "resourceVersion", std::to_string(rv), a);
      std::string text = json::write(obj);
      it->second = Entry{text, rv};
      record_locked("MODIFIED", t.storage_key(), t.namespaced ? ns : "", name, text, rv);
    }
    const std::string uid(json::string_or(obj["metadata"], "uid"));
    if (foreground) collect_garbage_locked(uid, "Background");
    if (is_namespace) {
      // The namespace controller: remove the content, then the namespace once it is empty.
      for (auto& [skey, b] : buckets_) {
        std::vector<std::string> keys;
        for (const auto& [k, e] : b) {
          if (k.rfind(name + "/", 0) == 0) keys.push_back(k);
        }
        for (const auto& k : keys)
          delete_or_mark_locked(skey, k);
      }
    }
    auto still = bucket.find(key);
    if (still == bucket.end()) return json::write(obj);  // its last content took it along
    const bool empty_ns = is_namespace && namespace_empty_locked(name);
    if (!waits && finalizers.empty() && (!is_namespace || empty_ns)) {
      return delete_now_locked(t.storage_key(), key, "Background");
    }
    return still->second.json;
  }
  return delete_now_locked(t.storage_key(), key,
                           req.propagation.empty() ? "Background" : req.propagation);
}

Result<std::string> Store::delete_now_locked(const std::string& storage_key, const std::string& key,
                                             const std::string& propagation) {
  auto& bucket = buckets_[storage_key];
  auto it = bucket.find(key);
  if (it == bucket.end()) return std::string();
  Document obj;
  obj.Parse(it->second.json.data(), it->second.json.size());
  const int64_t rv = ++rv_;
  set_string(obj["metadata"], "resourceVersion", std::to_string(rv), obj.GetAllocator());
  std::string text = json::write(obj);
  const std::string uid(json::string_or(obj["metadata"], "uid"));
  const std::string ns(json::string_or(obj["metadata"], "namespace"));
  const std::string name(json::string_or(obj["metadata"], "name"));
  bucket.erase(it);
  record_locked("DELETED", storage_key, ns, name, text, rv);
  collect_garbage_locked(uid, propagation);
  // A terminating namespace goes away with its last object.
  if (!ns.empty() && namespace_terminating_locked(ns) && namespace_empty_locked(ns)) {
    (void)delete_now_locked("/namespaces", ns, "Background");
  }
  return text;
}

void Store::collect_garbage_locked(const std::string& owner_uid, const std::string& propagation) {
  if (owner_uid.empty()) return;
  std::set<std::string> live;
  std::vector<std::pair<std::string, std::string>> dependents;  // storage key, object key
  for (const auto& [skey, b] : buckets_) {
    for (const auto& [k, e] : b) {
      Document d;
      d.Parse(e.json.data(), e.json.size());
      live.insert(std::string(json::string_or(*json::find(d, "metadata"), "uid")));
      auto owners = owner_uids(d);
      if (std::find(owners.begin(), owners.end(), owner_uid) != owners.end()) {
        dependents.emplace_back(skey, k);
      }
    }
  }
  for (const auto& [skey, k] : dependents) {
    auto& b = buckets_[skey];
    auto it = b.find(k);
    if (it == b.end()) continue;
    Document d;
    d.Parse(it->second.json.data(), it->second.json.size());
    if (propagation == "Orphan") {
      Value* refs = const_cast<Value*>(json::find_path(d, {"metadata", "ownerReferences"}));
      if (refs && refs->IsArray()) {
        for (auto r = refs->Begin(); r != refs->End();) {
          if (json::string_or(*r, "uid") == owner_uid) {
            r = refs->Erase(r);
          } else {
            ++r;
          }
        }
      }
      const int64_t rv = ++rv_;
      set_string(d["metadata"], "resourceVersion", std::to_string(rv), d.GetAllocator());
      it->second = Entry{json::write(d), rv};
      record_locked("MODIFIED", skey, std::string(json::string_or(d["metadata"], "namespace")),
                    std::string(json::string_or(d["metadata"], "name")), it->second.json, rv);
      continue;
    }
    bool other_owner_alive = false;
    for (const auto& o : owner_uids(d)) {
      if (o != owner_uid && live.count(o)) other_owner_alive = true;
    }
    if (!other_owner_alive) delete_or_mark_locked(skey, k);
  }
}

void Store::delete_or_mark_locked(const std::string& skey, const std::string& key) {
  auto& b = buckets_[skey];
  auto it = b.find(key);
  if (it == b.end()) return;
  Document d;
  d.Parse(it->second.json.data(), it->second.json.size());
  if (!deletion_waits_locked(skey, d)) {
    (void)delete_now_locked(skey, key, "Background");
    return;
  }
  if (json::find_path(d, {"metadata", "deletionTimestamp"})) return;  // already terminating
  Value& m = d["metadata"];
  set_string(m, "deletionTimestamp", now_rfc3339(), d.GetAllocator());
  set_int(m, "deletionGracePeriodSeconds", 0, d.GetAllocator());
  const int64_t rv = ++rv_;
  set_string(m, "resourceVersion", std::to_string(rv), d.GetAllocator());
  it->second = Entry{json::write(d), rv};
  record_locked("MODIFIED", skey, std::string(json::string_or(m, "namespace")),
                std::string(json::string_or(m, "name")), it->second.json, rv);
}

bool Store::deletion_waits_locked(const std::string& storage_key, const Value& obj) const {
  if (!finalizers_of(obj).empty()) return true;
  if (!graceful_pods_ || storage_key != "/pods") return false;
  const Value* node = json::find_path(obj, {"spec", "nodeName"});
  if (!node || !node->IsString() || node->GetStringLength() == 0) return false;
  const std::string_view phase =
      json::find(obj, "status") ? json::string_or(obj["status"], "phase") : "";
  return phase != "Succeeded" && phase != "Failed";  // a finished pod has nothing left to stop
}

void Store::set_graceful_pod_deletion(bool on) {
  std::lock_guard lock(mu_);
  graceful_pods_ = on;
}

Result<std::vector<StoreEvent>> Store::events_after(int64_t rv, const std::string& storage_key,
                                                    const std::string& ns) const {
  std::lock_guard lock(mu_);
  if (rv < history_start_rv_) {
    return unexpected(api_error(
        410, "Expired", fmt::format("too old resource version: {} ({})", rv, history_start_rv_)));
  }
  std::vector<StoreEvent> out;
  // The history is ordered by resourceVersion: start at the first newer event.
  auto first = std::partition_point(history_.begin(), history_.end(),
                                    [rv](const StoreEvent& e) { return e.rv <= rv; });
  for (auto it = first; it != history_.end(); ++it) {
    const StoreEvent& e = *it;
    if (!storage_key.empty() && e.storage_key != storage_key) continue;
    if (!ns.empty() && e.ns != ns) continue;
    out.push_back(e);
  }
  return out;
}

awaitable<void> Store::wait_for_change(int64_t rv, std::chrono::milliseconds max) {
  auto timer = std::make_shared<net::steady_timer>(co_await net::this_coro::executor);
  {
    std::lock_guard lock(mu_);
    if (rv_ > rv) co_return;
    timer->expires_after(max);
    waiters_.push_back(timer);
  }
  boost::system::error_code ec;
  co_await timer->async_wait(net::redirect_error(net::use_awaitable, ec));
  std::lock_guard lock(mu_);
  std::erase(waiters_, timer);
}

void Store::compact_history() {
  std::lock_guard lock(mu_);
  history_.clear();
  history_bytes_ = 0;
  history_start_rv_ = rv_;
}

}  // namespace nvdra::sim
