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

  const std::string& kind() const { return kind_; }
  const std::string& api_version() const { return api_version_; }
  const std::string& name() const { return name_; }
  const std::string& namespace_() const { return namespace__; }
  const std::string& uid() const { return uid_; }
  const std::string& resource_version() const { return resource_version_; }
  int64_t generation() const { return generation_; }
  bool being_deleted() const { return being_deleted_; }
  const Labels& labels() const { return labels_; }
  std::optional<std::string_view> label(std::string_view key) const;
  // "namespace/name", or "name" for cluster-scoped objects: the cache and queue key.
  std::string key() const;

  // Approximate heap footprint, for the informer memory benchmark.
  size_t memory_bytes() const;

 private:
  friend class ObjectBuilder;
  std::string json_;
  std::string kind_, api_version_, name_, namespace__, uid_, resource_version_;
  int64_t generation_ = 0;
  bool being_deleted_ = false;
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
