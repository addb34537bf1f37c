// nvdra-sim API server under load, on loopback over TLS: W writers creating and patching
// ConfigMaps while N watchers follow the namespace. Reports write requests/s and watch fan-out
// (events delivered per second across all watchers), beside the rate at which the same server
// answers a trivial request (/healthz) in the same run - the HTTP ceiling. Bounded in time.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <cstdio>
#include <thread>

#include "k8sclient/rest/rest_client.h"
#include "net/http_server.h"
#include "net/pki.h"
#include "sim/api_server.h"

using namespace nvdra;
using namespace std::chrono_literals;

namespace {

struct Loop {
  net::io_context io;
  net::executor_work_guard<net::io_context::executor_type> guard{net::make_work_guard(io)};
  std::thread thread{[this] { io.run(); }};
  ~Loop() {
    guard.reset();
    io.stop();
    thread.join();
  }
};

std::shared_ptr<k8s::RestClient> client(net::any_io_executor ex, uint16_t port,
                                        const std::string& ca) {
  k8s::TransportOptions t;
  std::string err;
  k8s::parse_server_url("https://127.0.0.1:" + std::to_string(port), &t.endpoint, &err);
  t.tls.ca_pem = ca;
  return std::make_shared<k8s::RestClient>(
      *k8s::make_beast_transport(ex, t),
      k8s::RestClientOptions{.qps = 0, .token = k8s::TokenSource::fixed("admin")});
}

k8s::ResourceRef cms(std::string name = "") {
  k8s::ResourceRef r;
  r.resource = "configmaps";
  r.namespace_ = "default";
  r.name = std::move(name);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const int watchers = argc > 1 ? std::atoi(argv[1]) : 50;
  const int writers = argc > 2 ? std::atoi(argv[2]) : 8;
  const auto duration = std::chrono::seconds(argc > 3 ? std::atoi(argv[3]) : 3);

  auto ca = *pki::make_ca("bench");
  pki::CertRequest req;
  req.common_name = "localhost";
  req.ip_addresses = {"127.0.0.1"};
  auto cert = *pki::issue(ca, req);

  sim::ResourceRegistry registry;
  sim::Store store;
  (void)store.create(*registry.find("", "v1", "namespaces"), "",
                     *json::parse(R"({"metadata":{"name":"default"}})"));
  sim::ApiServer api(store, registry, sim::ApiServerOptions{.admin_token = "admin"});
  Loop server_loop, client_loop;
  httpd::ServerOptions sopt;
  sopt.tls = httpd::TlsServerConfig{cert.cert_pem, cert.key_pem, ""};
  httpd::HttpServer server(
      server_loop.io.get_executor(), sopt,
      [&api](const httpd::Request& r, httpd::ResponseWriter& w) { return api.handle(r, w); });
  const uint16_t port = *server.start();

  // Baseline: trivial requests through the same server and client stack.
  std::atomic<bool> stop{false};
  std::atomic<long> trivial{0};
  auto trivial_loop = [&](std::shared_ptr<k8s::RestClient> c) -> awaitable<void> {
    while (!stop) {
      auto r = co_await c->raw("GET", "/healthz");
      if (r) ++trivial;
    }
  };
  std::vector<std::future<void>> futs;
  for (int i = 0; i < writers; ++i) {
    futs.push_back(net::co_spawn(
        client_loop.io, trivial_loop(client(client_loop.io.get_executor(), port, ca.cert_pem)),
        net::use_future));
  }
  std::this_thread::sleep_for(duration);
  stop = true;
  for (auto& f : futs)
    f.get();
  futs.clear();
  const double trivial_rate = trivial / std::chrono::duration<double>(duration).count();

  // Watchers.
  std::atomic<long> delivered{0};
  Cancellation cancel;
  auto watch_loop = [&](std::shared_ptr<k8s::RestClient> c) -> awaitable<void> {
    k8s::ListOptions o;
    o.resource_version = std::to_string(store.current_rv());
    o.timeout_seconds = 60;
    k8s::BodyCallback cb = [&](std::string_view bytes) {
      for (char ch : bytes)
        delivered += ch == '\n';
      return true;
    };
    k8s::ResourceRef ref = cms();
    (void)co_await c->watch(ref, std::move(o), std::move(cb), &cancel);
  };
  for (int i = 0; i < watchers; ++i) {
    futs.push_back(net::co_spawn(
        client_loop.io, watch_loop(client(client_loop.io.get_executor(), port, ca.cert_pem)),
        net::use_future));
  }
  std::this_thread::sleep_for(300ms);

  // Writers: create, then patch, their own objects.
  stop = false;
  std::atomic<long> writes{0}, failures{0};
  auto write_loop = [&](std::shared_ptr<k8s::RestClient> c, int id) -> awaitable<void> {
    for (int n = 0; !stop; ++n) {
      std::string name = "w" + std::to_string(id) + "-" + std::to_string(n % 50);
      k8s::ResourceRef ref = cms();
      if (n < 50) {
        std::string body = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name +
                           R"("},"data":{"n":"0"}})";
        auto r = co_await c->create(ref, std::move(body));
        r ? ++writes : ++failures;
      } else {
        k8s::ResourceRef obj = cms(name);
        std::string patch = R"({"data":{"n":")" + std::to_string(n) + "\"}}";
        auto r = co_await c->patch(obj, k8s::PatchType::kMerge, std::move(patch));
        r ? ++writes : ++failures;
      }
    }
  };
  std::vector<std::future<void>> wfuts;
  const long delivered_before = delivered;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < writers; ++i) {
    wfuts.push_back(net::co_spawn(
        client_loop.io, write_loop(client(client_loop.io.get_executor(), port, ca.cert_pem), i),
        net::use_future));
  }
  std::this_thread::sleep_for(duration);
  stop = true;
  for (auto& f : wfuts)
    f.get();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Let the watchers drain: every write must reach every watcher.
  const long expected = writes.load() * watchers;
  for (int i = 0; i < 200 && delivered - delivered_before < expected; ++i)
    std::this_thread::sleep_for(50ms);
  cancel.cancel();
  for (auto& f : futs)
    f.wait_for(2s);
  server.stop();

  const double write_rate = writes / std::chrono::duration<double>(duration).count();
  const long events = delivered - delivered_before;
  std::printf("nvdra-sim load (TLS, loopback, %d writers, %d watchers, 2 io threads)\n", writers,
              watchers);
  std::printf("  trivial GET /healthz      %9.0f requests/s   (baseline: HTTP ceiling)\n",
              trivial_rate);
  std::printf("  writes (create + patch)   %9.0f requests/s   = %.2f x the baseline, %ld failed\n",
              write_rate, write_rate / trivial_rate, failures.load());
  std::printf(
      "  watch fan-out             %9.0f events/s     (%ld events; expected %ld = writes x "
      "watchers)\n",
      events / secs, events, expected);
  // Run as a bounded test (ctest "load"), the figures are not judged, only the delivery.
  return failures == 0 && events == expected ? 0 : 1;
}
