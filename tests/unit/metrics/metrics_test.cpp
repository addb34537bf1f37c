#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "k8sclient/rest/rest_client.h"
#include "metrics/registry.h"
#include "metrics/server.h"
#include "support/io_thread.h"

namespace nvdra::metrics {
namespace {

struct Served {
  testing::IoThread io;
  Registry registry;
  HealthChecks health;
  std::unique_ptr<Server> server;
  uint16_t port = 0;
  std::shared_ptr<k8s::RestClient> client;

  Served() {
    server = std::make_unique<Server>(io.executor(), "127.0.0.1:0", registry, health);
    auto p = server->start();
    EXPECT_TRUE(p) << p.error().message;
    port = *p;
    k8s::TransportOptions topt;
    std::string err;
    k8s::parse_server_url("http://127.0.0.1:" + std::to_string(port), &topt.endpoint, &err);
    // No retries: the test wants to see 503s as they are.
    client = std::make_shared<k8s::RestClient>(*k8s::make_beast_transport(io.executor(), topt),
                                               k8s::RestClientOptions{.qps = 0, .max_retries = 0});
  }
  ~Served() { server->stop(); }
  k8s::HttpResponse get(const std::string& path) {
    auto r = io.run(client->raw("GET", path));
    if (r) return *r;
    // Non-2xx answers come back as errors; rebuild what the test wants to see.
    k8s::HttpResponse res;
    res.status = r.error().http_status;
    res.body = r.error().message;
    return res;
  }
};

void fill(Registry& r) {
  auto& c = r.counter("nvdra_reconcile_total", "Reconciles by result.");
  c.Add({{"controller", "computedomain"}, {"result", "success"}}).Increment(3);
  c.Add({{"controller", "computedomain"}, {"result", "error"}}).Increment();
  r.gauge("nvdra_workqueue_depth", "Keys waiting.").Add({{"name", "cd"}}).Set(7);
  auto& h = r.histogram("nvdra_prepare_duration_seconds", "Prepare latency.");
  auto& hist =
      h.Add({{"driver", "gpu.nvidia.com"}, {"device_type", "gpu"}}, Registry::latency_buckets());
  hist.Observe(0.004);
  hist.Observe(0.2);
}

TEST(Metrics, FamiliesAreCreatedOnce) {
  Registry r;
  auto& a = r.counter("x_total", "x");
  auto& b = r.counter("x_total", "x");
  EXPECT_EQ(&a, &b);
}

TEST(Metrics, NvidiasRequestBucketsAreExponentialFrom50ms) {
  const auto& b = Registry::nvidia_request_buckets();
  ASSERT_EQ(b.size(), 9u);
  EXPECT_DOUBLE_EQ(b.front(), 0.05);
  for (size_t i = 1; i < b.size(); ++i)
    EXPECT_DOUBLE_EQ(b[i], b[i - 1] * 2);
  EXPECT_DOUBLE_EQ(b.back(), 12.8);
}

TEST(Metrics, ExpositionHasLabelsAndBuckets) {
  Registry r;
  fill(r);
  std::string text = r.serialize();
  EXPECT_NE(text.find("# TYPE nvdra_reconcile_total counter"), std::string::npos);
  EXPECT_NE(text.find(R"(nvdra_reconcile_total{controller="computedomain",result="success"} 3)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(nvdra_workqueue_depth{name="cd"} 7)"), std::string::npos);
  EXPECT_NE(text.find(R"(le="0.005"} 1)"), std::string::npos);
  EXPECT_NE(
      text.find(
          R"(nvdra_prepare_duration_seconds_count{device_type="gpu",driver="gpu.nvidia.com"} 2)"),
      std::string::npos);
}

TEST(MetricsServer, ServesMetricsHealthAndReadiness) {
  Served s;
  fill(s.registry);
  std::atomic<bool> ready{false};
  s.health.add_liveness("ping", [] { return std::string(); });
  s.health.add_readiness("informers-synced",
                         [&] { return ready ? "" : std::string("not synced"); });
  auto m = s.get("/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("nvdra_reconcile_total"), std::string::npos);
  EXPECT_EQ(s.get("/healthz").status, 200);
  EXPECT_EQ(s.get("/healthz").body, "ok\n");
  auto not_ready = s.get("/readyz");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_NE(not_ready.body.find("informers-synced"), std::string::npos);
  ready = true;
  EXPECT_EQ(s.get("/readyz").status, 200);
  EXPECT_NE(s.get("/readyz?verbose").body.find("[+]informers-synced ok"), std::string::npos);
  EXPECT_EQ(s.get("/nope").status, 404);
}

TEST(MetricsServer, BadBindAddressIsAClearError) {
  testing::IoThread io;
  Registry r;
  HealthChecks h;
  Server s(io.executor(), "nonsense", r, h);
  auto p = s.start();
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("nonsense"), std::string::npos);
}

// The real promtool checks what the endpoint actually serves.
TEST(MetricsServer, PromtoolAcceptsScrapedOutput) {
  Served s;
  fill(s.registry);
  auto m = s.get("/metrics");
  ASSERT_EQ(m.status, 200);
  std::string path = std::filesystem::temp_directory_path() / "nvdra-metrics-XXXXXX";
  int fd = mkstemp(path.data());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, m.body.data(), m.body.size()), static_cast<ssize_t>(m.body.size()));
  close(fd);
  std::string cmd = "promtool check metrics < " + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p))
    out += buf;
  int rc = pclose(p);
  std::filesystem::remove(path);
  EXPECT_EQ(rc, 0) << out;
}

}  // namespace
}  // namespace nvdra::metrics
