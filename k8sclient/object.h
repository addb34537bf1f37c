// Object: one Kubernetes object as the client holds it. The JSON text is kept whole (so writes
// built from it never drop fields nvdra does not model) and the metadata every cache and queue
// needs is extracted once. Immutable and shared between the store, handlers and reconcilers.
//
// Decoding is a single SAX pass (no DOM): it validates the JSON, extracts metadata, cuts the
// object out of a list or watch event and removes metadata.managedFields, which is large and of
// no use to a controller.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/json.h"
#include "base/result.h"

namespace nvdra::k8s {

struct DecodeOptions {
  bool strip_managed_fields = true;
  // Items of a list carry no kind/apiVersion; these fill them in (e.g. from the list's kind).
  std::string default_kind;
  std::string default_api_version;
};

using Labels = std::vector<std::pair<std::string, std::string>>;  // sorted by key

class Object;
using ObjectPtr = std::shared_ptr<const Object>;

class Object {
 public:
  // Parses a single object (a JSON object with metadata).
  static Result<ObjectPtr> parse(std::string_view json, const DecodeOptions& options = {});

  const std::string& json() const { return json_; }
  // A DOM of the object for typed reads; parsed on demand.
  Result<json::Document> doc() const { return json::parse(json_); }

  const std::string& kind() const { return *kind_; }
  const std::string& api_version() const { return *api_version_; }
  // Views into the object; valid as long as the object lives.
  std::string_view name() const { return std::string_view(meta_).substr(name_pos(), name_len_); }
  std::string_view namespace_() const { return std::string_view(meta_).substr(0, ns_len_); }
  std::string_view uid() const { return std::string_view(meta_).substr(key_len(), uid_len_); }
  std::string_view resource_version() const {
    return std::string_view(meta_).substr(key_len() + uid_len_);
  }
  int64_t generation() const { return generation_; }
  bool being_deleted() const { return being_deleted_; }
  const Labels& labels() const { return labels_; }
  std::optional<std::string_view> label(std::string_view key) const;
  // "namespace/name", or "name" for cluster-scoped objects: the cache and queue key.
  std::string_view key() const { return std::string_view(meta_).substr(0, key_len()); }

 private:
  friend class ObjectBuilder;
  size_t name_pos() const { return ns_len_ == 0 ? 0 : ns_len_ + 1; }
  size_t key_len() const { return name_pos() + name_len_; }

  // Kept small: an informer holds one per object (see bench/bench_informer_memory.cpp).
  std::string json_;
  std::string meta_;  // "namespace/name" (or "name"), then uid, then resourceVersion
  uint32_t ns_len_ = 0, name_len_ = 0, uid_len_ = 0;
  bool being_deleted_ = false;
  int64_t generation_ = 0;
  const std::string* kind_;         // interned: a handful of distinct values per process
  const std::string* api_version_;  // interned
  Labels labels_;
};

std::string object_key(std::string_view ns, std::string_view name);

struct ObjectList {
  std::string kind;  // e.g. ResourceClaimList
  std::string api_version;
  std::string resource_version;
  std::string continue_token;
  std::optional<int64_t> remaining_item_count;
  std::vector<ObjectPtr> items;
};

// Parses a List response; items get kind (list kind minus "List") and apiVersion filled in.
Result<ObjectList> parse_list(std::string_view json, const DecodeOptions& options = {});

// A raw watch event: the "type" string and the object (or Status for ERROR events).
struct RawWatchEvent {
  std::string type;
  ObjectPtr object;
};
Result<RawWatchEvent> parse_watch_event(std::string_view json, const DecodeOptions& options = {});

}  // namespace nvdra::k8s
