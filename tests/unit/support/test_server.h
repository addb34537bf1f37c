// An in-process HTTP(S) server for client tests: a real socket, our HttpServer, and a handler the
// test scripts. TLS material is generated per test with a CA made in the test.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "net/http_server.h"
#include "net/pki.h"
#include "support/io_thread.h"

namespace nvdra::testing {

struct TestPki {
  pki::KeyPair ca;
  pki::KeyPair server;  // CN=localhost, SANs localhost and 127.0.0.1
  static TestPki make(const std::string& ca_name = "test-ca") {
    TestPki p;
    p.ca = *pki::make_ca(ca_name);
    pki::CertRequest req;
    req.common_name = "localhost";
    req.dns_names = {"localhost"};
    req.ip_addresses = {"127.0.0.1"};
    p.server = *pki::issue(p.ca, req);
    return p;
  }
};

class TestServer {
 public:
  using Handler = httpd::Handler;
  TestServer(IoThread& io, Handler handler, std::optional<httpd::TlsServerConfig> tls = {},
             uint16_t port = 0)
      : TestServer(io, std::move(handler),
                   httpd::ServerOptions{.port = port, .tls = std::move(tls)}) {}
  TestServer(IoThread& io, Handler handler, httpd::ServerOptions opt) {
    server_ =
        std::make_unique<httpd::HttpServer>(io.executor(), std::move(opt), std::move(handler));
    port_ = *server_->start();
  }
  ~TestServer() { server_->stop(); }
  uint16_t port() const { return port_; }
  std::string url(bool tls) const {
    return (tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_);
  }
  void stop() { server_->stop(); }
  void drop_connections() { server_->drop_connections(); }

 private:
  std::unique_ptr<httpd::HttpServer> server_;
  uint16_t port_ = 0;
};

// Records requests so tests can assert on what a client sent.
struct RecordedRequest {
  std::string method, target, path, query, body;
  Headers headers;
};

class RequestLog {
 public:
  void add(const httpd::Request& r) {
    std::lock_guard lock(mu_);
    items_.push_back({r.method, r.target, r.path, r.query, r.body, r.headers});
  }
  std::vector<RecordedRequest> all() const {
    std::lock_guard lock(mu_);
    return items_;
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<RecordedRequest> items_;
};

// Builds a reply from a plain function (avoids string literals inside coroutine argument lists,
// which g++ 12 miscompiles).
struct Reply {
  int status = 200;
  Headers headers{{"Content-Type", "application/json"}};
  std::string body;
};
inline httpd::Handler reply_with(std::function<Reply(const httpd::Request&)> f) {
  return
      [f = std::move(f)](const httpd::Request& req, httpd::ResponseWriter& w) -> awaitable<void> {
        Reply r = f(req);
        co_await w.respond(r.status, std::move(r.headers), std::move(r.body));
      };
}

}  // namespace nvdra::testing
