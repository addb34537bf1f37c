// The simulated API server's storage: every object as JSON, one global resourceVersion counter
// (as etcd's revision), and an event history that watches read from.
//
// Semantics follow kube-apiserver where a controller can tell the difference: uid and
// creationTimestamp set on create, resourceVersion increasing on every write, metadata.generation
// bumped on spec changes only, 409 on a stale resourceVersion, status written only through the
// status subresource, finalizers holding deletion with deletionTimestamp set, ownerReference
// garbage collection (background, foreground, orphan), namespaces that must exist and take their
// content with them, pagination with continue tokens, and 410 Gone for watches older than the
// history window. Errors are nvdra Errors carrying the Status fields (code kApi). Thread-safe.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/asio.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/result.h"
#include "k8sclient/selectors.h"
#include "sim/persistence.h"
#include "sim/resource_types.h"

namespace nvdra::sim {

Error api_error(int code, std::string_view reason, std::string message);

struct StoreEvent {
  int64_t rv = 0;
  std::string type;  // ADDED MODIFIED DELETED
  std::string storage_key;
  std::string ns, name;
  std::string json;
  // MODIFIED by a general update: the object before it, so a watch with a selector can tell an
  // object entering (ADDED) or leaving (DELETED) its selection, as kube-apiserver's watch cache.
  std::string prev_json;
};

struct ListQuery {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;
  std::string continue_token;
};

struct ListResult {
  std::vector<std::string> items;  // object JSON
  int64_t resource_version = 0;
  std::string continue_token;
  std::optional<int64_t> remaining;
};

struct DeleteRequest {
  std::string propagation;                      // Background (default) | Foreground | Orphan
  std::optional<int64_t> grace_period_seconds;  // 0 = now (the kubelet confirming a pod's end)
  std::optional<std::string> precondition_uid;
  std::optional<std::string> precondition_rv;
  bool dry_run = false;
};

class Store {
 public:
  // The watch history keeps at most `history_limit` events and `history_bytes` of their
  // objects (each event holds the object and, for an update, its previous version): a count
  // alone let a few hundred updates of 2.5 MB objects pin gigabytes. Watches older than what
  // is kept get 410 and relist, as on a real server after etcd compaction.
  explicit Store(const Clock& clock = SystemClock::instance(), size_t history_limit = 100'000,
                 size_t history_bytes = kDefaultHistoryBytes);
  static constexpr size_t kDefaultHistoryBytes = 64u << 20;

  int64_t current_rv() const;

  // Makes the store durable in `dir` (--data-dir): loads what is there and logs every change.
  // resourceVersions continue from the stored ones. Call before serving.
  Status open_data_dir(const std::string& dir);

  Result<std::string> create(const ResourceType& t, const std::string& ns, json::Document obj,
                             bool dry_run = false);
  Result<std::string> get(const ResourceType& t, const std::string& ns,
                          const std::string& name) const;
  Result<ListResult> list(const ResourceType& t, const std::string& ns, const ListQuery& q) const;
  // PUT. `status` = the status subresource (only .status changes); otherwise .status is kept.
  Result<std::string> update(const ResourceType& t, const std::string& ns, const std::string& name,
                             json::Document obj, bool status, bool dry_run = false);
  // Read-modify-write under the store lock: `mutate` edits the current object (or, when
  // `create_if_missing` and it is absent, an empty object) and the result is written like update.
  using Mutator = std::function<Status(json::Document& obj, bool exists)>;
  Result<std::string> modify(const ResourceType& t, const std::string& ns, const std::string& name,
                             bool status, bool dry_run, bool create_if_missing,
                             const Mutator& mutate);
  // Returns the object: with deletionTimestamp when finalizers hold it, else its last state.
  Result<std::string> remove(const ResourceType& t, const std::string& ns, const std::string& name,
                             const DeleteRequest& req);

  // Events after `rv` for one storage key ("" = every key; namespace "" = all). kApi 410 when `rv`
  // is older than the history kept.
  Result<std::vector<StoreEvent>> events_after(int64_t rv, const std::string& storage_key,
                                               const std::string& ns) const;
  // Waits until an event newer than `rv` exists or `max` passes.
  awaitable<void> wait_for_change(int64_t rv, std::chrono::milliseconds max);

  // With kubelets (nvdra-sim up): deleting a pod bound to a node only marks it terminating, and
  // the node's kubelet removes it (grace period 0) once its containers and devices are released.
  void set_graceful_pod_deletion(bool on);

  // Makes the history start now (fault injection: every resume gets 410).
  void compact_history();

  // The store's clock as RFC 3339 (creation and deletion timestamps, managedFields times).
  std::string now_rfc3339() const;

  // Field values for field selectors.
  static std::optional<std::string> field_value(const json::Value& obj, const std::string& field);

 private:
  struct Entry {
    std::string json;
    int64_t rv = 0;
  };
  using Bucket = std::map<std::string, Entry>;  // "ns/name" -> object

  Result<std::string> write_locked(const ResourceType& t, const std::string& ns,
                                   const std::string& name, json::Document obj, bool status,
                                   bool dry_run, bool is_create);
  void record_locked(std::string type, const std::string& storage_key, const std::string& ns,
                     const std::string& name, const std::string& json, int64_t rv,
                     std::string prev_json = {});
  Result<std::string> delete_now_locked(const std::string& storage_key, const std::string& key,
                                        const std::string& propagation);
  // Deletes the object now, or when finalizers hold it, marks it with a deletionTimestamp.
  void delete_or_mark_locked(const std::string& storage_key, const std::string& key);
  void collect_garbage_locked(const std::string& owner_uid, const std::string& propagation);
  bool namespace_exists_locked(const std::string& ns) const;
  bool namespace_terminating_locked(const std::string& ns) const;
  bool namespace_empty_locked(const std::string& ns) const;
  void notify_locked();

  const Clock& clock_;
  size_t history_limit_;
  size_t history_bytes_limit_;
  size_t history_bytes_ = 0;  // object bytes in history_; guarded by mu_
  mutable std::mutex mu_;
  int64_t rv_ = 1;                         // guarded by mu_
  std::map<std::string, Bucket> buckets_;  // storage key -> objects; guarded by mu_
  std::deque<StoreEvent> history_;         // guarded by mu_
  int64_t history_start_rv_ = 1;           // events after this are in history_; guarded by mu_
  std::vector<std::shared_ptr<net::steady_timer>> waiters_;  // guarded by mu_
  std::unique_ptr<Wal> wal_;                                 // guarded by mu_
  bool graceful_pods_ = false;                               // guarded by mu_
  // Whether deleting this object waits: finalizers, or a pod its kubelet must release first.
  bool deletion_waits_locked(const std::string& storage_key, const json::Value& obj) const;
};

}  // namespace nvdra::sim
