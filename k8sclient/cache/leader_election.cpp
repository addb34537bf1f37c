#include "k8sclient/cache/leader_election.h"

#include <fmt/format.h>

#include <charconv>
#include <ctime>
#include <random>

#include "base/log.h"
#include "k8sclient/rest/status.h"

namespace nvdra::k8s {

std::string format_micro_time(Clock::system_point t) {
  using namespace std::chrono;
  auto secs = time_point_cast<seconds>(t);
  if (secs > t) secs -= seconds(1);
  auto micros = duration_cast<microseconds>(t - secs).count();
  std::time_t tt = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
}

std::optional<Clock::system_point> parse_time(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
  auto num = [&](size_t pos, size_t len, int* out) {
    if (pos + len > s.size()) return false;
    auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + len, *out);
    return ec == std::errc() && p == s.data() + pos + len;
  };
  std::tm tm{};
  int y, mo, d, h, mi, se;
  if (s.size() < 20 || !num(0, 4, &y) || s[4] != '-' || !num(5, 2, &mo) || s[7] != '-' ||
      !num(8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !num(11, 2, &h) || s[13] != ':' ||
      !num(14, 2, &mi) || s[16] != ':' || !num(17, 2, &se)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  size_t pos = 19;
  int64_t micros = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 6) {
        micros = micros * 10 + (s[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    while (digits++ < 6)
      micros *= 10;
  }
  int offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!num(pos + 1, 2, &oh) || s[pos + 3] != ':' || !num(pos + 4, 2, &om)) return std::nullopt;
    offset_minutes = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  std::time_t tt = timegm(&tm);
  return std::chrono::system_clock::from_time_t(tt) - std::chrono::minutes(offset_minutes) +
         std::chrono::microseconds(micros);
}

Result<LeaseRecord> lease_record_from_object(const Object& lease) {
  auto doc = lease.doc();
  if (!doc) return unexpected(doc.error());
  LeaseRecord r;
  r.resource_version = lease.resource_version();
  const json::Value* spec = json::find(*doc, "spec");
  if (spec == nullptr || !spec->IsObject()) return r;
  r.holder = std::string(json::string_or(*spec, "holderIdentity"));
  r.lease_duration_seconds =
      static_cast<int>(json::get_int(*spec, "leaseDurationSeconds").value_or(0));
  r.transitions = static_cast<int>(json::get_int(*spec, "leaseTransitions").value_or(0));
  if (auto t = parse_time(json::string_or(*spec, "acquireTime"))) r.acquire_time = *t;
  if (auto t = parse_time(json::string_or(*spec, "renewTime"))) r.renew_time = *t;
  return r;
}

RestLeaseLock::RestLeaseLock(std::shared_ptr<RestClient> client, std::string ns, std::string name)
    : client_(std::move(client)), ns_(std::move(ns)), name_(std::move(name)) {}

namespace {
ResourceRef lease_ref(const std::string& ns, const std::string& name) {
  ResourceRef r;
  r.group = "coordination.k8s.io";
  r.version = "v1";
  r.resource = "leases";
  r.namespace_ = ns;
  r.name = name;
  return r;
}

std::string spec_json(const LeaseRecord& r) {
  std::string s = "{\"holderIdentity\":" + json::quote(r.holder);
  s += fmt::format(",\"leaseDurationSeconds\":{}", r.lease_duration_seconds);
  s += ",\"acquireTime\":" + json::quote(format_micro_time(r.acquire_time));
  s += ",\"renewTime\":" + json::quote(format_micro_time(r.renew_time));
  s += fmt::format(",\"leaseTransitions\":{}}}", r.transitions);
  return s;
}
}  // namespace

std::string RestLeaseLock::body(const LeaseRecord& r) const {
  return R"({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":)" +
         json::quote(name_) + ",\"namespace\":" + json::quote(ns_) + "},\"spec\":" + spec_json(r) +
         "}";
}

awaitable<Result<std::optional<LeaseRecord>>> RestLeaseLock::get() {
  ResourceRef ref = lease_ref(ns_, name_);
  auto obj = co_await client_->get(ref);
  if (!obj) {
    if (is_not_found(obj.error())) co_return std::optional<LeaseRecord>();
    co_return unexpected(obj.error());
  }
  auto rec = lease_record_from_object(**obj);
  if (!rec) co_return unexpected(rec.error());
  co_return std::optional<LeaseRecord>(std::move(*rec));
}

awaitable<Result<LeaseRecord>> RestLeaseLock::create(const LeaseRecord& record) {
  ResourceRef ref = lease_ref(ns_, "");
  std::string text = body(record);
  auto obj = co_await client_->create(ref, std::move(text));
  if (!obj) co_return unexpected(obj.error());
  co_return lease_record_from_object(**obj);
}

awaitable<Result<LeaseRecord>> RestLeaseLock::update(const LeaseRecord& record) {
  // A merge patch keeps fields we do not model (labels, strategy, preferredHolder); including
  // metadata.resourceVersion makes the server refuse it (409) when the lease changed meanwhile.
  std::string patch = "{\"metadata\":{\"resourceVersion\":" + json::quote(record.resource_version) +
                      "},\"spec\":" + spec_json(record) + "}";
  ResourceRef ref = lease_ref(ns_, name_);
  auto obj = co_await client_->patch(ref, PatchType::kMerge, std::move(patch));
  if (!obj) co_return unexpected(obj.error());
  co_return lease_record_from_object(**obj);
}

Result<std::unique_ptr<LeaderElector>> LeaderElector::create(LeaseLock& lock,
                                                             LeaderElectionConfig cfg,
                                                             LeaderCallbacks callbacks,
                                                             const Clock& clock) {
  if (cfg.identity.empty())
    return unexpected(ErrorCode::kInvalidArgument, "leader election: empty identity");
  if (cfg.lease_duration <= cfg.renew_deadline) {
    return unexpected(ErrorCode::kInvalidArgument,
                      "leader election: lease duration must be longer than the renew deadline");
  }
  if (cfg.renew_deadline.count() * 10 <= cfg.retry_period.count() * 12) {
    return unexpected(ErrorCode::kInvalidArgument,
                      "leader election: renew deadline must exceed 1.2 x the retry period");
  }
  return std::unique_ptr<LeaderElector>(
      new LeaderElector(lock, std::move(cfg), std::move(callbacks), clock));
}

void LeaderElector::observe(const LeaseRecord& r) {
  if (!(r == observed_)) {
    observed_ = r;
    observed_at_ = clock_.now();
  }
  if (r.holder != reported_leader_) {
    reported_leader_ = r.holder;
    if (cb_.on_new_leader && !r.holder.empty()) cb_.on_new_leader(r.holder);
  }
}

awaitable<bool> LeaderElector::try_acquire_or_renew() {
  const auto now = clock_.system_now();
  LeaseRecord desired;
  desired.holder = cfg_.identity;
  desired.lease_duration_seconds = static_cast<int>(cfg_.lease_duration.count());
  desired.acquire_time = now;
  desired.renew_time = now;

  auto current = co_await lock_.get();
  if (!current) {
    NVDRA_V(2, "leader election: cannot read lease {}: {}", lock_.describe(),
            current.error().to_string());
    co_return leader_ = false;
  }
  if (!current->has_value()) {
    auto created = co_await lock_.create(desired);
    if (!created) co_return leader_ = false;
    observe(*created);
    co_return leader_ = true;
  }
  const LeaseRecord& old = **current;
  observe(old);
  const bool other_holder = !old.holder.empty() && old.holder != cfg_.identity;
  if (other_holder &&
      observed_at_ + std::chrono::seconds(old.lease_duration_seconds) > clock_.now()) {
    co_return leader_ = false;  // someone else holds a lease that has not expired
  }
  desired.resource_version = old.resource_version;
  if (old.holder == cfg_.identity) {
    desired.acquire_time = old.acquire_time;
    desired.transitions = old.transitions;
  } else {
    desired.transitions = old.transitions + 1;
  }
  auto updated = co_await lock_.update(desired);
  if (!updated) {
    NVDRA_V(2, "leader election: update of {} failed: {}", lock_.describe(),
            updated.error().to_string());
    co_return leader_ = false;
  }
  observe(*updated);
  co_return leader_ = true;
}

awaitable<void> LeaderElector::release() {
  if (!leader_) co_return;
  LeaseRecord r = observed_;
  r.holder.clear();
  r.lease_duration_seconds = 1;
  r.acquire_time = r.renew_time = clock_.system_now();
  auto res = co_await lock_.update(r);
  if (!res) {
    NVDRA_WARN("leader election: releasing {} failed: {}", lock_.describe(),
               res.error().to_string());
  } else {
    observe(*res);
  }
  leader_ = false;
}

awaitable<void> LeaderElector::run(Cancellation* cancel) {
  static thread_local std::minstd_rand rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.0, 0.2);
  auto cancelled = [&] { return cancel && cancel->cancelled(); };
  while (!cancelled()) {
    if (co_await try_acquire_or_renew()) break;
    auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(cfg_.retry_period *
                                                                     (1.0 + jitter(rng)));
    if (!co_await sleep_for(wait, cancel)) break;
  }
  if (cancelled()) co_return;
  NVDRA_INFO("leader election: {} became the leader of {}", cfg_.identity, lock_.describe());
  if (cb_.on_started_leading) cb_.on_started_leading();
  auto last_renew = clock_.now();
  while (!cancelled()) {
    if (!co_await sleep_for(cfg_.retry_period, cancel)) break;
    if (co_await try_acquire_or_renew()) {
      last_renew = clock_.now();
    } else if (clock_.now() - last_renew >= cfg_.renew_deadline ||
               (!observed_.holder.empty() && observed_.holder != cfg_.identity)) {
      NVDRA_WARN("leader election: {} lost the lease {}", cfg_.identity, lock_.describe());
      leader_ = false;
      if (cb_.on_stopped_leading) cb_.on_stopped_leading();
      co_return;
    }
  }
  if (cfg_.release_on_cancel) co_await release();
  leader_ = false;
  if (cb_.on_stopped_leading) cb_.on_stopped_leading();
}

}  // namespace nvdra::k8s
