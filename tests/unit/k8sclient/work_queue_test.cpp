#include "k8sclient/cache/work_queue.h"

#include <gtest/gtest.h>

#include "support/io_thread.h"

namespace nvdra::k8s {
namespace {

using namespace std::chrono_literals;

TEST(WorkQueue, DeduplicatesQueuedKeys) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("a");
  q.add("b");
  q.add("a");
  EXPECT_EQ(q.len(), 2u);
  EXPECT_EQ(q.try_get(), "a");
  EXPECT_EQ(q.try_get(), "b");
  EXPECT_EQ(q.try_get(), std::nullopt);
}

TEST(WorkQueue, DirtyWhileProcessingIsRequeuedAfterDoneNeverConcurrently) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("a");
  ASSERT_EQ(q.try_get(), "a");
  q.add("a");  // changed again while a worker holds it
  q.add("a");
  EXPECT_EQ(q.try_get(), std::nullopt);  // not handed to a second worker
  q.done("a");
  EXPECT_EQ(q.try_get(), "a");  // processed again, once
  q.done("a");
  EXPECT_EQ(q.try_get(), std::nullopt);
}

TEST(WorkQueue, AddAfterWaitsForTheClock) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add_after("a", 50ms);
  EXPECT_EQ(q.try_get(), std::nullopt);
  EXPECT_EQ(q.waiting_len(), 1u);
  clock.advance(49ms);
  EXPECT_EQ(q.try_get(), std::nullopt);
  clock.advance(2ms);
  EXPECT_EQ(q.try_get(), "a");
  q.done("a");
  // A later add_after does not postpone an earlier pending one.
  q.add_after("b", 10ms);
  q.add_after("b", 100ms);
  clock.advance(11ms);
  EXPECT_EQ(q.try_get(), "b");
}

TEST(WorkQueue, PerItemExponentialBackoffAndForget) {
  FakeClock clock;
  WorkQueue q(clock, RateLimiterOptions{5ms, 1000s, 1e9, 1000000});  // bucket out of the way
  EXPECT_EQ(q.when("a"), 5ms);
  EXPECT_EQ(q.when("a"), 10ms);
  EXPECT_EQ(q.when("a"), 20ms);
  EXPECT_EQ(q.when("b"), 5ms);
  EXPECT_EQ(q.num_requeues("a"), 3);
  for (int i = 0; i < 40; ++i)
    q.when("a");
  EXPECT_EQ(q.when("a"), std::chrono::nanoseconds(1000s));  // capped
  q.forget("a");
  EXPECT_EQ(q.num_requeues("a"), 0);
  EXPECT_EQ(q.when("a"), 5ms);
}

TEST(WorkQueue, OverallTokenBucketLimitsBursts) {
  FakeClock clock;
  WorkQueue q(clock);  // defaults: 10/s, burst 100
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(q.when("k" + std::to_string(i)), 5ms);
  EXPECT_EQ(q.when("k100"), 100ms);  // the bucket is empty: 1/10 s per token
  EXPECT_EQ(q.when("k101"), 200ms);
  clock.advance(1s);
  EXPECT_EQ(q.when("k102"), 5ms);  // refilled: 10 tokens minus the 2 borrowed
}

TEST(WorkQueue, RateLimitedAddUsesTheDelay) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add_rate_limited("a");
  EXPECT_EQ(q.try_get(), std::nullopt);
  clock.advance(5ms);
  EXPECT_EQ(q.try_get(), "a");
}

TEST(WorkQueue, AsyncGetWakesOnAddAndShutdownDrains) {
  testing::IoThread io;
  WorkQueue q;
  std::vector<std::string> got;
  auto loop = [&]() -> awaitable<void> {
    while (auto key = co_await q.get()) {
      got.push_back(*key);
      q.done(*key);
    }
  };
  auto worker = io.spawn(loop());
  std::this_thread::sleep_for(20ms);
  q.add("a");
  q.add_after("b", 30ms);
  for (int i = 0; i < 200 && got.size() < 2; ++i)
    std::this_thread::sleep_for(2ms);
  q.add("c");
  q.shut_down();
  ASSERT_EQ(worker.wait_for(2s), std::future_status::ready);
  worker.get();
  EXPECT_EQ(got, (std::vector<std::string>{"a", "b", "c"}));
  q.add("d");  // ignored after shutdown
  EXPECT_EQ(q.len(), 0u);
}

TEST(WorkQueue, ShutDownWithDrainWaitsForInFlightKeys) {
  testing::IoThread io;
  WorkQueue q;
  q.add("a");
  ASSERT_EQ(q.try_get(), "a");  // a worker holds "a"
  auto drained = io.spawn(q.shut_down_with_drain(1ms));
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(drained.wait_for(0ms), std::future_status::timeout);
  q.done("a");
  EXPECT_EQ(drained.wait_for(2s), std::future_status::ready);
}

}  // namespace
}  // namespace nvdra::k8s
