// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it.
//
// A candidate takes the lease when it is free or expired. Expiry is judged by *local* time: the
// moment this candidate last saw the record change, plus leaseDurationSeconds - so clock skew
// between candidates does not matter (skew in clock *rate* still would). The leader renews every
// retry period; when no renewal succeeds within the renew deadline it steps down. On shutdown it
// releases the lease (holder cleared, duration 1 s) so a standby takes over at once.
// Writes use the lease's resourceVersion: of two racing candidates one gets 409 and loses.
// No fencing is provided: a leader that stalls longer than the lease may act alongside its
// successor; reconcilers must stay idempotent.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/asio.h"
#include "base/cancel.h"
#include "base/clock.h"
#include "base/result.h"
#include "k8sclient/rest/rest_client.h"

namespace nvdra::k8s {

struct LeaseRecord {
  std::string holder;
  int lease_duration_seconds = 0;
  Clock::system_point acquire_time{};
  Clock::system_point renew_time{};
  int transitions = 0;
  std::string resource_version;  // of the Lease object this was read from
  bool operator==(const LeaseRecord& o) const {
    return holder == o.holder && lease_duration_seconds == o.lease_duration_seconds &&
           acquire_time == o.acquire_time && renew_time == o.renew_time &&
           transitions == o.transitions && resource_version == o.resource_version;
  }
};

// Storage of the record (the Lease object). Tests provide an in-memory version.
class LeaseLock {
 public:
  virtual ~LeaseLock() = default;
  // nullopt when the lease does not exist.
  virtual awaitable<Result<std::optional<LeaseRecord>>> get() = 0;
  virtual awaitable<Result<LeaseRecord>> create(const LeaseRecord& record) = 0;
  // Must fail with a conflict when record.resource_version is stale.
  virtual awaitable<Result<LeaseRecord>> update(const LeaseRecord& record) = 0;
  virtual std::string describe() const = 0;
};

class RestLeaseLock final : public LeaseLock {
 public:
  RestLeaseLock(std::shared_ptr<RestClient> client, std::string ns, std::string name);
  awaitable<Result<std::optional<LeaseRecord>>> get() override;
  awaitable<Result<LeaseRecord>> create(const LeaseRecord& record) override;
  awaitable<Result<LeaseRecord>> update(const LeaseRecord& record) override;
  std::string describe() const override { return ns_ + "/" + name_; }

 private:
  std::string body(const LeaseRecord& r) const;
  std::shared_ptr<RestClient> client_;
  std::string ns_, name_;
};

// Lease JSON <-> record (MicroTime timestamps).
Result<LeaseRecord> lease_record_from_object(const Object& lease);
std::string format_micro_time(Clock::system_point t);
std::optional<Clock::system_point> parse_time(std::string_view s);

struct LeaderElectionConfig {
  std::string identity;
  std::chrono::seconds lease_duration{15};
  std::chrono::seconds renew_deadline{10};
  std::chrono::seconds retry_period{2};
  bool release_on_cancel = true;
};

struct LeaderCallbacks {
  std::function<void()> on_started_leading;
  std::function<void()> on_stopped_leading;
  std::function<void(const std::string& holder)> on_new_leader;
};

class LeaderElector {
 public:
  // Rejects configurations client-go rejects (lease <= renew deadline, renew <= 1.2 * retry).
  static Result<std::unique_ptr<LeaderElector>> create(
      LeaseLock& lock, LeaderElectionConfig cfg, LeaderCallbacks callbacks,
      const Clock& clock = SystemClock::instance());

  // One attempt to acquire or renew; true when this candidate holds the lease afterwards.
  awaitable<bool> try_acquire_or_renew();
  // Gives the lease up if held.
  awaitable<void> release();

  // Campaigns until `cancel` fires: acquires, then renews until it cannot; calls the callbacks.
  // Returns after losing the lease (callers usually exit) or on cancellation (after release).
  awaitable<void> run(Cancellation* cancel);

  bool is_leader() const { return leader_; }
  const std::string& observed_holder() const { return observed_.holder; }

 private:
  LeaderElector(LeaseLock& lock, LeaderElectionConfig cfg, LeaderCallbacks cb, const Clock& clock)
      : lock_(lock), cfg_(std::move(cfg)), cb_(std::move(cb)), clock_(clock) {}
  void observe(const LeaseRecord& r);

  LeaseLock& lock_;
  LeaderElectionConfig cfg_;
  LeaderCallbacks cb_;
  const Clock& clock_;
  LeaseRecord observed_;
  Clock::steady_point observed_at_{};
  bool leader_ = false;
  std::string reported_leader_;
};

}  // namespace nvdra::k8s
