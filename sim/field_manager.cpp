#include "sim/field_manager.h"

#include <fmt/format.h>

#include <map>
#include <set>
#include <vector>

#include "sim/strategic_merge.h"

namespace nvdra::sim {
namespace {

using json::Value;
using Alloc = json::Document::AllocatorType;
using Path = std::vector<std::string>;  // FieldsV1 elements: f:…, k:…, v:…
using FieldSet = std::set<Path>;        // every node the manager owns

struct Entry {
  std::string manager, operation, api_version, time, subresource;
  FieldSet fields;
};

// ---- FieldsV1 <-> FieldSet ----

void read_fields_v1(const Value& node, Path& at, FieldSet& out) {
  if (!node.IsObject()) return;
  if (node.MemberCount() == 0 && !at.empty()) out.insert(at);
  for (auto m = node.MemberBegin(); m != node.MemberEnd(); ++m) {
    std::string key(m->name.GetString(), m->name.GetStringLength());
    if (key == ".") {
      if (!at.empty()) out.insert(at);
      continue;
    }
    at.push_back(std::move(key));
    read_fields_v1(m->value, at, out);
    at.pop_back();
  }
}

struct Tree {
  bool self = false;
  std::map<std::string, Tree> children;
};

void write_tree(const Tree& t, Value& out, Alloc& a) {
  out.SetObject();
  if (t.self && !t.children.empty()) out.AddMember(".", Value(rapidjson::kObjectType), a);
  for (const auto& [k, c] : t.children) {
    Value v;
    write_tree(c, v, a);
    out.AddMember(Value(k.c_str(), static_cast<rapidjson::SizeType>(k.size()), a), v, a);
  }
}

std::vector<Entry> read_entries(const Value* obj) {
  std::vector<Entry> out;
  const Value* mf = obj ? json::find_path(*obj, {"metadata", "managedFields"}) : nullptr;
  if (!mf || !mf->IsArray()) return out;
  for (const auto& e : mf->GetArray()) {
    Entry x{std::string(json::string_or(e, "manager")),
            std::string(json::string_or(e, "operation")),
            std::string(json::string_or(e, "apiVersion")),
            std::string(json::string_or(e, "time")),
            std::string(json::string_or(e, "subresource")),
            {}};
    if (const Value* f = json::find(e, "fieldsV1")) {
      Path at;
      read_fields_v1(*f, at, x.fields);
    }
    out.push_back(std::move(x));
  }
  return out;
}

void write_entries(json::Document& obj, const std::vector<Entry>& entries) {
  auto& a = obj.GetAllocator();
  Value list(rapidjson::kArrayType);
  for (const auto& e : entries) {
    if (e.fields.empty()) continue;  // a manager that owns nothing is forgotten
    Tree root;
    for (const auto& p : e.fields) {
      Tree* t = &root;
      for (const auto& el : p)
        t = &t->children[el];
      t->self = true;
    }
    Value fields;
    write_tree(root, fields, a);
    Value v(rapidjson::kObjectType);
    v.AddMember("manager", Value(e.manager.c_str(), a), a);
    v.AddMember("operation", Value(e.operation.c_str(), a), a);
    v.AddMember("apiVersion", Value(e.api_version.c_str(), a), a);
    v.AddMember("time", Value(e.time.c_str(), a), a);
    v.AddMember("fieldsType", "FieldsV1", a);
    v.AddMember("fieldsV1", fields, a);
    if (!e.subresource.empty()) v.AddMember("subresource", Value(e.subresource.c_str(), a), a);
    list.PushBack(v, a);
  }
  if (!obj.HasMember("metadata")) obj.AddMember("metadata", Value(rapidjson::kObjectType), a);
  Value& meta = obj["metadata"];
  meta.RemoveMember("managedFields");
  if (!list.Empty()) meta.AddMember("managedFields", list, a);
}

// ---- the fields an object sets ----

void collect(const Value& v, std::string_view field, Path& at, FieldSet& out);

void collect_list(const Value& v, std::string_view field, std::string_view parent, Path& at,
                  FieldSet& out) {
  const std::string_view key = list_merge_key(field, parent);
  bool keyed = !key.empty();
  for (const auto& e : v.GetArray())
    keyed = keyed && e.IsObject() && json::find(e, key);
  if (keyed) {
    for (const auto& e : v.GetArray()) {
      const std::string k =
          fmt::format("k:{{{}:{}}}", json::quote(key), json::write(*json::find(e, key)));
      at.push_back(k);
      out.insert(at);
      collect(e, field, at, out);
      at.pop_back();
    }
    return;
  }
  if (is_set_list(field)) {
    for (const auto& e : v.GetArray()) {
      at.push_back("v:" + json::write(e));
      out.insert(at);
      at.pop_back();
    }
    return;
  }
  out.insert(at);  // atomic
}

// `field` names the object `v` (or the list whose element `v` is): the parent of its lists.
void collect(const Value& v, std::string_view field, Path& at, FieldSet& out) {
  if (v.IsObject()) {
    if (v.MemberCount() == 0 && !at.empty()) out.insert(at);
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
      std::string_view name(m->name.GetString(), m->name.GetStringLength());
      at.push_back("f:" + std::string(name));
      if (m->value.IsObject()) {
        collect(m->value, name, at, out);
      } else if (m->value.IsArray()) {
        collect_list(m->value, name, field, at, out);
      } else {
        out.insert(at);
      }
      at.pop_back();
    }
    return;
  }
  if (!at.empty()) out.insert(at);
}

// The fields a write of `obj` covers: not apiVersion/kind or server-owned metadata, and .status
// only through the status subresource (when the type has one).
FieldSet fields_of(const Value& obj, const FieldManagerRequest& req) {
  FieldSet out;
  if (!obj.IsObject()) return out;
  Path at;
  for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) {
    std::string_view name(m->name.GetString(), m->name.GetStringLength());
    if (name == "apiVersion" || name == "kind") continue;
    const bool is_status = name == "status";
    if (req.type_has_status_subresource && is_status != req.status_write) continue;
    if (name == "metadata") {
      for (const char* f : {"labels", "annotations", "finalizers", "ownerReferences"}) {
        if (const Value* v = json::find(m->value, f)) {
          at = {"f:metadata", std::string("f:") + f};
          if (v->IsArray()) {
            collect_list(*v, f, "metadata", at, out);
          } else {
            collect(*v, f, at, out);
          }
        }
      }
      continue;
    }
    at = {"f:" + std::string(name)};
    if (m->value.IsObject()) {
      collect(m->value, name, at, out);
    } else if (m->value.IsArray()) {
      collect_list(m->value, name, "", at, out);
    } else {
      out.insert(at);
    }
  }
  return out;
}

// ---- navigation ----

bool element_matches(const Value& e, std::string_view el) {
  if (el.starts_with("v:")) {
    auto v = json::parse(el.substr(2));
    return v && *v == e;
  }
  auto k = json::parse(el.substr(2));
  if (!k || !k->IsObject() || !e.IsObject()) return false;
  for (auto m = k->MemberBegin(); m != k->MemberEnd(); ++m) {
    const Value* x =
        json::find(e, std::string_view(m->name.GetString(), m->name.GetStringLength()));
    if (!x || !(*x == m->value)) return false;
  }
  return true;
}

const Value* resolve(const Value& root, const Path& p) {
  const Value* cur = &root;
  for (const auto& el : p) {
    if (el.starts_with("f:")) {
      cur = cur->IsObject() ? json::find(*cur, std::string_view(el).substr(2)) : nullptr;
    } else if (cur->IsArray()) {
      const Value* found = nullptr;
      for (const auto& e : cur->GetArray()) {
        if (element_matches(e, el)) {
          found = &e;
          break;
        }
      }
      cur = found;
    } else {
      cur = nullptr;
    }
    if (!cur) return nullptr;
  }
  return cur;
}

void erase(Value& root, const Path& p) {
  if (p.empty()) return;
  Path parent_path(p.begin(), p.end() - 1);
  Value* parent = const_cast<Value*>(resolve(root, parent_path));
  if (!parent) return;
  const std::string& last = p.back();
  if (last.starts_with("f:") && parent->IsObject()) {
    parent->RemoveMember(last.substr(2).c_str());
  } else if (parent->IsArray()) {
    for (auto e = parent->Begin(); e != parent->End(); ++e) {
      if (element_matches(*e, last)) {
        parent->Erase(e);
        break;
      }
    }
  }
}

// "spec.containers[name=\"app\"].image", the way kube-apiserver prints a conflicting field.
std::string path_string(const Path& p) {
  std::string s;
  for (const auto& el : p) {
    if (el.starts_with("f:")) {
      s += "." + el.substr(2);
    } else if (el.starts_with("k:")) {
      auto k = json::parse(std::string_view(el).substr(2));
      std::string inner;
      if (k && k->IsObject()) {
        for (auto m = k->MemberBegin(); m != k->MemberEnd(); ++m)
          inner += (inner.empty() ? "" : ",") + std::string(m->name.GetString()) + "=" +
                   json::write(m->value);
      }
      s += "[" + inner + "]";
    } else {
      s += "[" + el.substr(2) + "]";
    }
  }
  return s;
}

bool owns_or_below(const FieldSet& s, const Path& p) {
  auto it = s.lower_bound(p);
  return it != s.end() && it->size() >= p.size() && std::equal(p.begin(), p.end(), it->begin());
}

Entry& entry_for(std::vector<Entry>& entries, const FieldManagerRequest& req, const char* op) {
  const std::string sub = req.status_write ? "status" : "";
  for (auto& e : entries) {
    if (e.manager == req.manager && e.operation == op && e.subresource == sub) {
      e.api_version = req.api_version;
      e.time = req.time;
      return e;
    }
  }
  entries.push_back(Entry{req.manager, op, req.api_version, req.time, sub, {}});
  return entries.back();
}

}  // namespace

void track_update(json::Document& next, const json::Value* old, const FieldManagerRequest& req) {
  std::vector<Entry> entries = read_entries(old);
  const FieldSet now = fields_of(next, req);
  FieldSet changed;
  for (const auto& p : now) {
    const Value* before = old ? resolve(*old, p) : nullptr;
    const Value* after = resolve(next, p);
    // Objects are containers: only their leaves and list elements carry ownership changes.
    if (!before || (after && !after->IsObject() && !(*before == *after)) ||
        (after && after->IsObject() && after->MemberCount() == 0 && !(*before == *after)))
      changed.insert(p);
  }
  const FieldSet was = old ? fields_of(*old, req) : FieldSet{};
  for (auto& e : entries) {
    if (e.subresource != (req.status_write ? "status" : "") && req.type_has_status_subresource)
      continue;
    for (const auto& p : was) {
      if (!now.contains(p)) e.fields.erase(p);
    }
    for (const auto& p : changed)
      e.fields.erase(p);
  }
  if (!changed.empty()) {
    Entry& mine = entry_for(entries, req, "Update");
    mine.fields.insert(changed.begin(), changed.end());
  }
  write_entries(next, entries);
}

Status server_side_apply(json::Document& live, const json::Value& config, bool force,
                         const FieldManagerRequest& req) {
  if (!config.IsObject())
    return unexpected(ErrorCode::kInvalidArgument, "an apply configuration must be an object");
  std::vector<Entry> entries = read_entries(&live);
  const FieldSet applied = fields_of(config, req);
  const std::string sub = req.status_write ? "status" : "";

  // Conflicts: fields another manager owns whose live value the configuration would change.
  std::vector<std::pair<Entry*, Path>> conflicts;
  for (const auto& p : applied) {
    const Value* want = resolve(config, p);
    if (!want || (want->IsObject() && want->MemberCount() > 0)) continue;
    const Value* have = resolve(live, p);
    if (!have || *have == *want) continue;
    for (auto& e : entries) {
      if ((e.manager == req.manager && e.subresource == sub) || !e.fields.contains(p)) continue;
      conflicts.emplace_back(&e, p);
    }
  }
  if (!conflicts.empty() && !force) {
    std::vector<ErrorCause> causes;
    std::string list;
    for (const auto& [e, p] : conflicts) {
      causes.push_back(
          ErrorCause{"FieldManagerConflict",
                     fmt::format("conflict with \"{}\" using {}", e->manager, e->api_version),
                     path_string(p)});
      list += fmt::format("{}conflict with \"{}\" using {}: {}", list.empty() ? "" : "\n- ",
                          e->manager, e->api_version, path_string(p));
    }
    Error err(ErrorCode::kApi, fmt::format("Apply failed with {} conflict{}: {}", conflicts.size(),
                                           conflicts.size() == 1 ? "" : "s", list));
    err.http_status = 409;
    err.reason = "Conflict";
    err.causes = std::move(causes);
    return unexpected(err);
  }
  for (const auto& [e, p] : conflicts)
    e->fields.erase(p);  // forced: the field changes hands

  // Fields this manager applied before and dropped now go, unless someone else holds them.
  Entry& mine = entry_for(entries, req, "Apply");
  for (const auto& p : mine.fields) {
    if (applied.contains(p)) continue;
    bool held = false;
    for (const auto& e : entries)
      held = held || (&e != &mine && owns_or_below(e.fields, p));
    if (!held) erase(live, p);
  }
  mine.fields = applied;

  json::Document patch;
  patch.CopyFrom(config, patch.GetAllocator());
  if (req.type_has_status_subresource && !req.status_write) patch.RemoveMember("status");
  if (auto meta = patch.FindMember("metadata"); meta != patch.MemberEnd() && meta->value.IsObject())
    meta->value.RemoveMember("managedFields");
  if (auto st = strategic_merge_patch(live, patch); !st) return st;
  write_entries(live, entries);
  return ok();
}

}  // namespace nvdra::sim
