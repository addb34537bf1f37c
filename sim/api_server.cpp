#include "sim/api_server.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "base/json_patch.h"
#include "base/log.h"
#include "base/random.h"
#include "base/url.h"
#include "k8sclient/cache/leader_election.h"  // parse_time
#include "k8sclient/object.h"
#include "k8sclient/rest/status.h"
#include "sim/builtin_validation.h"
#include "sim/conversion.h"
#include "sim/field_manager.h"
#include "sim/pod_binding.h"
#include "sim/protobuf.h"
#include "sim/query_params.h"
#include "sim/rbac.h"
#include "sim/schema.h"
#include "sim/strategic_merge.h"
#include "sim/table_columns.h"
#include "sim/yaml_json.h"

namespace nvdra::sim {
namespace {

using Reply = ApiServer::Reply;
using Route = ApiServer::Route;
using json::Value;

Headers json_headers() {
  return Headers{{"Content-Type", "application/json"}};
}

Reply json_reply(int status, std::string body) {
  return Reply{status, json_headers(), std::move(body)};
}

Reply error_reply(const Error& e) {
  int code = e.http_status ? e.http_status : (e.code == ErrorCode::kInvalidArgument ? 400 : 500);
  Error copy = e;
  copy.http_status = code;
  if (copy.reason.empty()) copy.reason = std::string(k8s::reason_for_http_status(code));
  return json_reply(code, status_body(copy));
}

Reply error_reply(int code, std::string_view reason, std::string message) {
  return error_reply(api_error(code, reason, std::move(message)));
}

std::vector<std::string> split_path(std::string_view p) {
  std::vector<std::string> out;
  while (!p.empty()) {
    if (p.front() == '/') {
      p.remove_prefix(1);
      continue;
    }
    size_t slash = p.find('/');
    out.push_back(url_decode(p.substr(0, slash)));
    if (slash == std::string_view::npos) break;
    p.remove_prefix(slash);
  }
  return out;
}

std::string verbs_json(bool status) {
  return status ? R"(["get","patch","update"])"
                : R"(["create","delete","deletecollection","get","list","patch","update","watch"])";
}

std::string resource_list(const ResourceRegistry& reg, const std::string& group,
                          const std::string& version) {
  std::string gv = group.empty() ? version : group + "/" + version;
  std::string out = R"({"kind":"APIResourceList","apiVersion":"v1","groupVersion":)" +
                    json::quote(gv) + R"(,"resources":[)";
  bool first = true;
  for (const auto& t : reg.all()) {
    if (t->group != group || t->version != version) continue;
    if (!first) out += ",";
    first = false;
    out += fmt::format(
        R"({{"name":{},"singularName":{},"namespaced":{},"kind":{},"verbs":{},"shortNames":{},"categories":{}}})",
        json::quote(t->resource), json::quote(t->singular), t->namespaced ? "true" : "false",
        json::quote(t->kind), verbs_json(false), json::quote_array(t->short_names),
        json::quote_array(t->categories));
    if (t->status_subresource) {
      out += fmt::format(R"(,{{"name":{},"singularName":"","namespaced":{},"kind":{},"verbs":{}}})",
                         json::quote(t->resource + "/status"), t->namespaced ? "true" : "false",
                         json::quote(t->kind), verbs_json(true));
    }
  }
  return out + "]}";
}

std::string group_json(const std::string& name, const std::vector<std::string>& versions) {
  std::string vs;
  for (size_t i = 0; i < versions.size(); ++i) {
    if (i) vs += ",";
    vs += fmt::format(R"({{"groupVersion":{},"version":{}}})",
                      json::quote(name + "/" + versions[i]), json::quote(versions[i]));
  }
  return fmt::format(
      R"({{"name":{},"versions":[{}],"preferredVersion":{{"groupVersion":{},"version":{}}}}})",
      json::quote(name), vs, json::quote(name + "/" + versions[0]), json::quote(versions[0]));
}

// Enough OpenAPI v3 for kubectl: each resource's PATCH operation, tagged with its
// group/version/kind and declaring the fieldValidation query parameter, which tells kubectl that
// the server validates fields itself (so it skips client-side schema validation).
std::string openapi_v3(const ResourceRegistry& reg, const std::string& group,
                       const std::string& version) {
  std::string out =
      R"({"openapi":"3.0.0","info":{"title":"Kubernetes","version":"v1.34.0"},"paths":{)";
  bool first = true;
  for (const auto& t : reg.all()) {
    if (t->group != group || t->version != version) continue;
    std::string base = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
    std::string path =
        base + (t->namespaced ? "/namespaces/{namespace}/" : "/") + t->resource + "/{name}";
    if (!first) out += ",";
    first = false;
    out +=
        json::quote(path) +
        R"(:{"patch":{"parameters":[{"name":"fieldValidation","in":"query","schema":{"type":"string"}},{"name":"fieldManager","in":"query","schema":{"type":"string"}}],"x-kubernetes-action":"patch","x-kubernetes-group-version-kind":{"group":)" +
        json::quote(group) + R"(,"version":)" + json::quote(version) + R"(,"kind":)" +
        json::quote(t->kind) + "}}}";
  }
  return out + R"(},"components":{"schemas":{}}})";
}

bool wants_table(const httpd::Request& req) {
  auto accept = req.header("Accept");
  return accept && accept->find("as=Table") != std::string_view::npos;
}

// "5d3h", "7m", "42s": the server-side rendering kube-apiserver uses for the Age column.
std::string human_age(std::string_view created) {
  auto t = k8s::parse_time(created);
  if (!t) return "<unknown>";
  auto s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - *t)
               .count();
  if (s < 0) s = 0;
  if (s < 120) return fmt::format("{}s", s);
  if (s < 600) return fmt::format("{}m{}s", s / 60, s % 60);
  if (s < 3 * 3600) return fmt::format("{}m", s / 60);
  if (s < 8 * 3600) return fmt::format("{}h{}m", s / 3600, (s % 3600) / 60);
  if (s < 2 * 86400) return fmt::format("{}h", s / 3600);
  if (s < 8 * 86400) return fmt::format("{}d{}h", s / 86400, (s % 86400) / 3600);
  return fmt::format("{}d", s / 86400);
}

// Evaluates a printer column's simple JSONPath (".status.phase", ".spec.items[0].name").
const Value* eval_path(const Value& obj, std::string_view path) {
  const Value* cur = &obj;
  if (!path.empty() && path.front() == '{' && path.back() == '}')
    path = path.substr(1, path.size() - 2);
  while (!path.empty() && cur) {
    if (path.front() == '.') {
      path.remove_prefix(1);
      size_t end = path.find_first_of(".[");
      std::string key(path.substr(0, end));
      cur = json::find(*cur, key);
      path = end == std::string_view::npos ? std::string_view() : path.substr(end);
    } else if (path.front() == '[') {
      size_t close = path.find(']');
      if (close == std::string_view::npos || !cur->IsArray()) return nullptr;
      size_t idx = std::strtoul(std::string(path.substr(1, close - 1)).c_str(), nullptr, 10);
      cur = idx < cur->Size() ? &(*cur)[static_cast<rapidjson::SizeType>(idx)] : nullptr;
      path.remove_prefix(close + 1);
    } else {
      return nullptr;
    }
  }
  return cur;
}

std::string cell_json(const Value* v, const PrinterColumn& c) {
  if (v == nullptr || v->IsNull()) return "null";
  if (c.type == "date" && v->IsString()) return json::quote(human_age(v->GetString()));
  if (v->IsString() || v->IsNumber() || v->IsBool()) return json::write(*v);
  return json::quote(json::write(*v));
}

// A meta.k8s.io/v1 Table: Name, then the type's printer columns (Age when it has none), plus the
// full objects so `-o wide`, custom columns and `-o yaml` keep working.
std::string table_json(const ResourceType& t, const std::vector<std::string>& items, int64_t rv,
                       const std::string& cont) {
  static const std::vector<PrinterColumn> kAge = {
      {"Age", "date", "", "Time since the object was created", ".metadata.creationTimestamp", 0}};
  const auto& cols = t.printer_columns.empty() ? kAge : t.printer_columns;
  std::string out =
      R"({"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":)" +
      json::quote(std::to_string(rv)) + (cont.empty() ? "" : ",\"continue\":" + json::quote(cont)) +
      R"(},"columnDefinitions":[{"name":"Name","type":"string","format":"name","description":"Name of the object","priority":0})";
  for (const auto& c : cols) {
    // Dates are rendered as ages by the server, so kubectl gets strings.
    out += fmt::format(R"(,{{"name":{},"type":{},"format":{},"description":{},"priority":{}}})",
                       json::quote(c.name), json::quote(c.type == "date" ? "string" : c.type),
                       json::quote(c.format), json::quote(c.description), c.priority);
  }
  out += R"(],"rows":[)";
  for (size_t i = 0; i < items.size(); ++i) {
    auto doc = json::parse(items[i]);
    if (!doc) continue;
    if (i) out += ",";
    out += R"({"cells":[)" + json::quote(json::string_or(*json::find(*doc, "metadata"), "name"));
    for (const auto& c : cols) {
      out += "," + (c.json_path.starts_with("@") ? json::quote(computed_cell(c.json_path, *doc))
                                                 : cell_json(eval_path(*doc, c.json_path), c));
    }
    out += R"(],"object":)" + items[i] + "}";
  }
  return out + "]}";
}

std::string list_json(const ResourceType& t, const ListResult& r) {
  std::string out = R"({"kind":)" + json::quote(t.kind + "List") + R"(,"apiVersion":)" +
                    json::quote(t.group_version()) + R"(,"metadata":{"resourceVersion":)" +
                    json::quote(std::to_string(r.resource_version));
  if (!r.continue_token.empty()) out += ",\"continue\":" + json::quote(r.continue_token);
  if (r.remaining) out += fmt::format(",\"remainingItemCount\":{}", *r.remaining);
  out += R"(},"items":[)";
  for (size_t i = 0; i < r.items.size(); ++i) {
    if (i) out += ",";
    out += r.items[i];
  }
  return out + "]}";
}

// A boolean query parameter as kube-apiserver decodes it (runtime.Convert_Slice_string_To_bool):
// absent, "0" and "false" in any case are false; every other value ("t", "True", "yes", even "")
// is true.
bool truthy(const std::optional<std::string>& v) {
  if (!v) return false;
  std::string lower = *v;
  std::ranges::transform(lower, lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return !(lower == "0" || lower == "false");
}

// A 422 for bad request options, as kube-apiserver answers: details name the options' kind in
// meta.k8s.io (CreateOptions, ListOptions, ...), one cause per bad field.
Error options_invalid(std::string_view kind, std::vector<ErrorCause> causes) {
  std::string list;
  for (const auto& c : causes)
    list += (list.empty() ? "" : ", ") + c.field + ": " + c.message;
  Error e = api_error(422, "Invalid",
                      fmt::format("{}.meta.k8s.io \"\" is invalid: {}", kind,
                                  causes.size() == 1 ? list : "[" + list + "]"));
  e.details_group = "meta.k8s.io";
  e.details_kind = std::string(kind);
  e.causes = std::move(causes);
  return e;
}

ErrorCause not_supported(std::string field, std::string_view value, std::string_view supported) {
  return ErrorCause{
      "FieldValueNotSupported",
      fmt::format("Unsupported value: {}: supported values: {}", json::quote(value), supported),
      std::move(field)};
}

ErrorCause forbidden(std::string field, std::string_view why) {
  return ErrorCause{"FieldValueForbidden", fmt::format("Forbidden: {}", why), std::move(field)};
}

// dryRun, as ValidateDryRun: only "All".
void check_dry_run(const httpd::Request& req, std::vector<ErrorCause>& causes) {
  if (auto v = req.query_param("dryRun"); v && *v != "All")
    causes.push_back(not_supported("dryRun", *v, "\"All\""));
}

// The options of a write (create, update, patch): fieldManager, dryRun and fieldValidation, as
// ValidateCreateOptions / ValidateUpdateOptions / ValidatePatchOptions check them.
std::vector<ErrorCause> write_option_causes(const httpd::Request& req) {
  std::vector<ErrorCause> causes;
  const std::string manager = req.query_param("fieldManager").value_or("");
  constexpr size_t kFieldManagerMaxLength = 128;
  if (manager.size() > kFieldManagerMaxLength) {
    causes.push_back(
        {"FieldValueTooLong",
         fmt::format("Too long: may not be more than {} bytes", kFieldManagerMaxLength),
         "fieldManager"});
  }
  for (size_t i = 0; i < manager.size(); ++i) {
    const auto c = static_cast<unsigned char>(manager[i]);
    if (c < 0x20 || c == 0x7f) {
      causes.push_back(
          {"FieldValueInvalid",
           fmt::format("Invalid value: {}: all characters must be printable", json::quote(manager)),
           fmt::format("fieldManager[{}]", i)});
    }
  }
  check_dry_run(req, causes);
  if (auto v = req.query_param("fieldValidation");
      v && *v != "" && *v != "Ignore" && *v != "Strict" && *v != "Warn") {
    causes.push_back(
        not_supported("fieldValidation", *v, "\"\", \"Ignore\", \"Strict\", \"Warn\""));
  }
  return causes;
}

// A list's or watch's options, as ValidateListOptions checks them (kube-apiserver 1.37, its
// WatchList feature on).
Status check_list_options(const httpd::Request& req, bool watch) {
  std::vector<ErrorCause> causes;
  const std::string match = req.query_param("resourceVersionMatch").value_or("");
  const bool has_continue = !req.query_param("continue").value_or("").empty();
  const bool send_initial_events = req.query_param("sendInitialEvents").has_value();
  if (watch) {
    if (send_initial_events && match != "NotOlderThan") {
      causes.push_back(forbidden("resourceVersionMatch",
                                 "sendInitialEvents requires setting resourceVersionMatch to "
                                 "NotOlderThan"));
    }
    if (!match.empty()) {
      if (!send_initial_events) {
        causes.push_back(forbidden("resourceVersionMatch",
                                   "resourceVersionMatch is forbidden for watch unless "
                                   "sendInitialEvents is provided"));
      }
      if (match != "NotOlderThan")
        causes.push_back(not_supported("resourceVersionMatch", match, "\"NotOlderThan\""));
      if (has_continue) {
        causes.push_back(forbidden("resourceVersionMatch",
                                   "resourceVersionMatch is forbidden when continue is provided"));
      }
    }
  } else {
    if (!match.empty()) {
      const std::string rv = req.query_param("resourceVersion").value_or("");
      if (rv.empty()) {
        causes.push_back(forbidden("resourceVersionMatch",
                                   "resourceVersionMatch is forbidden unless resourceVersion is "
                                   "provided"));
      }
      if (has_continue) {
        causes.push_back(forbidden("resourceVersionMatch",
                                   "resourceVersionMatch is forbidden when continue is provided"));
      }
      if (match != "Exact" && match != "NotOlderThan") {
        causes.push_back(
            not_supported("resourceVersionMatch", match, "\"Exact\", \"NotOlderThan\", \"\""));
      }
      if (match == "Exact" && rv == "0") {
        causes.push_back(forbidden("resourceVersionMatch",
                                   "resourceVersionMatch \"exact\" is forbidden for "
                                   "resourceVersion \"0\""));
      }
    }
    if (send_initial_events)
      causes.push_back(forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"));
  }
  if (causes.empty()) return ok();
  return unexpected(options_invalid("ListOptions", std::move(causes)));
}

// kube-apiserver's answer to a DELETE that removed the object at once (its registry's
// finalizeDelete): a Status Success whose details name the resource as the kind. Pods and Services
// return the deleted object instead (ReturnDeletedObject), and an object that stays (finalizers,
// a graceful or a namespace's deletion) is returned as it now is: nullopt for those.
std::optional<std::string> deleted_status(const ResourceType& t, const std::string& deleted) {
  if (t.group.empty() && (t.resource == "pods" || t.resource == "services")) return std::nullopt;
  auto doc = json::parse(deleted);
  if (!doc || !doc->IsObject()) return std::nullopt;
  const Value* meta = json::find(*doc, "metadata");
  if (!meta || json::find(*meta, "deletionTimestamp")) return std::nullopt;
  if (const Value* f = json::find(*meta, "finalizers"); f && f->IsArray() && !f->Empty())
    return std::nullopt;
  std::string details = R"("name":)" + json::quote(json::string_or(*meta, "name"));
  if (!t.group.empty()) details += R"(,"group":)" + json::quote(t.group);
  details += R"(,"kind":)" + json::quote(t.resource) + R"(,"uid":)" +
             json::quote(json::string_or(*meta, "uid"));
  return R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{)" +
         details + "}}";
}

// DeleteOptions from the query and the body; a malformed number is a 400 and bad values a 422,
// as kube-apiserver's decoding and ValidateDeleteOptions answer.
Result<DeleteRequest> delete_request(const httpd::Request& req) {
  DeleteRequest d;
  std::optional<std::string> propagation = req.query_param("propagationPolicy");
  auto grace = int_param(req, "gracePeriodSeconds");
  if (!grace) return unexpected(grace.error());
  d.grace_period_seconds = *grace;
  std::vector<ErrorCause> causes;
  check_dry_run(req, causes);
  d.dry_run = req.query_param("dryRun") == "All";
  if (!req.body.empty()) {
    if (auto doc = json::parse(req.body); doc && doc->IsObject()) {
      if (auto p = json::get_string(*doc, "propagationPolicy")) propagation = std::string(*p);
      if (auto g = json::get_int(*doc, "gracePeriodSeconds")) d.grace_period_seconds = *g;
      if (const Value* pre = json::find(*doc, "preconditions")) {
        if (auto u = json::get_string(*pre, "uid")) d.precondition_uid = std::string(*u);
        if (auto r = json::get_string(*pre, "resourceVersion")) d.precondition_rv = std::string(*r);
      }
      if (const Value* dr = json::find(*doc, "dryRun"); dr && dr->IsArray() && !dr->Empty()) {
        d.dry_run = true;
      }
    }
  }
  const auto orphan = req.query_param("orphanDependents");
  if (orphan && propagation) {
    causes.push_back({"FieldValueInvalid",
                      fmt::format("Invalid value: {}: orphanDependents and deletionPropagation "
                                  "cannot be both set",
                                  json::quote(*propagation)),
                      "propagationPolicy"});
  }
  if (propagation && *propagation != "Foreground" && *propagation != "Background" &&
      *propagation != "Orphan") {
    causes.push_back(not_supported("propagationPolicy", *propagation,
                                   "\"Foreground\", \"Background\", \"Orphan\", \"nil\""));
  }
  if (!causes.empty()) return unexpected(options_invalid("DeleteOptions", std::move(causes)));
  if (propagation) d.propagation = *propagation;
  if (truthy(orphan)) d.propagation = "Orphan";
  return d;
}

// A patch's result may be larger or deeper than any request could carry (one add per level, or
// copies): it must fit what a request could have stored.
Status within_limits(const Value& obj, size_t max_bytes) {
  if (json::deeper_than(obj, json::kMaxDepth)) {
    return unexpected(
        api_error(422, "Invalid",
                  fmt::format("the patched object nests deeper than {} levels", json::kMaxDepth)));
  }
  if (size_t size = json::write(obj).size(); size > max_bytes) {
    return unexpected(api_error(
        413, "RequestEntityTooLarge",
        fmt::format("Request entity too large: the patched object is {} bytes, the limit is {}",
                    size, max_bytes)));
  }
  return ok();
}

// Checks an object against its type's rules (built-in validation, a custom resource's schema,
// a CRD's rules); the 422 lists every cause, as kube-apiserver does.
Status check_schema(const ResourceType& t, json::Document& obj, const Value* old) {
  auto builtin = validate_builtin(t, obj, old);
  if (!builtin) return unexpected(builtin.error());
  std::vector<ErrorCause> causes = std::move(*builtin);
  if (t.schema) {
    auto more = validate_custom_resource(obj, *t.schema, old);
    causes.insert(causes.end(), more.begin(), more.end());
  } else if (t.group == "apiextensions.k8s.io" && t.resource == "customresourcedefinitions") {
    auto more = validate_crd_rules(obj);
    causes.insert(causes.end(), more.begin(), more.end());
  }
  if (causes.empty()) return ok();
  const Value* meta = json::find(obj, "metadata");
  std::string name(meta ? json::string_or(*meta, "name") : "");
  std::string list;
  for (const auto& c : causes)
    list += (list.empty() ? "" : ", ") + c.field + ": " + c.message;
  Error e = api_error(422, "Invalid",
                      fmt::format("{}.{} \"{}\" is invalid: [{}]", t.kind, t.group, name, list));
  e.details_name = name;
  e.details_group = t.group;
  e.details_kind = t.kind;
  e.causes = std::move(causes);
  return unexpected(e);
}

}  // namespace

std::string status_body(const Error& e) {
  std::string out =
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":)" +
      json::quote(e.message) + R"(,"reason":)" + json::quote(e.reason);
  if (!e.details_name.empty() || !e.details_kind.empty() || !e.causes.empty() || e.retry_after) {
    out += R"(,"details":{)";
    std::vector<std::string> parts;
    if (!e.details_name.empty()) parts.push_back("\"name\":" + json::quote(e.details_name));
    if (!e.details_group.empty()) parts.push_back("\"group\":" + json::quote(e.details_group));
    if (!e.details_kind.empty()) parts.push_back("\"kind\":" + json::quote(e.details_kind));
    if (!e.causes.empty()) {
      std::string c = "\"causes\":[";
      for (size_t i = 0; i < e.causes.size(); ++i) {
        if (i) c += ",";
        c += "{\"reason\":" + json::quote(e.causes[i].reason) +
             ",\"message\":" + json::quote(e.causes[i].message) +
             ",\"field\":" + json::quote(e.causes[i].field) + "}";
      }
      parts.push_back(c + "]");
    }
    if (e.retry_after)
      parts.push_back(fmt::format("\"retryAfterSeconds\":{}", e.retry_after->count()));
    for (size_t i = 0; i < parts.size(); ++i)
      out += (i ? "," : "") + parts[i];
    out += "}";
  }
  return out + fmt::format(R"(,"code":{}}})", e.http_status);
}

namespace {
std::string verb_of(const httpd::Request& req, const Route& r) {
  const std::string& m = req.method;
  if (m == "GET")
    return r.name.empty() ? (truthy(req.query_param("watch")) ? "watch" : "list") : "get";
  if (m == "POST") return "create";
  if (m == "PUT") return "update";
  if (m == "PATCH") return "patch";
  if (m == "DELETE") return r.name.empty() ? "deletecollection" : "delete";
  return m;
}
}  // namespace

ApiServer::ApiServer(Store& store, ResourceRegistry& registry, ApiServerOptions options)
    : store_(store),
      registry_(registry),
      opt_(std::move(options)),
      authn_(opt_.admin_token, opt_.token_secret.empty() ? random_secret() : opt_.token_secret,
             store, registry),
      authz_(store, registry) {}

Result<Faults> parse_faults(std::string_view text, const Faults& base) {
  auto doc = json::parse(text);
  if (!doc || !doc->IsObject())
    return unexpected(ErrorCode::kInvalidArgument, "faults must be a JSON object");
  Faults f = base;
  for (auto it = doc->MemberBegin(); it != doc->MemberEnd(); ++it) {
    std::string_view k(it->name.GetString());
    const Value& v = it->value;
    if (k == "injected") continue;  // read-only (a GET's answer may be PUT back)
    if (k == "spareAdmin") {
      if (!v.IsBool())
        return unexpected(ErrorCode::kInvalidArgument, "faults.spareAdmin: must be a boolean");
      f.spare_admin = v.GetBool();
      continue;
    }
    if (!v.IsNumber())
      return unexpected(ErrorCode::kInvalidArgument, fmt::format("faults.{}: must be a number", k));
    double d = v.GetDouble();
    if (k == "watchCloseSeconds" && d >= 0) {
      f.watch_close_seconds = d;
    } else if (k == "errorRate" && d >= 0 && d <= 1) {
      f.error_rate = d;
    } else if (k == "errorCode" && (d == 429 || d == 500 || d == 503)) {
      f.error_code = static_cast<int>(d);
    } else if (k == "latencyMs" && d >= 0 && d <= 60000) {
      f.latency_ms = static_cast<int>(d);
    } else if (k == "clientQPS" && d >= 0) {
      f.client_qps = d;
    } else if (k == "goneOnResume" && d >= 0) {
      f.gone_on_resume = static_cast<int>(d);
    } else {
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("faults.{}: unknown field or value out of range", k));
    }
  }
  return f;
}

std::string faults_json(const Faults& f) {
  return fmt::format(
      R"({{"watchCloseSeconds":{},"errorRate":{},"errorCode":{},"latencyMs":{},"clientQPS":{},"goneOnResume":{},"spareAdmin":{},"injected":{}}})",
      f.watch_close_seconds, f.error_rate, f.error_code, f.latency_ms, f.client_qps,
      f.gone_on_resume, f.spare_admin, f.injected);
}

void ApiServer::set_faults(const Faults& f) {
  std::lock_guard lock(faults_mu_);
  faults_ = f;
  client_qps_.clear();
  force_gone_ = f.gone_on_resume;
}

Faults ApiServer::faults() const {
  std::lock_guard lock(faults_mu_);
  Faults f = faults_;
  f.gone_on_resume = force_gone_.load();
  f.injected = injected_;
  return f;
}

std::optional<Reply> ApiServer::injected_fault(const httpd::Request& req, bool admin) {
  std::lock_guard lock(faults_mu_);
  if (admin && faults_.spare_admin) return std::nullopt;
  if (faults_.client_qps > 0) {
    auto& bucket = client_qps_[std::string(req.header("Authorization").value_or(""))];
    if (!bucket)
      bucket = std::make_unique<TokenBucket>(faults_.client_qps,
                                             std::max(1, static_cast<int>(faults_.client_qps)));
    if (!bucket->try_take(std::chrono::steady_clock::now())) {
      ++injected_;
      Error e = api_error(429, "TooManyRequests", "Too many requests, please try again later.");
      e.retry_after = std::chrono::seconds(1);
      Reply r = error_reply(e);
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
  }
  if (faults_.error_rate > 0 &&
      std::uniform_real_distribution<double>(0, 1)(rng_) < faults_.error_rate) {
    ++injected_;
    if (faults_.error_code == 429) {
      Error e = api_error(429, "TooManyRequests", "injected fault: too many requests");
      e.retry_after = std::chrono::seconds(1);
      Reply r = error_reply(e);
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    return error_reply(faults_.error_code,
                       faults_.error_code == 503 ? "ServiceUnavailable" : "InternalError",
                       "injected fault: internal error");
  }
  return std::nullopt;
}

Reply ApiServer::discovery(const httpd::Request& req, bool* handled) {
  *handled = true;
  const std::string& p = req.path;
  if (p == "/version") {
    return json_reply(
        200, fmt::format(R"({{"major":"1","minor":"34","gitVersion":{},"platform":"linux/amd64"}})",
                         json::quote(opt_.version)));
  }
  if (p == "/healthz" || p == "/livez" || p == "/readyz")
    return Reply{200, {{"Content-Type", "text/plain"}}, "ok"};
  if (p == "/api") {
    return json_reply(
        200,
        R"({"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]})");
  }
  if (p == "/api/v1") return json_reply(200, resource_list(registry_, "", "v1"));
  if (p == "/openapi/v3") {
    std::string out = R"({"paths":{)";
    bool first = true;
    for (const auto& [g, vs] : registry_.groups()) {
      for (const auto& v : vs) {
        std::string gv = g.empty() ? "api/" + v : "apis/" + g + "/" + v;
        if (!first) out += ",";
        first = false;
        out += json::quote(gv) + R"(:{"serverRelativeURL":)" +
               json::quote("/openapi/v3/" + gv + "?hash=0") + "}";
      }
    }
    return json_reply(200, out + "}}");
  }
  if (p.rfind("/openapi/v3/", 0) == 0) {
    auto segs = split_path(p.substr(12));
    std::string group, version;
    if (segs.size() == 2 && segs[0] == "api") {
      version = segs[1];
    } else if (segs.size() == 3 && segs[0] == "apis") {
      group = segs[1];
      version = segs[2];
    } else {
      return error_reply(404, "NotFound", "the server could not find the requested resource");
    }
    // Only the group versions /openapi/v3 lists have a document (kube-apiserver: 404).
    bool served = false;
    for (const auto& [g, vs] : registry_.groups()) {
      if (g == group && std::find(vs.begin(), vs.end(), version) != vs.end()) served = true;
    }
    if (!served)
      return error_reply(404, "NotFound", "the server could not find the requested resource");
    return json_reply(200, openapi_v3(registry_, group, version));
  }
  if (p == "/apis") {
    std::string out = R"({"kind":"APIGroupList","apiVersion":"v1","groups":[)";
    bool first = true;
    for (const auto& [g, vs] : registry_.groups()) {
      if (g.empty()) continue;
      if (!first) out += ",";
      first = false;
      out += group_json(g, vs);
    }
    return json_reply(200, out + "]}");
  }
  auto segs = split_path(p);
  if (segs.size() == 2 && segs[0] == "apis") {
    for (const auto& [g, vs] : registry_.groups()) {
      if (g == segs[1]) {
        std::string body = group_json(g, vs);
        body.insert(1, R"("kind":"APIGroup","apiVersion":"v1",)");
        return json_reply(200, body);
      }
    }
    return error_reply(404, "NotFound", "the server could not find the requested resource");
  }
  if (segs.size() == 3 && segs[0] == "apis") {
    for (const auto& [g, vs] : registry_.groups()) {
      if (g == segs[1] && std::find(vs.begin(), vs.end(), segs[2]) != vs.end()) {
        return json_reply(200, resource_list(registry_, segs[1], segs[2]));
      }
    }
    return error_reply(404, "NotFound", "the server could not find the requested resource");
  }
  *handled = false;
  return {};
}

namespace {
bool public_path(const httpd::Request& req) {
  return req.path == "/healthz" || req.path == "/livez" || req.path == "/readyz";
}
}  // namespace

std::optional<httpd::EarlyAnswer> ApiServer::screen(const httpd::Request& head) const {
  if (public_path(head) || authn_.authenticate(head.header("Authorization").value_or("")))
    return std::nullopt;
  Reply r = error_reply(401, "Unauthorized", "Unauthorized");
  return httpd::EarlyAnswer{r.status, std::move(r.headers), std::move(r.body)};
}

awaitable<void> ApiServer::handle(const httpd::Request& req, httpd::ResponseWriter& w) {
  Reply reply;
  bool done = false;
  std::optional<UserInfo> user = authn_.authenticate(req.header("Authorization").value_or(""));
  if (!public_path(req) && !user) {
    reply = error_reply(401, "Unauthorized", "Unauthorized");
    done = true;
  }
  if (!done && req.path == "/nvdra-sim/faults") {
    done = true;
    if (!user->admin) {
      reply = error_reply(403, "Forbidden", "only the admin may change faults");
    } else if (req.method == "PUT" || req.method == "POST") {
      auto f = parse_faults(req.body, faults());
      if (!f) {
        reply = error_reply(400, "BadRequest", f.error().message);
      } else {
        set_faults(*f);
        const std::string now = faults_json(faults());  // with the injected count
        NVDRA_INFO("faults now {}", now);
        reply = json_reply(200, now);
      }
    } else {
      reply = json_reply(200, faults_json(faults()));
    }
  }
  if (!done && req.path.starts_with("/nvdra-sim/machines/")) {
    done = true;
    const std::string node = req.path.substr(std::string_view("/nvdra-sim/machines/").size());
    if (!user->admin) {
      reply = error_reply(403, "Forbidden", "only the admin may remove machines");
    } else if (req.method != "DELETE") {
      reply = error_reply(405, "MethodNotAllowed", "DELETE removes the node's machine");
    } else if (!remove_machine_ || node.empty() || !remove_machine_(node)) {
      reply = error_reply(404, "NotFound", "no simulated machine \"" + node + "\"");
    } else {
      reply = json_reply(
          200, R"({"kind":"Status","apiVersion":"v1","status":"Success","details":{"name":)" +
                   json::quote(node) + R"(,"kind":"machines"}})");
    }
  }
  int latency = 0;
  {
    std::lock_guard lock(faults_mu_);
    latency = faults_.latency_ms;
  }
  if (!done && latency > 0) co_await sleep_for(std::chrono::milliseconds(latency));
  if (!done && !truthy(req.query_param("watch"))) {
    if (auto f = injected_fault(req, user && user->admin)) {
      reply = std::move(*f);
      done = true;
    }
  }
  if (!done && !public_path(req)) {
    RequestAttributes a;
    a.resource_request = false;
    a.verb = req.method == "GET" ? "get" : "post";
    a.path = req.path;
    if (!(req.path.starts_with("/api/") || req.path.starts_with("/apis/")) &&
        !authz_.allowed(*user, a)) {
      const std::string message = Authorizer::forbidden_message(*user, a);
      NVDRA_WARN("RBAC denied: {}", message);
      reply = error_reply(403, "Forbidden", message);
      done = true;
    }
  }
  if (!done) reply = discovery(req, &done);
  if (!done) {
    // /api/v1/... or /apis/<group>/<version>/...
    auto segs = split_path(req.path);
    std::string group, version;
    size_t i = 0;
    if (segs.size() >= 2 && segs[0] == "api") {
      version = segs[1];
      i = 2;
    } else if (segs.size() >= 3 && segs[0] == "apis") {
      group = segs[1];
      version = segs[2];
      i = 3;
    }
    Route route;
    std::vector<std::string> rest(segs.begin() + std::min(i, segs.size()), segs.end());
    if (i == 0 || rest.empty()) {
      reply = error_reply(404, "NotFound", "the server could not find the requested resource");
      done = true;
    } else {
      if (rest.size() >= 3 && rest[0] == "namespaces" &&
          !(rest.size() == 3 && (rest[2] == "status" || rest[2] == "finalize"))) {
        route.ns = rest[1];
        rest.erase(rest.begin(), rest.begin() + 2);
      }
      route.type = registry_.find(group, version, rest[0]);
      route.storage = route.type;
      if (route.type && group == "resource.k8s.io" && version != "v1") {
        route.storage = registry_.find(group, "v1", rest[0]);
      }
      if (rest.size() > 1) route.name = rest[1];
      if (rest.size() > 2) route.subresource = rest[2];
      RequestAttributes attrs;
      if (route.type) {
        attrs.verb = verb_of(req, route);
        attrs.group = group;
        attrs.resource = route.type->resource;
        attrs.subresource = route.subresource;
        attrs.ns = route.ns;
        attrs.name = route.name;
      }
      // A cluster-scoped type has no namespaced URLs (kube-apiserver registers none, so 404);
      // serving one would authorize it against the namespace's RoleBindings.
      if (!route.type || rest.size() > 3 || (!route.type->namespaced && !route.ns.empty())) {
        reply = error_reply(404, "NotFound", "the server could not find the requested resource");
        done = true;
      } else if (group == "authorization.k8s.io" &&
                 route.type->resource == "selfsubjectaccessreviews" && req.method == "POST") {
        reply = self_subject_access_review(req, *user);  // every user may ask about itself
        done = true;
      } else if (!authz_.allowed(*user, attrs)) {
        Error e = api_error(403, "Forbidden", Authorizer::forbidden_message(*user, attrs));
        // Logged so that a component missing a permission shows up (the audit log's job).
        NVDRA_WARN("RBAC denied: {}", e.message);
        e.details_name = route.name;
        e.details_group = group;
        e.details_kind = route.type->resource;
        reply = error_reply(e);
        done = true;
      } else if (req.method == "GET" && route.name.empty() && truthy(req.query_param("watch"))) {
        co_await watch(req, route, w);
        co_return;
      } else {
        reply = serve(req, route, *user);
      }
    }
  }
  NVDRA_V(4, "{} {} -> {}", req.method, req.target, reply.status);
  co_await w.respond(reply.status, std::move(reply.headers), std::move(reply.body));
}

Reply ApiServer::self_subject_access_review(const httpd::Request& req, const UserInfo& user) {
  RequestAttributes a;
  const bool proto =
      req.header("Content-Type").value_or("").find("protobuf") != std::string_view::npos;
  if (proto) {
    auto env = parse_k8s_protobuf(req.body);
    auto review =
        env ? parse_proto(env->raw) : Result<std::vector<ProtoField>>(unexpected(env.error()));
    auto spec = review ? parse_proto(proto_bytes(*review, 2).value_or("")) : review;
    if (!spec) return error_reply(400, "BadRequest", spec.error().message);
    if (auto ra = proto_bytes(*spec, 1)) {
      auto f = parse_proto(*ra);
      if (!f) return error_reply(400, "BadRequest", f.error().message);
      a.ns = proto_bytes(*f, 1).value_or("");
      a.verb = proto_bytes(*f, 2).value_or("");
      a.group = proto_bytes(*f, 3).value_or("");
      a.resource = proto_bytes(*f, 5).value_or("");
      a.subresource = proto_bytes(*f, 6).value_or("");
      a.name = proto_bytes(*f, 7).value_or("");
    } else if (auto nra = proto_bytes(*spec, 2)) {
      auto f = parse_proto(*nra);
      if (!f) return error_reply(400, "BadRequest", f.error().message);
      a.resource_request = false;
      a.path = proto_bytes(*f, 1).value_or("");
      a.verb = proto_bytes(*f, 2).value_or("");
    }
  } else {
    auto doc = json::parse(req.body);
    if (!doc) return error_reply(400, "BadRequest", doc.error().message);
    if (const Value* ra = json::find_path(*doc, {"spec", "resourceAttributes"})) {
      a.ns = json::string_or(*ra, "namespace");
      a.verb = json::string_or(*ra, "verb");
      a.group = json::string_or(*ra, "group");
      a.resource = json::string_or(*ra, "resource");
      a.subresource = json::string_or(*ra, "subresource");
      a.name = json::string_or(*ra, "name");
    } else if (const Value* nra = json::find_path(*doc, {"spec", "nonResourceAttributes"})) {
      a.resource_request = false;
      a.path = json::string_or(*nra, "path");
      a.verb = json::string_or(*nra, "verb");
    }
  }
  const bool allowed = authz_.allowed(user, a);
  std::string spec =
      a.resource_request
          ? fmt::format(
                R"({{"resourceAttributes":{{"namespace":{},"verb":{},"group":{},"resource":{},"subresource":{},"name":{}}}}})",
                json::quote(a.ns), json::quote(a.verb), json::quote(a.group),
                json::quote(a.resource), json::quote(a.subresource), json::quote(a.name))
          : fmt::format(R"({{"nonResourceAttributes":{{"path":{},"verb":{}}}}})",
                        json::quote(a.path), json::quote(a.verb));
  return json_reply(
      201,
      fmt::format(
          R"({{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{{}},"spec":{},"status":{{"allowed":{},"reason":{}}}}})",
          spec, allowed ? "true" : "false", json::quote(allowed ? "allowed by RBAC" : "")));
}

std::string ApiServer::present(const ResourceType& view, std::string stored) {
  if (view.group != "resource.k8s.io" || view.version == "v1") return stored;
  auto doc = json::parse(stored);
  if (!doc) return stored;
  convert_resource_api(*doc, view.kind, "v1", view.version);
  return json::write(*doc);
}

void ApiServer::to_storage(const ResourceType& view, json::Document& doc) {
  if (view.group == "resource.k8s.io" && view.version != "v1") {
    convert_resource_api(doc, view.kind, view.version, "v1");
  }
}

Result<std::string> ApiServer::modify_checked(const UserInfo& user, const ResourceType& t,
                                              const Route& r, bool status, bool dry_run,
                                              bool create, const Store::Mutator& mutate) {
  if (user.admin || !(is_rbac_role(t) || is_rbac_binding(t)))
    return store_.modify(t, r.ns, r.name, status, dry_run, create, mutate);
  // The escalation check reads roles and bindings, which it cannot do under the store's lock:
  // it judges a dry run's result, and the write must then grant exactly what was judged.
  auto preview = store_.modify(t, r.ns, r.name, status, /*dry_run=*/true, create, mutate);
  if (!preview) return preview;
  auto doc = json::parse(*preview);
  if (!doc) return unexpected(api_error(500, "InternalError", doc.error().message));
  if (auto st = authz_.may_write_rbac(user, t, r.ns, *doc); !st) return unexpected(st.error());
  const std::string judged = rbac_grants_text(*doc);
  return store_.modify(
      t, r.ns, r.name, status, dry_run, create, [&](json::Document& obj, bool exists) -> Status {
        if (auto st = mutate(obj, exists); !st) return st;
        if (rbac_grants_text(obj) != judged) {
          return unexpected(api_error(
              409, "Conflict", "the object changed while its permissions were checked; retry"));
        }
        return ok();
      });
}

Reply ApiServer::serve(const httpd::Request& req, const Route& r, const UserInfo& user) {
  const ResourceType& view = *r.type;
  const ResourceType& t = *r.storage;
  if (t.resource == "serviceaccounts" && r.subresource == "token" && req.method == "POST") {
    // TokenRequest: a token for the service account, as kubelet projects one into pods.
    auto token = authn_.issue_token(r.ns, r.name);
    if (!token) return error_reply(token.error());
    return json_reply(
        201,
        R"({"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{"name":)" +
            json::quote(r.name) + R"(,"namespace":)" + json::quote(r.ns) +
            R"(},"spec":{"audiences":[]},"status":{"token":)" + json::quote(*token) +
            R"(,"expirationTimestamp":"2099-01-01T00:00:00Z"}})");
  }
  if (t.resource == "pods" && r.subresource == "binding" && req.method == "POST")
    return binding(req, r);
  if (!r.subresource.empty() && !(r.subresource == "status" && t.status_subresource)) {
    return error_reply(404, "NotFound", "the server could not find the requested resource");
  }
  if (t.namespaced && r.ns.empty() && !r.name.empty()) {
    return error_reply(404, "NotFound", "the server could not find the requested resource");
  }
  const std::string& m = req.method;
  if (t.namespaced && r.ns.empty() && m != "GET") {
    // A namespaced type's cluster-wide URL only lists and watches.
    return error_reply(405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource");
  }
  const bool status = r.subresource == "status";
  const bool dry_run = req.query_param("dryRun") == "All";
  FieldManagerRequest managers;
  managers.manager = req.query_param("fieldManager").value_or("");
  if (managers.manager.empty()) {
    // kube-apiserver's default: the User-Agent up to its first '/'.
    std::string_view ua = req.header("User-Agent").value_or("unknown");
    managers.manager = std::string(ua.substr(0, ua.find('/')));
  }
  managers.api_version = view.group_version();
  managers.time = store_.now_rfc3339();
  managers.status_write = status;
  managers.type_has_status_subresource = t.status_subresource;

  if (m == "GET" && r.name.empty()) {
    ListQuery q;
    q.label_selector = req.query_param("labelSelector").value_or("");
    q.field_selector = req.query_param("fieldSelector").value_or("");
    auto limit = int_param(req, "limit");
    if (!limit) return error_reply(limit.error());
    if (auto st = check_list_options(req, /*watch=*/false); !st) return error_reply(st.error());
    if (auto rv = resource_version_param(req); !rv) return error_reply(rv.error());
    q.limit = std::max<int64_t>(0, limit->value_or(0));  // a negative limit is no limit
    // resourceVersion=0 is served from kube-apiserver's watch cache, which ignores the limit.
    if (req.query_param("resourceVersion") == "0") q.limit = 0;
    q.continue_token = req.query_param("continue").value_or("");
    auto res = store_.list(t, r.ns, q);
    if (!res) return error_reply(res.error());
    for (auto& item : res->items)
      item = present(view, std::move(item));
    if (wants_table(req)) {
      return json_reply(200, table_json(t, res->items, res->resource_version, res->continue_token));
    }
    return json_reply(200, list_json(view, *res));
  }
  if (m == "GET") {
    auto res = store_.get(t, r.ns, r.name);
    if (!res) return error_reply(res.error());
    std::string out = present(view, std::move(*res));
    if (wants_table(req)) return json_reply(200, table_json(t, {out}, store_.current_rv(), ""));
    return json_reply(200, std::move(out));
  }
  if (m == "POST" || m == "PUT") {
    if (auto causes = write_option_causes(req); !causes.empty())
      return error_reply(
          options_invalid(m == "POST" ? "CreateOptions" : "UpdateOptions", std::move(causes)));
    std::string body_text;
    std::string_view body_view = req.body;
    if (auto ct = req.header("Content-Type");
        ct && ct->find("protobuf") != std::string_view::npos) {
      // kubectl's generator commands (create namespace, configmap, …) send protobuf.
      auto env = parse_k8s_protobuf(req.body);
      auto text = env ? k8s_protobuf_to_json(*env) : Result<std::string>(unexpected(env.error()));
      if (!text) return error_reply(415, "UnsupportedMediaType", text.error().message);
      body_text = std::move(*text);
      body_view = body_text;
    } else if (ct && ct->find("json") == std::string_view::npos &&
               ct->find("yaml") == std::string_view::npos) {
      return error_reply(415, "UnsupportedMediaType",
                         fmt::format("the body of the request was in an unknown format - accepted "
                                     "media types include: application/json, application/yaml, "
                                     "application/vnd.kubernetes.protobuf"));
    }
    auto doc = parse_json_or_yaml(body_view);
    if (!doc || !doc->IsObject()) {
      return error_reply(400, "BadRequest",
                         doc ? "the request body must be a JSON object" : doc.error().message);
    }
    auto kind = json::get_string(*doc, "kind");
    auto api = json::get_string(*doc, "apiVersion");
    if ((kind && !kind->empty() && *kind != view.kind) ||
        (api && !api->empty() && *api != view.group_version())) {
      return error_reply(
          400, "BadRequest",
          fmt::format("the API version in the data ({}) does not match the expected "
                      "API version ({}) or kind {} is not {}",
                      api.value_or(""), view.group_version(), kind.value_or(""), view.kind));
    }
    to_storage(view, *doc);
    if (m == "POST") {
      if (!r.name.empty())
        return error_reply(405, "MethodNotAllowed", "POST to an object is not allowed");
      if (auto st = check_schema(t, *doc, nullptr); !st) return error_reply(st.error());
      if (auto st = authz_.may_write_rbac(user, t, r.ns, *doc); !st) return error_reply(st.error());
      track_update(*doc, nullptr, managers);
      auto res = store_.create(t, r.ns, std::move(*doc), dry_run);
      if (!res) return error_reply(res.error());
      if (!dry_run) after_write(t, *res, false);
      return json_reply(201, present(view, std::move(*res)));
    }
    if (r.name.empty())
      return error_reply(405, "MethodNotAllowed", "PUT to a collection is not allowed");
    if (const Value* meta = json::find(*doc, "metadata"); meta && meta->IsObject()) {
      // kube-apiserver's checkName: the body may not name another object.
      std::string_view name = json::string_or(*meta, "name");
      std::string_view ns = json::string_or(*meta, "namespace");
      if (!name.empty() && name != r.name) {
        return error_reply(400, "BadRequest",
                           fmt::format("the name of the object ({}) does not match the name on "
                                       "the URL ({})",
                                       name, r.name));
      }
      if (!r.ns.empty() && !ns.empty() && ns != r.ns) {
        return error_reply(400, "BadRequest",
                           fmt::format("the namespace of the object ({}) does not match the "
                                       "namespace on the URL ({})",
                                       ns, r.ns));
      }
    }
    const json::Document& body = *doc;
    auto res = modify_checked(user, t, r, status, dry_run, false,
                              [&](json::Document& obj, bool) -> Status {
                                json::Document before;
                                before.Swap(obj);
                                obj.CopyFrom(body, obj.GetAllocator());
                                if (auto st = check_schema(t, obj, &before); !st) return st;
                                track_update(obj, &before, managers);
                                return ok();
                              });
    if (!res) return error_reply(res.error());
    if (!dry_run) after_write(t, *res, false);
    return json_reply(200, present(view, std::move(*res)));
  }
  if (m == "PATCH") {
    if (r.name.empty())
      return error_reply(405, "MethodNotAllowed", "PATCH to a collection is not allowed");
    std::string ct(req.header("Content-Type").value_or(""));
    ct = ct.substr(0, ct.find(';'));
    const bool apply = ct == "application/apply-patch+yaml";
    {
      // ValidatePatchOptions: apply needs a fieldManager, force is for apply only.
      std::vector<ErrorCause> causes;
      if (apply && req.query_param("fieldManager").value_or("").empty()) {
        causes.push_back(
            {"FieldValueRequired", "Required value: is required for apply patch", "fieldManager"});
      }
      if (!apply && req.query_param("force")) {
        causes.push_back(forbidden("force", "may not be specified for non-apply patch"));
      }
      auto more = write_option_causes(req);
      causes.insert(causes.end(), more.begin(), more.end());
      if (!causes.empty()) return error_reply(options_invalid("PatchOptions", std::move(causes)));
    }
    if (ct != "application/merge-patch+json" && ct != "application/json-patch+json" &&
        ct != "application/strategic-merge-patch+json" && !apply) {
      return error_reply(415, "UnsupportedMediaType",
                         fmt::format("the body of the request was in an unknown format - accepted "
                                     "media types include: application/json-patch+json, "
                                     "application/merge-patch+json, "
                                     "application/apply-patch+yaml, "
                                     "application/strategic-merge-patch+json"));
    }
    if (ct == "application/strategic-merge-patch+json" && t.schema) {
      // Custom resources have no patch strategies: kube-apiserver does not accept the type.
      return error_reply(415, "UnsupportedMediaType",
                         "the body of the request was in an unknown format - accepted media types "
                         "include: application/json-patch+json, application/merge-patch+json, "
                         "application/apply-patch+yaml");
    }
    auto patch = apply ? parse_json_or_yaml(req.body) : json::parse(req.body);
    if (!patch) return error_reply(400, "BadRequest", patch.error().message);
    if (ct == "application/json-patch+json" ? !patch->IsArray() : !patch->IsObject()) {
      return error_reply(400, "BadRequest", "the patch has the wrong shape for its content type");
    }
    const json::JsonPatchLimits patch_limits{.max_copied_bytes = opt_.max_object_bytes};
    if (patch->IsArray() && patch->Size() > patch_limits.max_operations) {
      // kube-apiserver counts the operations before applying any.
      return error_reply(413, "RequestEntityTooLarge",
                         fmt::format("The allowed maximum operations in a JSON patch is {}, got {}",
                                     patch_limits.max_operations, patch->Size()));
    }
    const bool force = truthy(req.query_param("force"));
    const json::Document& p = *patch;
    bool created = false;
    auto res = modify_checked(
        user, t, r, status, dry_run, apply, [&](json::Document& obj, bool exists) -> Status {
          created = !exists;
          json::Document before;
          before.CopyFrom(obj, before.GetAllocator());
          // The patch is written against the client's version of the object.
          if (exists && view.version != t.version)
            convert_resource_api(obj, view.kind, t.version, view.version);
          Status st = apply ? server_side_apply(obj, p, force, managers)
                      : ct == "application/json-patch+json" ? json::json_patch(obj, p, patch_limits)
                      : ct == "application/strategic-merge-patch+json"
                          ? strategic_merge_patch(obj, p)
                          : json::merge_patch(obj, p);
          if (!st && st.error().code == ErrorCode::kApi) return st;  // an apply conflict
          if (!st) {
            Error e = api_error(422, "Invalid", st.error().message);
            return unexpected(e);
          }
          if (auto st = within_limits(obj, opt_.max_object_bytes); !st) return st;
          to_storage(view, obj);
          if (auto valid = check_schema(t, obj, exists ? &before : nullptr); !valid) return valid;
          if (!apply) track_update(obj, exists ? &before : nullptr, managers);
          return ok();
        });
    if (!res) return error_reply(res.error());
    if (!dry_run) after_write(t, *res, false);
    // An apply that creates the object answers 201 Created, as kube-apiserver does.
    return json_reply(created ? 201 : 200, present(view, std::move(*res)));
  }
  if (m == "DELETE") {
    auto parsed = delete_request(req);
    if (!parsed) return error_reply(parsed.error());
    DeleteRequest& d = *parsed;
    if (r.name.empty()) {
      ListQuery q;
      q.label_selector = req.query_param("labelSelector").value_or("");
      q.field_selector = req.query_param("fieldSelector").value_or("");
      auto res = store_.list(t, r.ns, q);
      if (!res) return error_reply(res.error());
      for (const auto& item : res->items) {
        auto o = k8s::Object::parse(item);
        if (!o) continue;
        auto del = store_.remove(t, std::string((*o)->namespace_()), std::string((*o)->name()), d);
        if (del && !d.dry_run) after_write(t, *del, true);
      }
      return json_reply(200,
                        R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"})");
    }
    auto res = store_.remove(t, r.ns, r.name, d);
    if (!res) return error_reply(res.error());
    if (!d.dry_run) after_write(t, *res, true);
    if (auto st = deleted_status(t, *res)) return json_reply(200, std::move(*st));
    return json_reply(200, present(view, std::move(*res)));
  }
  return error_reply(405, "MethodNotAllowed",
                     fmt::format("the server does not allow method {}", m));
}

// POST pods/<name>/binding, as kube-scheduler binds: sets spec.nodeName once, then marks the pod
// PodScheduled (kube-apiserver does both in one write; here they are two consecutive writes).
Reply ApiServer::binding(const httpd::Request& req, const Route& r) {
  auto body = json::parse(req.body);
  if (!body || !body->IsObject())
    return error_reply(400, "BadRequest",
                       body ? "the body must be a Binding object" : body.error().message);
  const std::string node(
      json::find(*body, "target") ? json::string_or(*json::find(*body, "target"), "name") : "");
  if (node.empty()) {
    Error e =
        api_error(422, "Invalid",
                  fmt::format("Binding \"{}\" is invalid: target.name: Required value", r.name));
    e.causes.push_back(ErrorCause{"FieldValueRequired", "Required value", "target.name"});
    return error_reply(e);
  }
  if (const Value* meta = json::find(*body, "metadata")) {
    if (auto n = json::get_string(*meta, "name"); n && !n->empty() && *n != r.name)
      return error_reply(400, "BadRequest",
                         "the name of the Binding does not match the pod on the URL");
  }
  if (auto st = bind_pod(store_, *r.storage, r.ns, r.name, node); !st)
    return error_reply(st.error());
  return json_reply(
      201, R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201})");
}

void ApiServer::serve_stored_crds() {
  auto crds = registry_.find("apiextensions.k8s.io", "v1", "customresourcedefinitions");
  auto list = store_.list(*crds, "", ListQuery{});
  if (!list) return;
  for (const auto& item : list->items)
    after_write(*crds, item, false);
}

// CustomResourceDefinitions: creating one serves its kinds; deleting one stops serving them.
void ApiServer::after_write(const ResourceType& t, const std::string& body, bool deleted) {
  if (t.group != "apiextensions.k8s.io" || t.resource != "customresourcedefinitions") return;
  auto doc = json::parse(body);
  if (!doc) return;
  const Value* spec = json::find(*doc, "spec");
  if (!spec) return;
  std::string group(json::string_or(*spec, "group"));
  const Value* names = json::find(*spec, "names");
  const Value* versions = json::find(*spec, "versions");
  if (!names || !versions || !versions->IsArray()) return;
  const bool gone = deleted && !json::find_path(*doc, {"metadata", "deletionTimestamp"});
  for (const auto& v : versions->GetArray()) {
    std::string version(json::string_or(v, "name"));
    if (gone || deleted) {
      registry_.remove(group, version, std::string(json::string_or(*names, "plural")));
      continue;
    }
    if (json::get_bool(v, "served") == false) continue;
    ResourceType rt;
    rt.group = group;
    rt.version = version;
    rt.resource = json::string_or(*names, "plural");
    rt.kind = json::string_or(*names, "kind");
    rt.singular = json::string_or(*names, "singular");
    if (rt.singular.empty()) {
      rt.singular = rt.kind;
      std::transform(rt.singular.begin(), rt.singular.end(), rt.singular.begin(), ::tolower);
    }
    rt.namespaced = json::string_or(*spec, "scope") != "Cluster";
    rt.status_subresource = json::find_path(v, {"subresources", "status"}) != nullptr;
    if (const Value* sch = json::find_path(v, {"schema", "openAPIV3Schema"});
        sch && sch->IsObject()) {
      auto schema = std::make_shared<json::Document>();
      schema->CopyFrom(*sch, schema->GetAllocator());
      rt.schema = std::move(schema);
    }
    if (const Value* sn = json::find(*names, "shortNames"); sn && sn->IsArray()) {
      for (const auto& s : sn->GetArray()) {
        if (s.IsString()) rt.short_names.emplace_back(s.GetString());
      }
    }
    if (const Value* cs = json::find(*names, "categories"); cs && cs->IsArray()) {
      for (const auto& s : cs->GetArray()) {
        if (s.IsString()) rt.categories.emplace_back(s.GetString());
      }
    }
    if (const Value* pc = json::find(v, "additionalPrinterColumns"); pc && pc->IsArray()) {
      for (const auto& c : pc->GetArray()) {
        rt.printer_columns.push_back(PrinterColumn{
            std::string(json::string_or(c, "name")), std::string(json::string_or(c, "type")),
            std::string(json::string_or(c, "format")),
            std::string(json::string_or(c, "description")),
            std::string(json::string_or(c, "jsonPath")),
            static_cast<int>(json::get_int(c, "priority").value_or(0))});
      }
    }
    if (const Value* sf = json::find(v, "selectableFields"); sf && sf->IsArray()) {
      for (const auto& f : sf->GetArray()) {
        std::string path(json::string_or(f, "jsonPath"));
        if (!path.empty() && path[0] == '.') path.erase(0, 1);
        rt.selectable_fields.push_back(path);
      }
    }
    registry_.add(std::move(rt));
  }
  if (deleted) return;
  // Report the CRD as established at once.
  const Value* meta = json::find(*doc, "metadata");
  if (meta == nullptr) return;  // a damaged object in a --data-dir must not stop the start
  std::string name(json::string_or(*meta, "name"));
  (void)store_.modify(
      t, "", name, /*status=*/true, false, false, [&](json::Document& obj, bool) -> Status {
        std::string st = fmt::format(
            R"({{"status":{{"conditions":[{{"type":"NamesAccepted","status":"True","reason":"NoConflicts","message":"no conflicts found","lastTransitionTime":{}}},{{"type":"Established","status":"True","reason":"InitialNamesAccepted","message":"the initial names have been accepted","lastTransitionTime":{}}}],"acceptedNames":{},"storedVersions":[]}}}})",
            json::quote(json::string_or(*json::find(obj, "metadata"), "creationTimestamp")),
            json::quote(json::string_or(*json::find(obj, "metadata"), "creationTimestamp")),
            json::write(*json::find(*json::find(obj, "spec"), "names")));
        auto patch = json::parse(st);
        return json::merge_patch(obj, *patch);
      });
}

awaitable<void> ApiServer::watch(const httpd::Request& req, const Route& r,
                                 httpd::ResponseWriter& w) {
  const ResourceType& t = *r.type;
  auto labels = k8s::LabelSelector::parse(req.query_param("labelSelector").value_or(""));
  auto fields = k8s::FieldSelector::parse(req.query_param("fieldSelector").value_or(""));
  const bool initial_events = truthy(req.query_param("sendInitialEvents"));
  const bool bookmarks = truthy(req.query_param("allowWatchBookmarks"));
  const auto rv = resource_version_param(req);
  const auto timeout_param = int_param(req, "timeoutSeconds");
  Reply early;
  if (!rv || !timeout_param) {
    early = error_reply(!rv ? rv.error() : timeout_param.error());
  } else if (!labels || !fields) {
    early =
        error_reply(400, "BadRequest", !labels ? labels.error().message : fields.error().message);
  } else if (auto st = check_list_options(req, /*watch=*/true); !st) {
    early = error_reply(st.error());
  }
  if (early.status != 200) {
    co_await w.respond(early.status, std::move(early.headers), std::move(early.body));
    co_return;
  }
  const bool select_all = labels->empty() && fields->requirements().empty();
  auto matches = [&](const std::string& obj_json) {
    if (select_all) return true;
    auto o = k8s::Object::parse(obj_json);
    if (!o || !labels->matches((*o)->labels())) return false;
    if (fields->requirements().empty()) return true;
    auto d = json::parse(obj_json);
    return d && fields->matches([&](const std::string& f) { return Store::field_value(*d, f); });
  };
  auto event = [](std::string_view type, const std::string& obj) {
    return "{\"type\":\"" + std::string(type) + "\",\"object\":" + obj + "}\n";
  };
  auto bookmark = [&](int64_t rv, bool initial_end) {
    std::string obj =
        R"({"kind":)" + json::quote(t.kind) + R"(,"apiVersion":)" + json::quote(t.group_version()) +
        R"(,"metadata":{"resourceVersion":)" + json::quote(std::to_string(rv)) +
        (initial_end ? R"(,"annotations":{"k8s.io/initial-events-end":"true"}})" : "}") + "}";
    return event("BOOKMARK", obj);
  };

  const bool from_now = *rv == 0;
  if (!from_now && *rv > store_.current_rv()) {
    // A resourceVersion this server has not reached: kube-apiserver's watch cache waits up to
    // 3 s for it, then answers 504 (cause ResourceVersionTooLarge) instead of hanging; a watch
    // whose own timeoutSeconds ends first just ends, empty (k8s.diff: watch.future-rv).
    const auto started = std::chrono::steady_clock::now();
    const auto timeout_at = started + watch_timeout(*timeout_param);
    const auto until = std::min(started + opt_.future_rv_wait, timeout_at);
    while (*rv > store_.current_rv() && !w.closed()) {
      const auto left = until - std::chrono::steady_clock::now();
      if (left <= left.zero()) break;
      co_await store_.wait_for_change(store_.current_rv(),
                                      std::chrono::duration_cast<std::chrono::milliseconds>(left) +
                                          std::chrono::milliseconds(1));
    }
    if (*rv > store_.current_rv() && timeout_at <= until) {
      if (co_await w.start_stream(200, json_headers())) co_await w.end_stream();
      co_return;
    }
    if (*rv > store_.current_rv()) {
      Error e = api_error(
          504, "Timeout",
          fmt::format("Too large resource version: {}, current: {}", *rv, store_.current_rv()));
      e.causes.push_back(ErrorCause{"ResourceVersionTooLarge", "Too large resource version", ""});
      e.retry_after = std::chrono::seconds(1);
      Reply too_large = error_reply(e);
      co_await w.respond(too_large.status, std::move(too_large.headers), std::move(too_large.body));
      co_return;
    }
  }

  Headers headers = json_headers();
  if (!co_await w.start_stream(200, std::move(headers))) co_return;
  int64_t from = 0;
  std::string out;
  if (initial_events || from_now) {
    ListQuery q;
    auto list = store_.list(t, r.ns, q);
    if (list) {
      for (const auto& item : list->items) {
        if (matches(item)) out += event("ADDED", present(t, item));
      }
      from = list->resource_version;
    }
    if (initial_events) out += bookmark(from, true);
  } else {
    from = *rv;
    if (force_gone_.load() > 0 && force_gone_.fetch_sub(1) > 0) from = -1;  // injected 410
  }
  if (!out.empty() && !co_await w.write_chunk(out)) co_return;

  auto deadline = std::chrono::steady_clock::now() + watch_timeout(*timeout_param);
  double cut_after = faults().watch_close_seconds;
  const bool cut = cut_after > 0;
  if (cut) {
    deadline =
        std::min(deadline, std::chrono::steady_clock::now() +
                               std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(cut_after)));
  }
  auto next_bookmark = std::chrono::steady_clock::now() + opt_.bookmark_interval;
  while (!w.closed() && std::chrono::steady_clock::now() < deadline) {
    auto events = store_.events_after(from, t.storage_key(), t.namespaced ? r.ns : "");
    if (!events) {
      std::string err = event("ERROR", status_body(events.error()));
      co_await w.write_chunk(err);
      break;
    }
    out.clear();
    for (const auto& e : *events) {
      from = std::max(from, e.rv);
      const bool now = matches(e.json);
      if (e.type == "MODIFIED" && !e.prev_json.empty()) {
        // Selection changes: an object that stops matching is DELETED for this watch, one that
        // starts matching is ADDED.
        const bool before = matches(e.prev_json);
        if (before != now) out += event(now ? "ADDED" : "DELETED", present(t, e.json));
        if (!before || !now) continue;
      }
      if (now) out += event(e.type, present(t, e.json));
    }
    if (!out.empty() && !co_await w.write_chunk(out)) co_return;
    auto now = std::chrono::steady_clock::now();
    if (bookmarks && now >= next_bookmark) {
      std::string b = bookmark(std::max(from, store_.current_rv()), false);
      from = std::max(from, store_.current_rv());
      if (!co_await w.write_chunk(b)) co_return;
      next_bookmark = now + opt_.bookmark_interval;
    }
    if (events->empty()) {
      auto wait = std::min<std::chrono::steady_clock::duration>(
          {deadline - now, next_bookmark - now, std::chrono::milliseconds(500)});
      co_await store_.wait_for_change(store_.current_rv(),
                                      std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::max<std::chrono::steady_clock::duration>(wait, {})));
    }
  }
  if (cut && std::chrono::steady_clock::now() >= deadline) {
    w.abort();  // injected: the connection drops instead of ending cleanly
    co_return;
  }
  co_await w.end_stream();
}

}  // namespace nvdra::sim
