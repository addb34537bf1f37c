// The prepare/unprepare pipeline of one DRA driver on one node: claim → configs → devices →
// CDI spec → checkpoint, idempotent and crash-safe (anchor-nvidia.md §3.2). The driver-specific
// device work sits behind DeviceHandler (GPU devices, ComputeDomain channels and daemons).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/cdi/cdi_spec.h"
#include "agent/prepare/claim.h"
#include "agent/state/checkpoint.h"
#include "api/nvidia_devices.h"
#include "base/result.h"

namespace nvdra::agent {

// The API calls the pipeline makes; blocking (kubelet's gRPC threads call in).
class ClusterAccess {
 public:
  virtual ~ClusterAccess() = default;
  virtual Result<std::string> get_claim(const std::string& ns, const std::string& name) = 0;
  // kNotFound when no ComputeDomain has this UID.
  virtual Result<std::string> get_compute_domain(const std::string& uid) = 0;
  // Sets `key` on this node's labels, refusing (kInvalidArgument) when it holds another value.
  virtual Status set_node_label(const std::string& key, const std::string& value) = 0;
  // Removes `key` when it holds `value`.
  virtual Status remove_node_label(const std::string& key, const std::string& value) = 0;
  virtual void warning_event(const std::string& kind, const std::string& ns,
                             const std::string& name, const std::string& uid,
                             const std::string& reason, const std::string& message) = 0;
};

// Crash tests: with NVDRA_AGENT_CRASH_AT=<point> the agent kills itself (SIGKILL) the first time
// it reaches that point; a marker file in `marker_dir` makes it once per node, so the restarted
// agent goes on. Points: prepare-started, prepare-mig-created, prepare-cdi-written,
// unprepare-devices-done.
void set_crash_marker_dir(std::string dir);
void crash_point(std::string_view point);

struct PreparedResult {
  std::vector<PreparedDevice> devices;
  std::string error;  // per-claim error for kubelet
};

class DeviceHandler {
 public:
  virtual ~DeviceHandler() = default;
  virtual std::string_view driver() const = 0;
  virtual std::string_view cdi_kind() const = 0;  // "k8s.gpu.nvidia.com/claim"
  // Prepares the claim's devices into `entry` (devices, MIG, MPS, …) and the CDI spec content.
  // `save` persists `entry` (call it after each host change that must be undone on a crash).
  // On error the caller rolls back with unprepare(entry) — except for kTimeout, which means "not
  // yet" (a ComputeDomain whose daemon is not ready): what was done stays, kubelet retries.
  virtual Status prepare(const ClaimInfo& claim, PreparedClaim& entry, CdiSpec& spec,
                         const std::function<Status()>& save) = 0;
  // Undoes everything recorded in `entry`; idempotent.
  virtual Status unprepare(const std::string& uid, const PreparedClaim& entry) = 0;
  // Removes host state that no checkpoint entry references (after a crash or a lost file).
  virtual void sweep_orphans(const Checkpoint& checkpoint) = 0;
  // Fills what the host still shows about a prepared claim whose checkpoint entry was lost (its
  // devices are known from its CDI spec): MIG devices created for it, its MPS daemon.
  virtual void recover(const std::string& uid, PreparedClaim& entry) = 0;
  // Whether a half-done entry can be prepared again as it is (no rollback first).
  virtual bool resumable(const PreparedClaim&) const { return false; }
  // Other published names of the same hardware (gpu-0 and gpu-vfio-0): one prepared claim at a
  // time may hold any of them.
  virtual std::vector<std::string> aliases(std::string_view /*device*/) const { return {}; }
};

struct DriverStateOptions {
  std::string checkpoint_path;
  std::string boot_id;
  std::string node_name;
  // A rollback that failed at start is retried in the background: first after `initial`, the
  // wait doubling up to `max`.
  std::chrono::milliseconds rollback_retry_initial{std::chrono::seconds(1)};
  std::chrono::milliseconds rollback_retry_max{std::chrono::minutes(2)};
};

struct DriverStats {  // for metrics
  std::function<void(std::string_view op, std::string_view device_type, double seconds)> observe;
  std::function<void(std::string_view op, std::string_view reason)> error;
  std::function<void(const Checkpoint&)> prepared_changed;
  std::function<void(size_t claims)> rollbacks_pending;  // claims whose rollback is retried
};

class DriverState {
 public:
  DriverState(DriverStateOptions options, std::unique_ptr<DeviceHandler> handler,
              ClusterAccess& cluster, CdiWriter cdi, DriverStats stats = {});
  ~DriverState();  // stops the rollback retries

  // Loads the checkpoint, rolls back half-done claims and removes orphans. A claim whose
  // rollback fails does not stop the start: it is marked failed (Event, metric), its
  // Prepare/Unprepare answer an error, and the rollback is retried in the background.
  Status start();

  PreparedResult prepare(const std::string& ns, const std::string& name, const std::string& uid);
  std::string unprepare(const std::string& uid);  // "" on success

  std::string_view driver() const { return handler_->driver(); }
  Checkpoint snapshot() const;

 private:
  Status save_locked();
  void recover_from_cdi_specs();
  void release_devices(const std::vector<std::string>& devices);
  // Undoes a half-done claim: its devices, then its CDI spec.
  Status roll_back(const std::string& uid, const PreparedClaim& entry);
  void rollback_failed(const std::string& uid, const PreparedClaim& entry, const Error& error);
  void retry_rollbacks();  // the retry thread
  void report_rollbacks_locked();

  DriverStateOptions opt_;
  std::unique_ptr<DeviceHandler> handler_;
  ClusterAccess& cluster_;
  CdiWriter cdi_;
  DriverStats stats_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Checkpoint checkpoint_;               // guarded by mu_
  std::set<std::string> busy_devices_;  // devices with a prepare/unprepare in flight; mu_
  std::set<std::string> busy_claims_;   // claim UIDs in flight; mu_
  // Half-done claims whose rollback failed, with the last error; their entries stay in the
  // checkpoint (and their devices stay taken) until a retry succeeds. mu_
  std::map<std::string, std::string> failed_rollbacks_;
  bool stopping_ = false;  // mu_
  std::condition_variable retry_cv_;
  std::thread retry_thread_;
};

}  // namespace nvdra::agent
