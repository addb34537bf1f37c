// nvdra-sim's API server in this process, over TLS on loopback, with an admin client: for tests
// of code that talks to Kubernetes through k8sclient.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

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
        httpd::ServerOptions{
            .tls = httpd::TlsServerConfig{pki.server.cert_pem, pki.server.key_pem, ""},
            .screen = [this](const httpd::Request& head) { return api->screen(head); }});
    client = make_client("admin");
  }
  // Creates an object as the admin (group "" = core, version v1).
  Status create(const std::string& group, const std::string& resource, const std::string& ns,
                const std::string& body) {
    k8s::ResourceRef r;
    r.group = group;
    r.version = "v1";
    r.resource = resource;
    r.namespace_ = ns;
    auto res = io.run(client->create(r, body));
    if (!res) return unexpected(res.error());
    return ok();
  }
  // A client authenticated as the service account, which is created first.
  std::shared_ptr<k8s::RestClient> service_account_client(const std::string& ns,
                                                          const std::string& name) {
    EXPECT_TRUE(create(
        "", "serviceaccounts", ns,
        R"({"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":")" + name + R"("}})"));
    return make_client(api->service_account_token(ns, name));
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

inline k8s::ResourceRef configmaps(std::string name = "") {
  k8s::ResourceRef r;
  r.resource = "configmaps";
  r.namespace_ = "default";
  r.name = std::move(name);
  return r;
}

// Watches configmaps in "default" with `o` until the watch ends (its timeout, or the server
// closing it) and returns everything the server sent.
inline Result<std::string> watch_body(InProcessSim& sim, const k8s::ListOptions& o) {
  std::string body;
  auto st = sim.io.run(sim.client->watch(
      configmaps(), o,
      [&](std::string_view b) {
        body.append(b);
        return true;
      },
      nullptr));
  if (!st) return unexpected(st.error());
  return body;
}

}  // namespace nvdra::testing
