#include "k8sclient/object.h"

#include <fmt/format.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <unordered_set>

namespace nvdra::k8s {

// Fills Objects from the scan results; a friend of Object.
namespace {
// Kinds and apiVersions repeat across every object of a process: keep one copy of each.
const std::string* intern(const std::string& s) {
  static std::mutex mu;
  static std::unordered_set<std::string> pool;  // node-based: element addresses are stable
  std::lock_guard lock(mu);
  return &*pool.insert(s).first;
}
}  // namespace

class ObjectBuilder {
 public:
  static ObjectPtr build(std::string json, const std::string& kind, const std::string& api_version,
                         const std::string& name, const std::string& ns, const std::string& uid,
                         const std::string& rv, int64_t generation, bool deleting, Labels labels) {
    auto o = std::make_shared<Object>();
    o->json_ = std::move(json);
    o->kind_ = intern(kind);
    o->api_version_ = intern(api_version);
    o->meta_.reserve(ns.size() + 1 + name.size() + uid.size() + rv.size());
    if (!ns.empty()) o->meta_.append(ns).push_back('/');
    o->meta_.append(name).append(uid).append(rv);
    o->ns_len_ = static_cast<uint32_t>(ns.size());
    o->name_len_ = static_cast<uint32_t>(name.size());
    o->uid_len_ = static_cast<uint32_t>(uid.size());
    o->generation_ = generation;
    o->being_deleted_ = deleting;
    std::sort(labels.begin(), labels.end());
    o->labels_ = std::move(labels);
    return o;
  }
};

namespace {

constexpr size_t npos = std::string::npos;

// What the scanner learns about one object it cuts out.
struct Capture {
  size_t begin = npos, end = npos;
  std::string kind, api_version, name, ns, uid, rv;
  int64_t generation = 0;
  bool deleting = false;
  Labels labels;
  size_t managed_begin = npos, managed_end = npos;
  bool managed_pending = false;
};

enum class Mode { kObject, kList, kEvent };

struct Frame {
  bool is_array = false;
  std::string key;  // last key seen (objects only)
};

// SAX handler: tracks the container path, captures objects at the mode's position and records
// metadata and the managedFields byte range inside each.
class Scanner : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Scanner> {
 public:
  Scanner(Mode mode, std::string_view src, rapidjson::MemoryStream& stream)
      : mode_(mode), src_(src), stream_(stream) {}

  std::vector<Capture> captures;
  // Root-level facts for lists and events.
  std::string root_kind, root_api_version, root_rv, root_continue, event_type;
  std::optional<int64_t> root_remaining;

  bool StartObject() {
    if (!in_capture() && is_capture_position()) {
      captures.emplace_back();
      captures.back().begin = stream_.Tell() - 1;
      capture_frame_ = stack_.size();
    }
    stack_.push_back(Frame{false, {}});
    return true;
  }
  bool Key(const char* str, rapidjson::SizeType len, bool) {
    stack_.back().key.assign(str, len);
    if (in_capture() && stack_.size() == capture_frame_ + 2 &&
        frame_key(capture_frame_) == "metadata" && stack_.back().key == "managedFields") {
      // The key was just consumed; its raw text is "managedFields" with quotes (15 bytes).
      size_t end = stream_.Tell();
      constexpr std::string_view kRaw = "\"managedFields\"";
      if (end >= kRaw.size() && src_.substr(end - kRaw.size(), kRaw.size()) == kRaw) {
        captures.back().managed_begin = end - kRaw.size();
        captures.back().managed_pending = true;
      }
    }
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    stack_.pop_back();
    if (in_capture() && stack_.size() == capture_frame_) {
      captures.back().end = stream_.Tell();
      capture_frame_ = npos;
      return true;
    }
    value_done();
    return true;
  }
  bool StartArray() {
    stack_.push_back(Frame{true, {}});
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    stack_.pop_back();
    value_done();
    return true;
  }
  bool String(const char* str, rapidjson::SizeType len, bool) {
    std::string_view v(str, len);
    if (!in_capture()) {
      root_string(v);
    } else if (stack_.size() == capture_frame_ + 1) {
      const std::string& k = stack_.back().key;
      if (k == "kind") captures.back().kind = v;
      if (k == "apiVersion") captures.back().api_version = v;
    } else if (in_metadata()) {
      const std::string& k = stack_.back().key;
      Capture& c = captures.back();
      if (k == "name")
        c.name = v;
      else if (k == "namespace")
        c.ns = v;
      else if (k == "uid")
        c.uid = v;
      else if (k == "resourceVersion")
        c.rv = v;
      else if (k == "deletionTimestamp")
        c.deleting = true;
    } else if (stack_.size() == capture_frame_ + 3 && frame_key(capture_frame_) == "metadata" &&
               frame_key(capture_frame_ + 1) == "labels" && !stack_.back().is_array) {
      captures.back().labels.emplace_back(stack_.back().key, std::string(v));
    }
    value_done();
    return true;
  }
  bool Int64(int64_t i) { return integer(i); }
  bool Int(int i) { return integer(i); }
  bool Uint(unsigned u) { return integer(static_cast<int64_t>(u)); }
  bool Uint64(uint64_t u) {
    return integer(u > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(u));
  }
  bool Default() {  // null, bool, double
    value_done();
    return true;
  }

 private:
  bool in_capture() const { return capture_frame_ != npos; }
  const std::string& frame_key(size_t i) const { return stack_[i].key; }
  bool in_metadata() const {
    return stack_.size() == capture_frame_ + 2 && frame_key(capture_frame_) == "metadata" &&
           !stack_.back().is_array;
  }
  bool is_capture_position() const {
    switch (mode_) {
      case Mode::kObject:
        return stack_.empty();
      case Mode::kList:
        return stack_.size() == 2 && !stack_[0].is_array && stack_[0].key == "items" &&
               stack_[1].is_array;
      case Mode::kEvent:
        return stack_.size() == 1 && !stack_[0].is_array && stack_[0].key == "object";
    }
    return false;
  }
  void root_string(std::string_view v) {
    if (stack_.size() == 1 && !stack_[0].is_array) {
      const std::string& k = stack_[0].key;
      if (k == "kind") root_kind = v;
      if (k == "apiVersion") root_api_version = v;
      if (k == "type") event_type = v;
    } else if (stack_.size() == 2 && stack_[0].key == "metadata" && !stack_[1].is_array) {
      if (stack_[1].key == "resourceVersion") root_rv = v;
      if (stack_[1].key == "continue") root_continue = v;
    }
  }
  bool integer(int64_t i) {
    if (in_capture() && in_metadata() && stack_.back().key == "generation") {
      captures.back().generation = i;
    } else if (!in_capture() && stack_.size() == 2 && stack_[0].key == "metadata" &&
               stack_[1].key == "remainingItemCount") {
      root_remaining = i;
    }
    value_done();
    return true;
  }
  // Called after each complete value; closes the managedFields range when its value ends.
  void value_done() {
    if (in_capture() && !captures.empty() && captures.back().managed_pending &&
        stack_.size() == capture_frame_ + 2 && stack_.back().key == "managedFields") {
      captures.back().managed_end = stream_.Tell();
      captures.back().managed_pending = false;
    }
  }

  Mode mode_;
  std::string_view src_;
  rapidjson::MemoryStream& stream_;
  std::vector<Frame> stack_;
  size_t capture_frame_ = npos;
};

bool is_ws(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

// Cuts the captured object out of `src`, without managedFields and with defaults filled in.
std::string cut_object(std::string_view src, const Capture& c, const DecodeOptions& opt,
                       bool add_kind, bool add_api_version) {
  size_t rm_begin = npos, rm_end = npos;
  if (opt.strip_managed_fields && c.managed_begin != npos && c.managed_end != npos) {
    rm_begin = c.managed_begin;
    rm_end = c.managed_end;
    size_t p = rm_begin;
    while (p > c.begin && is_ws(src[p - 1]))
      --p;
    if (p > c.begin && src[p - 1] == ',') {
      rm_begin = p - 1;  // drop the comma before the member
    } else {
      size_t q = rm_end;
      while (q < c.end && is_ws(src[q]))
        ++q;
      if (q < c.end && src[q] == ',') rm_end = q + 1;  // first member: drop the comma after it
    }
  }
  std::string out;
  // Exact size: an informer keeps this string for the object's lifetime.
  size_t size = c.end - c.begin;
  if (rm_begin != npos) size -= rm_end - rm_begin;
  if (add_kind) size += opt.default_kind.size() + 10;
  if (add_api_version) size += opt.default_api_version.size() + 16;
  out.reserve(size);
  out.push_back('{');
  size_t body = c.begin + 1;
  if (add_kind || add_api_version) {
    if (add_kind) {
      out += "\"kind\":";
      json::append_quoted(out, opt.default_kind);
    }
    if (add_api_version) {
      if (add_kind) out.push_back(',');
      out += "\"apiVersion\":";
      json::append_quoted(out, opt.default_api_version);
    }
    size_t q = body;
    while (q < c.end && is_ws(src[q]))
      ++q;
    if (q < c.end && src[q] != '}') out.push_back(',');
  }
  if (rm_begin == npos) {
    out.append(src.substr(body, c.end - body));
  } else {
    out.append(src.substr(body, rm_begin - body));
    out.append(src.substr(rm_end, c.end - rm_end));
  }
  if (out.capacity() > out.size() + 32) out.shrink_to_fit();
  return out;
}

Result<Scanner*> run_scan(Scanner& scanner, std::string_view src, rapidjson::MemoryStream& ms) {
  // RapidJSON's reader recurses per nesting level: a deep document is an error, not a crash.
  if (auto s = json::check_depth(src); !s) return unexpected(s.error());
  rapidjson::Reader reader;
  if (!reader.Parse<rapidjson::kParseStopWhenDoneFlag>(ms, scanner)) {
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("invalid JSON at offset {}: {}", reader.GetErrorOffset(),
                                  rapidjson::GetParseError_En(reader.GetParseErrorCode())));
  }
  for (size_t i = ms.Tell(); i < src.size(); ++i) {
    if (!is_ws(src[i])) {
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("invalid JSON at offset {}: trailing data", i));
    }
  }
  return &scanner;
}

ObjectPtr make_object(std::string_view src, Capture& c, const DecodeOptions& opt) {
  bool add_kind = c.kind.empty() && !opt.default_kind.empty();
  bool add_api = c.api_version.empty() && !opt.default_api_version.empty();
  std::string text = cut_object(src, c, opt, add_kind, add_api);
  if (add_kind) c.kind = opt.default_kind;
  if (add_api) c.api_version = opt.default_api_version;
  return ObjectBuilder::build(std::move(text), c.kind, c.api_version, c.name, c.ns, c.uid, c.rv,
                              c.generation, c.deleting, std::move(c.labels));
}

}  // namespace

std::optional<std::string_view> Object::label(std::string_view key) const {
  auto it = std::lower_bound(labels_.begin(), labels_.end(), key,
                             [](const auto& kv, std::string_view k) { return kv.first < k; });
  if (it == labels_.end() || it->first != key) return std::nullopt;
  return std::string_view(it->second);
}

std::string object_key(std::string_view ns, std::string_view name) {
  if (ns.empty()) return std::string(name);
  std::string k;
  k.reserve(ns.size() + name.size() + 1);
  k.append(ns).push_back('/');
  k.append(name);
  return k;
}

Result<ObjectPtr> Object::parse(std::string_view json, const DecodeOptions& options) {
  rapidjson::MemoryStream ms(json.data(), json.size());
  Scanner scanner(Mode::kObject, json, ms);
  if (auto r = run_scan(scanner, json, ms); !r) return unexpected(r.error());
  if (scanner.captures.empty() || scanner.captures[0].end == npos) {
    return unexpected(ErrorCode::kInvalidArgument, "JSON value is not an object");
  }
  return make_object(json, scanner.captures[0], options);
}

Result<ObjectList> parse_list(std::string_view json, const DecodeOptions& options) {
  rapidjson::MemoryStream ms(json.data(), json.size());
  Scanner scanner(Mode::kList, json, ms);
  if (auto r = run_scan(scanner, json, ms); !r) return unexpected(r.error());
  ObjectList list;
  list.kind = scanner.root_kind;
  list.api_version = scanner.root_api_version;
  list.resource_version = scanner.root_rv;
  list.continue_token = scanner.root_continue;
  list.remaining_item_count = scanner.root_remaining;
  DecodeOptions item_options = options;
  if (item_options.default_kind.empty() && list.kind.size() > 4 && list.kind.ends_with("List")) {
    item_options.default_kind = list.kind.substr(0, list.kind.size() - 4);
  }
  if (item_options.default_api_version.empty()) item_options.default_api_version = list.api_version;
  list.items.reserve(scanner.captures.size());
  for (auto& c : scanner.captures)
    list.items.push_back(make_object(json, c, item_options));
  return list;
}

Result<RawWatchEvent> parse_watch_event(std::string_view json, const DecodeOptions& options) {
  rapidjson::MemoryStream ms(json.data(), json.size());
  Scanner scanner(Mode::kEvent, json, ms);
  if (auto r = run_scan(scanner, json, ms); !r) return unexpected(r.error());
  if (scanner.event_type.empty()) {
    return unexpected(ErrorCode::kInvalidArgument, "watch event has no type");
  }
  if (scanner.captures.empty()) {
    return unexpected(ErrorCode::kInvalidArgument, "watch event has no object");
  }
  return RawWatchEvent{scanner.event_type, make_object(json, scanner.captures[0], options)};
}

}  // namespace nvdra::k8s
