#include "k8sclient/cache/leader_election.h"

#include <gtest/gtest.h>

#include "k8sclient/rest/status.h"
#include "support/io_thread.h"
#include "support/test_server.h"

namespace nvdra::k8s {
namespace {

using namespace std::chrono_literals;

// A Lease in memory with the API server's optimistic concurrency.
class MemoryLease final : public LeaseLock {
 public:
  std::optional<LeaseRecord> stored;
  int rv = 0;
  int writes = 0;

  awaitable<Result<std::optional<LeaseRecord>>> get() override { co_return stored; }
  awaitable<Result<LeaseRecord>> create(const LeaseRecord& r) override {
    if (stored) co_return unexpected(conflict("AlreadyExists"));
    co_return save(r);
  }
  awaitable<Result<LeaseRecord>> update(const LeaseRecord& r) override {
    if (!stored || stored->resource_version != r.resource_version)
      co_return unexpected(conflict("Conflict"));
    co_return save(r);
  }
  std::string describe() const override { return "memory/lease"; }

 private:
  static Error conflict(const char* reason) {
    Error e(ErrorCode::kApi, "conflict");
    e.http_status = 409;
    e.reason = reason;
    return e;
  }
  LeaseRecord save(LeaseRecord r) {
    r.resource_version = std::to_string(++rv);
    stored = r;
    ++writes;
    return r;
  }
};

struct Candidate {
  std::unique_ptr<LeaderElector> elector;
  int started = 0, stopped = 0;
  std::vector<std::string> leaders;
  Candidate(LeaseLock& lock, const std::string& id, const Clock& clock) {
    LeaderCallbacks cb;
    cb.on_started_leading = [this] { ++started; };
    cb.on_stopped_leading = [this] { ++stopped; };
    cb.on_new_leader = [this](const std::string& h) { leaders.push_back(h); };
    elector = std::move(*LeaderElector::create(lock, LeaderElectionConfig{id}, cb, clock));
  }
};

TEST(LeaderElection, ExactlyOneLeaderAndTakeoverAfterExpiry) {
  testing::IoThread io;
  FakeClock clock;
  MemoryLease lease;
  Candidate a(lease, "a", clock), b(lease, "b", clock);
  EXPECT_TRUE(io.run(a.elector->try_acquire_or_renew()));
  EXPECT_FALSE(io.run(b.elector->try_acquire_or_renew()));
  EXPECT_TRUE(a.elector->is_leader());
  EXPECT_FALSE(b.elector->is_leader());
  EXPECT_EQ(lease.stored->holder, "a");
  EXPECT_EQ(lease.stored->transitions, 0);
  // a keeps renewing every retry period: b never gets in, however long this goes on.
  for (int i = 0; i < 20; ++i) {
    clock.advance(2s);
    EXPECT_TRUE(io.run(a.elector->try_acquire_or_renew()));
    EXPECT_FALSE(io.run(b.elector->try_acquire_or_renew()));
  }
  // a stops renewing. Until the lease duration has passed *since b last saw it change*, b waits.
  clock.advance(14s);
  EXPECT_FALSE(io.run(b.elector->try_acquire_or_renew()));
  clock.advance(2s);
  EXPECT_TRUE(io.run(b.elector->try_acquire_or_renew()));
  EXPECT_EQ(lease.stored->holder, "b");
  EXPECT_EQ(lease.stored->transitions, 1);
  // a comes back: it must see b's lease as valid and not take it back.
  EXPECT_FALSE(io.run(a.elector->try_acquire_or_renew()));
  EXPECT_FALSE(a.elector->is_leader());
  EXPECT_EQ(a.elector->observed_holder(), "b");
}

TEST(LeaderElection, RacingCandidatesOneWinsByResourceVersion) {
  testing::IoThread io;
  FakeClock clock;
  MemoryLease lease;
  Candidate a(lease, "a", clock), b(lease, "b", clock);
  ASSERT_TRUE(io.run(a.elector->try_acquire_or_renew()));
  EXPECT_FALSE(io.run(b.elector->try_acquire_or_renew()));  // b starts observing
  LeaseRecord seen = *lease.stored;
  clock.advance(16s);
  // b and a third writer both act on the expired record; the slower one holds a stale
  // resourceVersion and its write is refused.
  EXPECT_TRUE(io.run(b.elector->try_acquire_or_renew()));
  LeaseRecord stale = seen;
  stale.holder = "c";
  auto r = io.run(lease.update(stale));
  EXPECT_FALSE(r);
  EXPECT_EQ(lease.stored->holder, "b");
}

TEST(LeaderElection, ReleaseLetsAStandbyTakeOverAtOnce) {
  testing::IoThread io;
  FakeClock clock;
  MemoryLease lease;
  Candidate a(lease, "a", clock), b(lease, "b", clock);
  ASSERT_TRUE(io.run(a.elector->try_acquire_or_renew()));
  EXPECT_FALSE(io.run(b.elector->try_acquire_or_renew()));
  io.run(a.elector->release());
  EXPECT_EQ(lease.stored->holder, "");
  EXPECT_EQ(lease.stored->lease_duration_seconds, 1);
  EXPECT_TRUE(io.run(b.elector->try_acquire_or_renew()));  // no waiting for expiry
}

TEST(LeaderElection, RunCallsCallbacksAndReleasesOnCancel) {
  testing::IoThread io;
  MemoryLease lease;
  LeaderCallbacks cb;
  std::atomic<int> started{0}, stopped{0};
  cb.on_started_leading = [&] { ++started; };
  cb.on_stopped_leading = [&] { ++stopped; };
  auto e = LeaderElector::create(lease, LeaderElectionConfig{"solo", 3s, 2s, 1s}, cb);
  ASSERT_TRUE(e);
  Cancellation cancel;
  auto done = io.spawn((*e)->run(&cancel));
  for (int i = 0; i < 200 && started == 0; ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(started.load(), 1);
  cancel.cancel();
  ASSERT_EQ(done.wait_for(3s), std::future_status::ready);
  EXPECT_EQ(stopped.load(), 1);
  EXPECT_EQ(lease.stored->holder, "");
}

TEST(LeaderElection, RejectsBadTimings) {
  MemoryLease lease;
  EXPECT_FALSE(LeaderElector::create(lease, LeaderElectionConfig{"x", 10s, 10s, 2s}, {}));
  EXPECT_FALSE(LeaderElector::create(lease, LeaderElectionConfig{"x", 15s, 2s, 2s}, {}));
  EXPECT_FALSE(LeaderElector::create(lease, LeaderElectionConfig{"", 15s, 10s, 2s}, {}));
  EXPECT_TRUE(LeaderElector::create(lease, LeaderElectionConfig{"x", 15s, 10s, 2s}, {}));
}

TEST(LeaseTime, MicroTimeRoundTrip) {
  auto t = std::chrono::system_clock::time_point(std::chrono::microseconds(1'700'000'000'123'456));
  std::string s = format_micro_time(t);
  EXPECT_EQ(s, "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(parse_time(s), t);
  EXPECT_EQ(parse_time("2023-11-14T22:13:20Z"), t - std::chrono::microseconds(123456));
  EXPECT_EQ(parse_time("2023-11-14T23:13:20+01:00"), t - std::chrono::microseconds(123456));
  EXPECT_FALSE(parse_time("2023-11-14 22:13:20Z"));
  EXPECT_FALSE(parse_time("garbage"));
  EXPECT_FALSE(parse_time("2023-13-14T22:13:20Z"));
}

// A Lease endpoint with the API server's rules for create, merge patch and resourceVersion.
class LeaseEndpoint {
 public:
  testing::Reply handle(const httpd::Request& r) {
    std::lock_guard lock(mu_);
    const std::string path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
    if (r.method == "GET" && r.path == path + "/nvdra") {
      if (spec_.empty())
        return {404, {}, status_json(404, "NotFound", "leases \"nvdra\" not found")};
      return {200, {}, body()};
    }
    if (r.method == "POST" && r.path == path) {
      if (!spec_.empty()) return {409, {}, status_json(409, "AlreadyExists", "exists")};
      auto doc = json::parse(r.body);
      if (!doc || json::string_or(*json::find(*doc, "metadata"), "name") != "nvdra") {
        return {422, {}, status_json(422, "Invalid", "bad lease")};
      }
      spec_ = json::write(*json::find(*doc, "spec"));
      ++rv_;
      return {201, {}, body()};
    }
    if (r.method == "PATCH" && r.path == path + "/nvdra") {
      EXPECT_EQ(r.header("Content-Type"), "application/merge-patch+json");
      auto doc = json::parse(r.body);
      auto rv = json::find_path(*doc, {"metadata", "resourceVersion"});
      if (!rv || std::string_view(rv->GetString()) != std::to_string(rv_)) {
        return {409, {}, status_json(409, "Conflict", "the object has been modified")};
      }
      spec_ = json::write(*json::find(*doc, "spec"));
      ++rv_;
      return {200, {}, body()};
    }
    return {405, {}, status_json(405, "MethodNotAllowed", "no")};
  }
  std::string holder() {
    std::lock_guard lock(mu_);
    auto doc = json::parse(spec_);
    return doc ? std::string(json::string_or(*doc, "holderIdentity")) : "";
  }

 private:
  std::string body() const {
    return R"({"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"nvdra","namespace":"kube-system","resourceVersion":")" +
           std::to_string(rv_) + R"(","labels":{"keep":"me"}},"spec":)" + spec_ + "}";
  }
  std::mutex mu_;
  std::string spec_;
  int rv_ = 0;
};

TEST(LeaderElectionOverHttp, TwoCandidatesOneLeaderThenTakeover) {
  testing::IoThread io;
  LeaseEndpoint endpoint;
  testing::TestServer server(
      io, testing::reply_with([&](const httpd::Request& r) { return endpoint.handle(r); }));
  RestConfig cfg;
  cfg.server = server.url(false);
  std::string err;
  parse_server_url(cfg.server, &cfg.endpoint, &err);
  cfg.qps = 0;
  auto client = *RestClient::create(io.executor(), cfg);
  RestLeaseLock lock_a(client, "kube-system", "nvdra"), lock_b(client, "kube-system", "nvdra");
  FakeClock clock;
  Candidate a(lock_a, "a", clock), b(lock_b, "b", clock);
  EXPECT_TRUE(io.run(a.elector->try_acquire_or_renew()));
  EXPECT_FALSE(io.run(b.elector->try_acquire_or_renew()));
  EXPECT_EQ(endpoint.holder(), "a");
  clock.advance(2s);
  EXPECT_TRUE(io.run(a.elector->try_acquire_or_renew()));
  clock.advance(16s);  // a stopped renewing, but b has not seen its last renewal yet:
  EXPECT_FALSE(io.run(b.elector->try_acquire_or_renew()));  // the lease changed: b waits anew
  clock.advance(16s);
  EXPECT_TRUE(io.run(b.elector->try_acquire_or_renew()));
  EXPECT_EQ(endpoint.holder(), "b");
  EXPECT_FALSE(io.run(a.elector->try_acquire_or_renew()));
  io.run(b.elector->release());
  EXPECT_EQ(endpoint.holder(), "");
  auto rec = io.run(lock_a.get());
  ASSERT_TRUE(rec && rec->has_value());
  EXPECT_EQ((*rec)->transitions, 1);
  EXPECT_EQ((*rec)->lease_duration_seconds, 1);
}

}  // namespace
}  // namespace nvdra::k8s
