#include "k8sclient/cache/work_queue.h"

#include <algorithm>
#include <cmath>

namespace nvdra::k8s {

WorkQueue::WorkQueue(const Clock& clock, RateLimiterOptions rl)
    : clock_(clock), rl_(rl), overall_(rl.overall_qps, rl.overall_burst) {}

void WorkQueue::add(const std::string& key) {
  std::lock_guard lock(mu_);
  add_locked(key);
}

void WorkQueue::add_locked(const std::string& key) {
  if (shutting_down_) return;
  if (dirty_.count(key)) return;  // already queued (or queued again after processing)
  dirty_.emplace(key, clock_.now());
  if (processing_.count(key)) return;  // done() queues it
  queue_.push_back(key);
  wake_waiters_locked();
}

void WorkQueue::add_after(const std::string& key, duration delay) {
  std::lock_guard lock(mu_);
  if (shutting_down_) return;
  if (delay <= duration::zero()) {
    add_locked(key);
    return;
  }
  auto at = clock_.now() + delay;
  auto it = delayed_at_.find(key);
  if (it != delayed_at_.end() && it->second <= at) return;  // an earlier wake-up is pending
  delayed_at_[key] = at;
  delayed_.push(Delayed{at, key});
  wake_waiters_locked();  // waiters recompute their deadline
}

WorkQueue::duration WorkQueue::when(const std::string& key) {
  int n;
  {
    std::lock_guard lock(mu_);
    n = failures_[key]++;
  }
  double exp = static_cast<double>(rl_.item_base.count()) * std::pow(2.0, n);
  duration item = exp >= static_cast<double>(rl_.item_max.count())
                      ? rl_.item_max
                      : duration(static_cast<int64_t>(exp));
  duration bucket = overall_.reserve(clock_.now());
  return std::max(item, bucket);
}

void WorkQueue::add_rate_limited(const std::string& key) {
  add_after(key, when(key));
}

void WorkQueue::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  failures_.erase(key);
}

int WorkQueue::num_requeues(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

void WorkQueue::promote_locked(Clock::steady_point now) {
  while (!delayed_.empty() && delayed_.top().ready_at <= now) {
    Delayed d = delayed_.top();
    delayed_.pop();
    auto it = delayed_at_.find(d.key);
    if (it == delayed_at_.end() || it->second != d.ready_at) continue;  // superseded entry
    delayed_at_.erase(it);
    add_locked(d.key);
  }
}

std::optional<std::string> WorkQueue::try_get() {
  std::lock_guard lock(mu_);
  promote_locked(clock_.now());
  if (queue_.empty()) return std::nullopt;
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  processing_.insert(key);
  dirty_.erase(key);
  return key;
}

namespace {
constexpr WorkQueue::duration kMaxSleep = std::chrono::milliseconds(50);
}  // namespace

awaitable<std::optional<std::string>> WorkQueue::get() {
  auto ex = co_await net::this_coro::executor;
  for (;;) {
    std::shared_ptr<net::steady_timer> timer;
    {
      std::lock_guard lock(mu_);
      promote_locked(clock_.now());
      if (!queue_.empty()) {
        std::string key = std::move(queue_.front());
        queue_.pop_front();
        processing_.insert(key);
        dirty_.erase(key);
        co_return key;
      }
      if (shutting_down_) co_return std::nullopt;
      timer = std::make_shared<net::steady_timer>(ex);
      // Sleep until the earliest delayed key is due (in Clock time, mapped onto the timer), but
      // never longer than kMaxSleep: a wake-up posted by another thread can run before this
      // coroutine has started its wait (the timer has no strand), and would then be lost.
      auto wait = delayed_.empty() ? kMaxSleep : delayed_.top().ready_at - clock_.now();
      timer->expires_after(std::clamp<duration>(wait, duration::zero(), kMaxSleep));
      waiters_.push_back(timer);
    }
    boost::system::error_code ec;
    co_await timer->async_wait(net::redirect_error(net::use_awaitable, ec));
    std::lock_guard lock(mu_);
    std::erase(waiters_, timer);
  }
}

void WorkQueue::wake_waiters_locked() {
  for (auto& t : waiters_) {
    net::post(t->get_executor(), [t] { t->cancel(); });
  }
  waiters_.clear();
}

void WorkQueue::done(const std::string& key) {
  std::lock_guard lock(mu_);
  processing_.erase(key);
  if (dirty_.count(key)) {
    queue_.push_back(key);
    wake_waiters_locked();
  }
}

void WorkQueue::shut_down() {
  std::lock_guard lock(mu_);
  shutting_down_ = true;
  wake_waiters_locked();
}

awaitable<void> WorkQueue::shut_down_with_drain(std::chrono::milliseconds poll) {
  shut_down();
  while (processing_len() > 0)
    co_await sleep_for(poll);
}

size_t WorkQueue::processing_len() const {
  std::lock_guard lock(mu_);
  return processing_.size();
}

bool WorkQueue::shutting_down() const {
  std::lock_guard lock(mu_);
  return shutting_down_;
}

size_t WorkQueue::len() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

size_t WorkQueue::waiting_len() const {
  std::lock_guard lock(mu_);
  return delayed_at_.size();
}

std::optional<WorkQueue::duration> WorkQueue::oldest_wait() const {
  std::lock_guard lock(mu_);
  if (queue_.empty()) return std::nullopt;
  auto it = dirty_.find(queue_.front());
  if (it == dirty_.end()) return std::nullopt;
  return clock_.now() - it->second;
}

}  // namespace nvdra::k8s
