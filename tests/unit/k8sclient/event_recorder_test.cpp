#include "k8sclient/cache/event_recorder.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/test_server.h"

namespace nvdra::k8s {
namespace {

using namespace std::chrono_literals;
using testing::Reply;

struct Harness {
  testing::IoThread io;
  testing::RequestLog log;
  FakeClock clock;
  std::unique_ptr<testing::TestServer> server;
  std::unique_ptr<EventRecorder> recorder;
  // `posts_failing`: how many POSTs get a 500 before one is accepted; `accepted_first`: the
  // first of those 500s comes after the server stored the event (a repeat then finds it).
  explicit Harness(int posts_failing = 0, bool accepted_first = false) {
    server = std::make_unique<testing::TestServer>(
        io, testing::reply_with([this, posts_failing, accepted_first](const httpd::Request& r) {
          log.add(r);
          if (r.method == "POST" && log.all().size() <= static_cast<size_t>(posts_failing))
            return Reply{500, {}, R"({"kind":"Status","code":500,"reason":"InternalError"})"};
          if (r.method == "POST" && accepted_first)
            return Reply{409, {}, R"({"kind":"Status","code":409,"reason":"AlreadyExists"})"};
          return Reply{
              r.method == "POST" ? 201 : 200, {}, R"({"kind":"Event","metadata":{"name":"e"}})"};
        }));
    RestConfig cfg;
    cfg.server = server->url(false);
    std::string err;
    parse_server_url(cfg.server, &cfg.endpoint, &err);
    cfg.qps = 0;
    auto client = RestClient::create(io.executor(), cfg);
    recorder = std::make_unique<EventRecorder>(
        *client, EventRecorderOptions{.reporting_instance = "ctrl-0"}, clock);
  }
};

ObjectReference cd() {
  return {"ComputeDomain", "resource.nvidia.com/v1beta1", "team", "cd1", "uid-1"};
}

TEST(EventRecorder, CreatesThenFoldsRepeatsIntoASeries) {
  Harness h;
  ASSERT_TRUE(h.io.run(
      h.recorder->record(cd(), "Warning", "PlacementFailed", "Place", "no clique has room")));
  h.clock.advance(10s);
  ASSERT_TRUE(h.io.run(
      h.recorder->record(cd(), "Warning", "PlacementFailed", "Place", "no clique has room")));
  ASSERT_TRUE(h.io.run(
      h.recorder->record(cd(), "Warning", "PlacementFailed", "Place", "no clique has room")));
  auto reqs = h.log.all();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].path, "/apis/events.k8s.io/v1/namespaces/team/events");
  auto ev = json::parse(reqs[0].body);
  ASSERT_TRUE(ev);
  EXPECT_EQ(json::string_or(*ev, "reason"), "PlacementFailed");
  EXPECT_EQ(json::string_or(*ev, "type"), "Warning");
  EXPECT_EQ(json::string_or(*ev, "reportingController"), "nvdra.nvidia.com/controller");
  EXPECT_EQ(json::string_or(*ev, "reportingInstance"), "ctrl-0");
  EXPECT_EQ(json::string_or(*json::find(*ev, "regarding"), "uid"), "uid-1");
  std::string name(json::string_or(*json::find(*ev, "metadata"), "name"));
  EXPECT_EQ(name.rfind("cd1.", 0), 0u);
  EXPECT_EQ(reqs[1].method, "PATCH");
  EXPECT_EQ(reqs[1].path, "/apis/events.k8s.io/v1/namespaces/team/events/" + name);
  EXPECT_NE(reqs[1].body.find("\"count\":2"), std::string::npos);
  EXPECT_NE(reqs[2].body.find("\"count\":3"), std::string::npos);
  // Outside the series window a new Event starts.
  h.clock.advance(7min);
  ASSERT_TRUE(h.io.run(
      h.recorder->record(cd(), "Warning", "PlacementFailed", "Place", "no clique has room")));
  EXPECT_EQ(h.log.all()[3].method, "POST");
}

TEST(EventRecorder, ForgetsKeysIdlePastTheWindowAndTheSpamRefill) {
  Harness h;
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(h.io.run(h.recorder->record(cd(), "Warning", "R", "A", fmt::format("n{}", i))));
  EXPECT_EQ(h.recorder->series_count(), 3u);
  // Past the series window but before a bucket refills (25 tokens at one per 5 min): kept, or
  // forgetting a key would reset its spam limit.
  h.clock.advance(1h);
  ASSERT_TRUE(h.io.run(h.recorder->record(cd(), "Warning", "R", "A", "n0")));
  EXPECT_EQ(h.recorder->series_count(), 3u);
  h.clock.advance(3h);
  ASSERT_TRUE(h.io.run(h.recorder->record(cd(), "Warning", "R", "A", "new")));
  EXPECT_EQ(h.recorder->series_count(), 1u);
}

TEST(EventRecorder, AServerErrorIsRetriedUnderTheSameName) {
  Harness h(2);
  ASSERT_TRUE(h.io.run(h.recorder->record(cd(), "Warning", "GPUUnhealthy", "Prepare", "xid 79")));
  auto reqs = h.log.all();
  ASSERT_EQ(reqs.size(), 3u);
  auto first = json::parse(reqs[0].body), last = json::parse(reqs[2].body);
  ASSERT_TRUE(first && last);
  EXPECT_EQ(json::string_or(*json::find(*first, "metadata"), "name"),
            json::string_or(*json::find(*last, "metadata"), "name"));
}

TEST(EventRecorder, ARepeatThatFindsTheEventAlreadyThereSucceeds) {
  Harness h(1, true);
  EXPECT_TRUE(h.io.run(h.recorder->record(cd(), "Warning", "GPUUnhealthy", "Prepare", "xid 79")));
  EXPECT_EQ(h.log.all().size(), 2u);
}

TEST(EventRecorder, DifferentNotesAreDifferentEvents) {
  Harness h;
  ASSERT_TRUE(h.io.run(h.recorder->record(cd(), "Normal", "Ready", "Reconcile", "a")));
  ASSERT_TRUE(h.io.run(h.recorder->record(cd(), "Normal", "Ready", "Reconcile", "b")));
  EXPECT_EQ(h.log.all()[1].method, "POST");
}

TEST(EventRecorder, SpamIsLimitedPerKey) {
  Harness h;
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(h.io.run(h.recorder->record(cd(), "Warning", "Hot", "Loop", "again")));
  }
  EXPECT_EQ(h.log.size(), 25u);
  EXPECT_EQ(h.recorder->dropped(), 5);
  h.clock.advance(301s);  // one token back
  ASSERT_TRUE(h.io.run(h.recorder->record(cd(), "Warning", "Hot", "Loop", "again")));
  EXPECT_EQ(h.log.size(), 26u);
}

TEST(EventRecorder, LongNotesAreTruncated) {
  Harness h;
  ASSERT_TRUE(h.io.run(h.recorder->record(cd(), "Normal", "R", "A", std::string(5000, 'x'))));
  auto ev = json::parse(h.log.all()[0].body);
  EXPECT_EQ(json::string_or(*ev, "note").size(), 1024u);
}

}  // namespace
}  // namespace nvdra::k8s
