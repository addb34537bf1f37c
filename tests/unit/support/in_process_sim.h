// nvdra-sim's API server in this process, over TLS on loopback, with an admin client: for tests
// of code that talks to Kubernetes through k8sclient.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "k8sclient/rest/rest_client.h"
#include "sim/api_server.h"
#include "support/test_server.h"

namespace nvdra::testing {

struct InProcessSim {
  IoThread io;
  sim::ResourceRegistry registry;
  sim::Store store;
  TestPki pki = TestPki::make();
  std::unique_ptr<sim::ApiServer> api;
  std::unique_ptr<TestServer> server;
  std::shared_ptr<k8s::RestClient> client;

  explicit InProcessSim(std::chrono::milliseconds bookmarks = std::chrono::seconds(60)) {
    auto ns = json::parse(R"({"metadata":{"name":"default"}})");
    EXPECT_TRUE(store.create(*registry.find("", "v1", "namespaces"), "", std::move(*ns)));
    api = std::make_unique<sim::ApiServer>(
        store, registry,
        sim::ApiServerOptions{.admin_token = "admin", .bookmark_interval = bookmarks});
    server = std::make_unique<TestServer>(
        io, [this](const httpd::Request& r, httpd::ResponseWriter& w) { return api->handle(r, w); },
        httpd::TlsServerConfig{pki.server.cert_pem, pki.server.key_pem, ""});
    client = make_client("admin");
  }
  std::shared_ptr<k8s::RestClient> make_client(const std::string& token) {
    k8s::RestConfig cfg;
    cfg.server = server->url(true);
    std::string err;
    k8s::parse_server_url(cfg.server, &cfg.endpoint, &err);
    cfg.tls.ca_pem = pki.ca.cert_pem;
    cfg.token = k8s::TokenSource::fixed(token);
    cfg.qps = 0;
    return *k8s::RestClient::create(io.executor(), cfg);
  }
};

}  // namespace nvdra::testing
