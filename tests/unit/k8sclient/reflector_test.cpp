#include "k8sclient/watch/reflector.h"

#include <gtest/gtest.h>

#include <map>

#include "k8sclient/cache/informer.h"
#include "k8sclient/rest/status.h"
#include "support/io_thread.h"
#include "support/test_server.h"

namespace nvdra::k8s {
namespace {

using testing::IoThread;

std::string obj_json(const std::string& name, int64_t rv, const std::string& data = "") {
  return R"({"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":")" + name +
         R"(","namespace":"ns","resourceVersion":")" + std::to_string(rv) + R"("},"data":{"v":")" +
         data + "\"}}";
}

// An API server in miniature for one resource: objects, an event history, and knobs for faults.
class FakeApi final : public ListerWatcher {
 public:
  struct Event {
    int64_t rv;
    std::string type;
    std::string json;
  };

  void put(const std::string& name, const std::string& data) {
    std::lock_guard lock(mu_);
    int64_t rv = ++rv_;
    bool existed = objects_.count(name) > 0;
    objects_[name] = obj_json(name, rv, data);
    history_.push_back({rv, existed ? "MODIFIED" : "ADDED", objects_[name]});
  }
  void remove(const std::string& name) {
    std::lock_guard lock(mu_);
    int64_t rv = ++rv_;
    history_.push_back({rv, "DELETED", obj_json(name, rv)});
    objects_.erase(name);
  }
  void bookmark() {
    std::lock_guard lock(mu_);
    history_.push_back({rv_, "BOOKMARK",
                        R"({"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":")" +
                            std::to_string(rv_) + "\"}}"});
  }
  // Forget history up to now: resuming from an older RV gets 410.
  void compact() {
    std::lock_guard lock(mu_);
    compacted_rv_ = rv_;
    history_.clear();
    ++epoch_;
  }
  // While paused, open streams deliver nothing new.
  void pause(bool p) {
    std::lock_guard lock(mu_);
    paused_ = p;
  }
  // The next watch stream dies halfway through the event with this RV.
  void drop_during(int64_t rv) {
    std::lock_guard lock(mu_);
    drop_at_rv_ = rv;
  }

  bool watch_list_supported = false;
  std::vector<ListOptions> watch_calls;  // guarded by mu_
  std::atomic<int> list_calls{0};

  std::string list_json() {
    std::lock_guard lock(mu_);
    ++list_calls;
    std::string body =
        R"({"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":")" +
        std::to_string(rv_) + R"("},"items":[)";
    bool first = true;
    for (auto& [n, j] : objects_) {
      if (!first) body += ",";
      first = false;
      body += j;
    }
    return body + "]}";
  }

  awaitable<Result<ObjectList>> list(ListOptions) override { co_return parse_list(list_json()); }

  awaitable<Status> watch(ListOptions options, BodyCallback on_body,
                          Cancellation* cancel) override {
    AsyncSink sink = [&on_body](std::string_view bytes) -> awaitable<bool> {
      co_return on_body(bytes);
    };
    co_return co_await serve_watch(std::move(options), std::move(sink), cancel);
  }

  // Writes a watch stream to `sink`. Errors before the stream starts come back as API errors;
  // a planned drop writes half an event and returns kIo.
  using AsyncSink = std::function<awaitable<bool>(std::string_view)>;
  awaitable<Status> serve_watch(ListOptions options, AsyncSink sink, Cancellation* cancel) {
    int64_t from = 0;
    std::string initial;
    {
      std::lock_guard lock(mu_);
      watch_calls.push_back(options);
      if (options.send_initial_events.value_or(false)) {
        if (!watch_list_supported) {
          co_return unexpected(error_from_response(
              422,
              R"({"kind":"Status","code":422,"reason":"Invalid","message":"sendInitialEvents not supported"})"));
        }
        for (auto& [n, j] : objects_)
          initial += R"({"type":"ADDED","object":)" + j + "}\n";
        initial +=
            R"({"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":")" +
            std::to_string(rv_) + R"(","annotations":{"k8s.io/initial-events-end":"true"}}}})" +
            "\n";
        from = rv_;
      } else {
        from = std::stoll(options.resource_version.value_or("0"));
        if (from < compacted_rv_) {
          initial =
              R"({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}})";
          from = -1;
        }
      }
    }
    if (!initial.empty() && !co_await sink(initial)) co_return ok();
    if (from < 0) co_return ok();
    // History after `from`, then new events as they come, until cancelled. A compaction ends the
    // stream (the resume then gets 410).
    size_t pos = 0;
    int epoch;
    {
      std::lock_guard lock(mu_);
      epoch = epoch_;
    }
    for (;;) {
      if (cancel && cancel->cancelled()) co_return unexpected(ErrorCode::kCancelled, "cancelled");
      std::vector<Event> batch;
      std::optional<int64_t> drop;
      {
        std::lock_guard lock(mu_);
        if (epoch != epoch_) co_return ok();
        for (; !paused_ && pos < history_.size(); ++pos) {
          const Event& e = history_[pos];
          if (e.rv > from || (e.type == "BOOKMARK" && e.rv >= from)) batch.push_back(e);
        }
        drop = drop_at_rv_;
      }
      for (const auto& e : batch) {
        std::string wire = R"({"type":")" + e.type + R"(","object":)" + e.json + "}\n";
        if (drop && e.rv == *drop && e.type != "BOOKMARK") {
          {
            std::lock_guard lock(mu_);
            drop_at_rv_.reset();
          }
          std::string half = wire.substr(0, wire.size() / 2);
          co_await sink(half);
          co_return unexpected(ErrorCode::kIo, "connection reset by peer");
        }
        if (!co_await sink(wire)) co_return ok();
      }
      // An empty write asks the sink whether its reader is still there.
      if (!co_await sink(std::string_view())) co_return ok();
      co_await sleep_for(std::chrono::milliseconds(2), cancel);
    }
  }

  std::vector<ListOptions> calls() {
    std::lock_guard lock(mu_);
    return watch_calls;
  }

 private:
  std::mutex mu_;
  int64_t rv_ = 100;
  int64_t compacted_rv_ = 0;
  int epoch_ = 0;
  bool paused_ = false;
  std::optional<int64_t> drop_at_rv_;
  std::map<std::string, std::string> objects_;
  std::vector<Event> history_;
};

struct Recorder {
  std::mutex mu;
  std::vector<std::string> events;
  EventHandlers handlers() {
    return EventHandlers{
        [this](const ObjectPtr& o) {
          push("add " + std::string(o->name()) + "@" + std::string(o->resource_version()));
        },
        [this](const ObjectPtr& a, const ObjectPtr& b) {
          push("update " + std::string(b->name()) + " " + std::string(a->resource_version()) +
               "->" + std::string(b->resource_version()));
        },
        [this](const ObjectPtr& o) { push("delete " + std::string(o->name())); }};
  }
  void push(std::string s) {
    std::lock_guard lock(mu);
    events.push_back(std::move(s));
  }
  std::vector<std::string> get() {
    std::lock_guard lock(mu);
    return events;
  }
  bool wait_for(size_t n) {
    for (int i = 0; i < 2000; ++i) {
      if (get().size() >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }
};

ReflectorOptions fast_options() {
  ReflectorOptions o;
  o.backoff_initial = std::chrono::milliseconds(1);
  o.backoff_cap = std::chrono::milliseconds(5);
  o.use_watch_list = false;
  return o;
}

struct Running {
  IoThread io;
  Cancellation cancel;
  std::future<void> done;
  void start(Informer& inf) { done = io.spawn(inf.run(&cancel)); }
  ~Running() {
    cancel.cancel();
    if (done.valid()) done.wait();
  }
};

TEST(Informer, ListThenWatchDeliversEveryChangeOnce) {
  auto api = std::make_shared<FakeApi>();
  api->put("a", "1");  // rv 101
  api->put("b", "1");  // rv 102
  Informer inf(api, fast_options());
  Recorder rec;
  inf.add_handlers(rec.handlers());
  Running run;
  run.start(inf);
  ASSERT_TRUE(rec.wait_for(2));
  EXPECT_TRUE(inf.has_synced());
  api->put("c", "1");  // 103
  api->put("a", "2");  // 104
  api->remove("b");    // 105
  ASSERT_TRUE(rec.wait_for(5));
  std::vector<std::string> want = {"add a@101", "add b@102", "add c@103", "update a 101->104",
                                   "delete b"};
  EXPECT_EQ(rec.get(), want);
  EXPECT_EQ(inf.store().size(), 2u);
  EXPECT_EQ(inf.store().get("ns/a")->resource_version(), "104");
  EXPECT_EQ(inf.store().by_index(kNamespaceIndex, "ns").size(), 2u);
}

TEST(Informer, StreamDroppedMidEventResumesWithoutLossOrDuplicates) {
  auto api = std::make_shared<FakeApi>();
  api->put("a", "1");  // 101
  Informer inf(api, fast_options());
  Recorder rec;
  inf.add_handlers(rec.handlers());
  Running run;
  run.start(inf);
  ASSERT_TRUE(rec.wait_for(1));
  api->drop_during(104);
  api->put("b", "1");  // 102
  api->put("c", "1");  // 103
  api->put("d", "1");  // 104: the stream dies halfway through this one
  api->put("e", "1");  // 105
  ASSERT_TRUE(rec.wait_for(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // room for a duplicate to show up
  std::vector<std::string> want = {"add a@101", "add b@102", "add c@103", "add d@104", "add e@105"};
  EXPECT_EQ(rec.get(), want);
  EXPECT_EQ(api->list_calls.load(), 1);  // resumed, not relisted
  EXPECT_GE(inf.reflector().stats().watches.load(), 2);
}

TEST(Informer, RelistsAfterGoneAndReportsOnlyTheDifference) {
  auto api = std::make_shared<FakeApi>();
  api->put("a", "1");  // 101
  api->put("b", "1");  // 102
  Informer inf(api, fast_options());
  Recorder rec;
  inf.add_handlers(rec.handlers());
  Running run;
  run.start(inf);
  ASSERT_TRUE(rec.wait_for(2));
  // Changes the informer does not see before history is lost.
  api->pause(true);
  api->put("c", "1");  // 103
  api->remove("a");    // 104
  api->compact();      // the stream ends; resuming from 102 is too old -> 410 -> relist
  api->pause(false);
  ASSERT_TRUE(rec.wait_for(4));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto got = rec.get();
  std::vector<std::string> want = {"add a@101", "add b@102", "delete a", "add c@103"};
  EXPECT_EQ(got, want);
  EXPECT_EQ(api->list_calls.load(), 2);
  EXPECT_GE(inf.reflector().stats().relists_after_gone.load(), 1);
  EXPECT_EQ(inf.store().keys().size(), 2u);
}

TEST(Informer, BookmarksMoveTheResumePoint) {
  auto api = std::make_shared<FakeApi>();
  api->put("a", "1");  // 101
  Informer inf(api, fast_options());
  Recorder rec;
  inf.add_handlers(rec.handlers());
  Running run;
  run.start(inf);
  ASSERT_TRUE(rec.wait_for(1));
  api->put("x", "1");  // 102
  ASSERT_TRUE(rec.wait_for(2));
  api->bookmark();  // bookmark at 102
  api->drop_during(103);
  api->put("y", "1");  // 103, dropped then redelivered
  ASSERT_TRUE(rec.wait_for(3));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(inf.reflector().last_resource_version(), "103");
  bool resumed_from_bookmark = false;
  for (const auto& w : api->calls()) {
    if (w.resource_version == "102") resumed_from_bookmark = true;
    EXPECT_TRUE(w.allow_watch_bookmarks);
    ASSERT_TRUE(w.timeout_seconds);
    EXPECT_GE(*w.timeout_seconds, 300);
    EXPECT_LT(*w.timeout_seconds, 600);
  }
  EXPECT_TRUE(resumed_from_bookmark);
}

TEST(Informer, UsesWatchListWhenSupported) {
  auto api = std::make_shared<FakeApi>();
  api->watch_list_supported = true;
  api->put("a", "1");
  api->put("b", "1");
  auto opts = fast_options();
  opts.use_watch_list = true;
  Informer inf(api, opts);
  Recorder rec;
  inf.add_handlers(rec.handlers());
  Running run;
  run.start(inf);
  ASSERT_TRUE(rec.wait_for(2));
  for (int i = 0; i < 100 && !inf.has_synced(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_TRUE(inf.has_synced());
  api->put("c", "1");
  ASSERT_TRUE(rec.wait_for(3));
  EXPECT_EQ(api->list_calls.load(), 0);
  EXPECT_EQ(inf.reflector().stats().watch_lists.load(), 1);
}

TEST(Informer, WatchListStreamThatDropsLaterIsResumedNotRelisted) {
  auto api = std::make_shared<FakeApi>();
  api->watch_list_supported = true;
  api->put("a", "1");  // 101
  auto opts = fast_options();
  opts.use_watch_list = true;
  Informer inf(api, opts);
  Recorder rec;
  inf.add_handlers(rec.handlers());
  Running run;
  run.start(inf);
  ASSERT_TRUE(rec.wait_for(1));
  api->drop_during(103);
  api->put("b", "1");  // 102
  api->put("c", "1");  // 103: dropped mid-event
  ASSERT_TRUE(rec.wait_for(3));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"add a@101", "add b@102", "add c@103"}));
  EXPECT_EQ(inf.reflector().stats().watch_lists.load(), 1);
  EXPECT_GE(inf.reflector().stats().watches.load(), 1);
  EXPECT_EQ(api->list_calls.load(), 0);
}

TEST(Informer, FallsBackToListWhenWatchListIsRefused) {
  auto api = std::make_shared<FakeApi>();
  api->put("a", "1");
  auto opts = fast_options();
  opts.use_watch_list = true;
  Informer inf(api, opts);
  Recorder rec;
  inf.add_handlers(rec.handlers());
  Running run;
  run.start(inf);
  ASSERT_TRUE(rec.wait_for(1));
  EXPECT_EQ(api->list_calls.load(), 1);
  EXPECT_TRUE(inf.has_synced());
}

TEST(Store, CustomIndexers) {
  Store s;
  s.add_indexer("by-label", [](const Object& o) {
    auto v = o.label("pool");
    return v ? std::vector<std::string>{std::string(*v)} : std::vector<std::string>{};
  });
  auto mk = [](std::string name, std::string pool) {
    return *Object::parse(R"({"metadata":{"name":")" + name + R"(","labels":{"pool":")" + pool +
                          "\"}}}");
  };
  s.upsert(mk("a", "p1"));
  s.upsert(mk("b", "p1"));
  s.upsert(mk("c", "p2"));
  EXPECT_EQ(s.by_index("by-label", "p1").size(), 2u);
  s.upsert(mk("b", "p2"));  // moves between index values
  EXPECT_EQ(s.by_index("by-label", "p1").size(), 1u);
  EXPECT_EQ(s.by_index("by-label", "p2").size(), 2u);
  s.remove("c");
  EXPECT_EQ(s.by_index("by-label", "p2").size(), 1u);
  auto dropped = s.replace({mk("z", "p3")});
  EXPECT_EQ(dropped.size(), 2u);
  EXPECT_EQ(s.by_index("by-label", "p3").size(), 1u);
  EXPECT_TRUE(s.by_index("by-label", "p1").empty());
}

// --- The same behaviour over the real stack: RestClient, Beast transport, chunked HTTP. ---

Headers json_headers() {
  return Headers{{"Content-Type", "application/json"}};
}

// Serves a FakeApi as the collection /api/v1/namespaces/ns/configmaps.
httpd::Handler serve_over_http(FakeApi& api) {
  return [&api](const httpd::Request& r, httpd::ResponseWriter& w) -> awaitable<void> {
    if (r.query_param("watch") != "true") {
      std::string body = api.list_json();
      Headers headers = json_headers();
      co_await w.respond(200, std::move(headers), std::move(body));
      co_return;
    }
    ListOptions o;
    o.resource_version = r.query_param("resourceVersion");
    if (r.query_param("sendInitialEvents") == "true") o.send_initial_events = true;
    if (auto t = r.query_param("timeoutSeconds")) o.timeout_seconds = std::stoll(*t);
    o.allow_watch_bookmarks = r.query_param("allowWatchBookmarks") == "true";
    bool started = false;
    FakeApi::AsyncSink sink = [&](std::string_view bytes) -> awaitable<bool> {
      if (w.closed()) co_return false;
      if (!started) {
        started = true;
        Headers headers = json_headers();
        if (!co_await w.start_stream(200, std::move(headers))) co_return false;
      }
      co_return co_await w.write_chunk(bytes);
    };
    auto st = co_await api.serve_watch(std::move(o), std::move(sink), nullptr);
    if (!st) {
      if (!started && st.error().code == ErrorCode::kApi) {
        std::string body =
            status_json(st.error().http_status, st.error().reason, st.error().message);
        Headers headers = json_headers();
        co_await w.respond(st.error().http_status, std::move(headers), std::move(body));
      } else {
        w.abort();  // the planned drop: the connection dies mid-event
      }
      co_return;
    }
    if (!started) {
      Headers headers = json_headers();
      co_await w.start_stream(200, std::move(headers));
    }
    co_await w.end_stream();
  };
}

struct OverHttp {
  testing::IoThread io;
  std::unique_ptr<testing::TestServer> server;
  std::shared_ptr<RestClient> client;
  explicit OverHttp(FakeApi& api) {
    server = std::make_unique<testing::TestServer>(io, serve_over_http(api));
    RestConfig cfg;
    cfg.server = server->url(false);
    std::string err;
    parse_server_url(cfg.server, &cfg.endpoint, &err);
    cfg.qps = 0;
    client = *RestClient::create(io.executor(), cfg);
  }
  std::shared_ptr<ListerWatcher> lister() {
    ResourceRef ref;
    ref.resource = "configmaps";
    ref.namespace_ = "ns";
    return std::make_shared<RestListerWatcher>(client, ref);
  }
};

// An informer on the HTTP stack, running until the test ends.
struct InformerOverHttp {
  OverHttp http;
  Informer inf;
  Recorder rec;
  Cancellation cancel;
  std::future<void> done;
  InformerOverHttp(FakeApi& api, ReflectorOptions opts) : http(api), inf(http.lister(), opts) {
    inf.add_handlers(rec.handlers());
    done = http.io.spawn(inf.run(&cancel));
  }
  ~InformerOverHttp() {
    cancel.cancel();
    EXPECT_EQ(done.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  }
};

TEST(InformerOverHttp, SyncsWatchesAndResumesAfterADroppedConnection) {
  FakeApi api;
  api.put("a", "1");  // 101
  InformerOverHttp run(api, fast_options());
  ASSERT_TRUE(run.rec.wait_for(1));
  api.drop_during(103);
  api.put("b", "1");  // 102
  api.put("c", "1");  // 103: the TCP connection dies halfway through this event
  api.put("b", "2");  // 104
  api.remove("a");    // 105
  ASSERT_TRUE(run.rec.wait_for(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::vector<std::string> want = {"add a@101", "add b@102", "add c@103", "update b 102->104",
                                   "delete a"};
  EXPECT_EQ(run.rec.get(), want);
  EXPECT_EQ(api.list_calls.load(), 1);
}

TEST(InformerOverHttp, RelistsAfterGone) {
  FakeApi api;
  api.put("a", "1");  // 101
  InformerOverHttp run(api, fast_options());
  ASSERT_TRUE(run.rec.wait_for(1));
  api.pause(true);
  api.put("b", "1");  // 102
  api.compact();      // the stream ends; resuming from 101 is too old: 410, relist
  api.pause(false);
  ASSERT_TRUE(run.rec.wait_for(2));
  EXPECT_EQ(run.rec.get(), (std::vector<std::string>{"add a@101", "add b@102"}));
  EXPECT_EQ(api.list_calls.load(), 2);
  EXPECT_GE(run.inf.reflector().stats().relists_after_gone.load(), 1);
}

TEST(InformerOverHttp, WatchListOverHttp) {
  FakeApi api;
  api.watch_list_supported = true;
  api.put("a", "1");
  auto opts = fast_options();
  opts.use_watch_list = true;
  InformerOverHttp run(api, opts);
  ASSERT_TRUE(run.rec.wait_for(1));
  api.put("b", "1");
  ASSERT_TRUE(run.rec.wait_for(2));
  EXPECT_EQ(api.list_calls.load(), 0);
  auto calls = api.calls();
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls[0].send_initial_events, true);
}

}  // namespace
}  // namespace nvdra::k8s
