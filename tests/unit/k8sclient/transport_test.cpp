#include "k8sclient/transport/transport.h"

#include <gtest/gtest.h>

#include <atomic>

#include "support/test_server.h"

namespace nvdra::k8s {
namespace {

using testing::IoThread;
using testing::Reply;
using testing::TestPki;
using testing::TestServer;

TransportOptions options_for(const std::string& url, const std::string& ca) {
  TransportOptions o;
  std::string err;
  EXPECT_TRUE(parse_server_url(url, &o.endpoint, &err)) << err;
  o.tls.ca_pem = ca;
  o.request_timeout = std::chrono::milliseconds(5000);
  return o;
}

httpd::Handler echo_handler() {
  return testing::reply_with([](const httpd::Request& r) {
    Reply rep;
    rep.body = r.method + " " + r.target + " cn=" + r.peer_common_name;
    return rep;
  });
}

TEST(Transport, HttpsWithTheRightCa) {
  IoThread io;
  auto pki = TestPki::make();
  TestServer server(io, echo_handler(),
                    httpd::TlsServerConfig{pki.server.cert_pem, pki.server.key_pem, ""});
  auto t = make_beast_transport(io.executor(), options_for(server.url(true), pki.ca.cert_pem));
  ASSERT_TRUE(t) << t.error().message;
  auto res = io.run((*t)->send(HttpRequest{"GET", "/api?x=1", {}, {}}));
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "GET /api?x=1 cn=");
}

// getaddrinfo cannot be interrupted; a lookup that does not answer in time is given up.
TEST(Transport, ADnsLookupTimesOut) {
  IoThread io;
  auto o = options_for("https://nvdra-dns-test.invalid:6443", "");
  o.resolve_timeout = std::chrono::milliseconds(0);
  auto t = make_beast_transport(io.executor(), o);
  ASSERT_TRUE(t) << t.error().message;
  auto res = io.run((*t)->send(HttpRequest{"GET", "/", {}, {}}));
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kTimeout) << res.error().message;
  EXPECT_NE(res.error().message.find("DNS lookup of nvdra-dns-test.invalid timed out"),
            std::string::npos)
      << res.error().message;
}

TEST(Transport, WrongCaIsRefused) {
  IoThread io;
  auto pki = TestPki::make();
  auto other = TestPki::make("other-ca");
  TestServer server(io, echo_handler(),
                    httpd::TlsServerConfig{pki.server.cert_pem, pki.server.key_pem, ""});
  auto t = make_beast_transport(io.executor(), options_for(server.url(true), other.ca.cert_pem));
  ASSERT_TRUE(t);
  auto res = io.run((*t)->send(HttpRequest{"GET", "/", {}, {}}));
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kTls);
  EXPECT_NE(res.error().message.find("verif"), std::string::npos) << res.error().message;
}

TEST(Transport, HostNameMustMatchTheCertificate) {
  IoThread io;
  auto pki = TestPki::make();
  TestServer server(io, echo_handler(),
                    httpd::TlsServerConfig{pki.server.cert_pem, pki.server.key_pem, ""});
  // By DNS name (SAN localhost): accepted.
  auto ok_t = make_beast_transport(
      io.executor(),
      options_for("https://localhost:" + std::to_string(server.port()), pki.ca.cert_pem));
  auto ok = io.run((*ok_t)->send(HttpRequest{"GET", "/", {}, {}}));
  EXPECT_TRUE(ok) << ok.error().message;
  // A name the certificate does not carry: refused even though the CA is right.
  auto opts = options_for(server.url(true), pki.ca.cert_pem);
  opts.tls.server_name = "kubernetes.default.svc";
  auto bad_t = make_beast_transport(io.executor(), opts);
  auto bad = io.run((*bad_t)->send(HttpRequest{"GET", "/", {}, {}}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kTls);
}

TEST(Transport, IpAddressMustBeInTheCertificate) {
  IoThread io;
  auto pki = TestPki::make();
  pki::CertRequest req;
  req.common_name = "127.0.0.1";  // a CN alone is not enough: only SANs count
  req.dns_names = {"localhost"};
  auto no_ip = *pki::issue(pki.ca, req);
  TestServer server(io, echo_handler(), httpd::TlsServerConfig{no_ip.cert_pem, no_ip.key_pem, ""});
  auto t = make_beast_transport(io.executor(), options_for(server.url(true), pki.ca.cert_pem));
  auto res = io.run((*t)->send(HttpRequest{"GET", "/", {}, {}}));
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kTls);
}

TEST(Transport, InsecureSkipVerifyAcceptsAnyCertificate) {
  IoThread io;
  auto pki = TestPki::make();
  TestServer server(io, echo_handler(),
                    httpd::TlsServerConfig{pki.server.cert_pem, pki.server.key_pem, ""});
  auto opts = options_for(server.url(true), "");
  opts.tls.insecure_skip_verify = true;
  auto t = make_beast_transport(io.executor(), opts);
  auto res = io.run((*t)->send(HttpRequest{"GET", "/", {}, {}}));
  EXPECT_TRUE(res) << res.error().message;
}

TEST(Transport, ClientCertificateIsPresented) {
  IoThread io;
  auto pki = TestPki::make();
  pki::CertRequest req;
  req.common_name = "system:node:n1";
  req.organizations = {"system:nodes"};
  req.server = false;
  auto client = *pki::issue(pki.ca, req);
  TestServer server(
      io, echo_handler(),
      httpd::TlsServerConfig{pki.server.cert_pem, pki.server.key_pem, pki.ca.cert_pem});
  auto opts = options_for(server.url(true), pki.ca.cert_pem);
  opts.tls.client_cert_pem = client.cert_pem;
  opts.tls.client_key_pem = client.key_pem;
  auto t = make_beast_transport(io.executor(), opts);
  ASSERT_TRUE(t) << t.error().message;
  auto res = io.run((*t)->send(HttpRequest{"GET", "/", {}, {}}));
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->body, "GET / cn=system:node:n1");
}

TEST(Transport, BadTlsMaterialFailsAtConstruction) {
  IoThread io;
  auto opts = options_for("https://127.0.0.1:1", "not a pem");
  auto t = make_beast_transport(io.executor(), opts);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ErrorCode::kTls);
  opts.tls.ca_pem.clear();
  opts.tls.client_cert_pem = "junk";
  opts.tls.client_key_pem = "secret-key-material";
  t = make_beast_transport(io.executor(), opts);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().message.find("secret-key-material"), std::string::npos);
}

TEST(Transport, KeepAliveReusesOneConnection) {
  IoThread io;
  std::mutex mu;
  std::set<uint64_t> connections;
  TestServer server(io, testing::reply_with([&](const httpd::Request& r) {
                      std::lock_guard lock(mu);
                      connections.insert(r.connection_id);
                      return Reply{};
                    }));
  auto t = make_beast_transport(io.executor(), options_for(server.url(false), ""));
  ASSERT_TRUE(t);
  for (int i = 0; i < 20; ++i) {
    auto res = io.run((*t)->send(HttpRequest{"GET", "/", {}, {}}));
    ASSERT_TRUE(res) << res.error().message;
  }
  EXPECT_EQ(connections.size(), 1u);
}

TEST(Transport, ServerClosedConnectionsAreReplaced) {
  IoThread io;
  std::mutex mu;
  std::set<uint64_t> connections;
  TestServer closing(io, [&](const httpd::Request& r, httpd::ResponseWriter& w) -> awaitable<void> {
    {
      std::lock_guard lock(mu);
      connections.insert(r.connection_id);
    }
    Headers h{{"Connection", "close"}};
    std::string body;
    co_await w.respond(200, std::move(h), std::move(body));
  });
  auto t = make_beast_transport(io.executor(), options_for(closing.url(false), ""));
  for (int i = 0; i < 3; ++i) {
    auto res = io.run((*t)->send(HttpRequest{"GET", "/", {}, {}}));
    ASSERT_TRUE(res) << res.error().message;
  }
  EXPECT_EQ(connections.size(), 3u);
}

TEST(Transport, ReadTimeoutIsAnError) {
  IoThread io;
  TestServer server(io, [](const httpd::Request&, httpd::ResponseWriter& w) -> awaitable<void> {
    co_await sleep_for(std::chrono::seconds(3));
    w.abort();
  });
  auto opts = options_for(server.url(false), "");
  opts.request_timeout = std::chrono::milliseconds(200);
  auto t = make_beast_transport(io.executor(), opts);
  auto res = io.run((*t)->send(HttpRequest{"GET", "/", {}, {}}));
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kTimeout);
}

TEST(Transport, ConnectionRefusedIsAnIoError) {
  IoThread io;
  uint16_t port;
  {
    TestServer s(io, echo_handler());
    port = s.port();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto t = make_beast_transport(io.executor(),
                                options_for("http://127.0.0.1:" + std::to_string(port), ""));
  auto res = io.run((*t)->send(HttpRequest{"GET", "/", {}, {}}));
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kIo);
}

TEST(Transport, StreamDeliversChunksAndCancelStopsIt) {
  IoThread io;
  TestServer server(io, [](const httpd::Request&, httpd::ResponseWriter& w) -> awaitable<void> {
    Headers h{{"Content-Type", "application/json"}};
    co_await w.start_stream(200, std::move(h));
    for (int i = 0; i < 1000 && !w.closed(); ++i) {
      std::string chunk = "{\"n\":" + std::to_string(i) + "}\n";
      if (!co_await w.write_chunk(chunk)) co_return;
      co_await sleep_for(std::chrono::milliseconds(10));
    }
    co_await w.end_stream();
  });
  auto t = make_beast_transport(io.executor(), options_for(server.url(false), ""));
  Cancellation cancel;
  std::string got;
  std::atomic<int> chunks{0};
  // The coroutine lambda is named so its captures outlive the coroutine.
  auto body = [&]() -> awaitable<void> {
    HttpRequest req{"GET", "/watch", {}, {}};
    BodyCallback on_body = [&](std::string_view b) {
      got.append(b);
      ++chunks;
      return true;
    };
    auto res =
        co_await (*t)->stream(std::move(req), std::move(on_body), std::chrono::seconds(5), &cancel);
    EXPECT_FALSE(res);
    if (!res) {
      EXPECT_EQ(res.error().code, ErrorCode::kCancelled) << res.error().message;
    }
  };
  auto fut = io.spawn(body());
  while (chunks.load() < 3)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  cancel.cancel();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  fut.get();
  EXPECT_EQ(got.rfind("{\"n\":0}\n", 0), 0u);
}

TEST(Transport, StreamReturnsNon2xxWhole) {
  IoThread io;
  TestServer server(io, testing::reply_with([](const httpd::Request&) {
                      return Reply{403,
                                   {{"Content-Type", "application/json"}},
                                   "{\"kind\":\"Status\",\"code\":403}"};
                    }));
  auto t = make_beast_transport(io.executor(), options_for(server.url(false), ""));
  bool called = false;
  auto res = io.run((*t)->stream(
      HttpRequest{"GET", "/", {}, {}}, [&](std::string_view) { return called = true; },
      std::chrono::seconds(5), nullptr));
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 403);
  EXPECT_FALSE(called);
  EXPECT_NE(res->body.find("403"), std::string::npos);
}

TEST(Transport, CancelFailsPendingRequests) {
  IoThread io;
  TestServer server(io, [](const httpd::Request&, httpd::ResponseWriter& w) -> awaitable<void> {
    co_await sleep_for(std::chrono::seconds(5));
    w.abort();
  });
  auto t = make_beast_transport(io.executor(), options_for(server.url(false), ""));
  auto body = [&]() -> awaitable<void> {
    HttpRequest req{"GET", "/", {}, {}};
    auto res = co_await (*t)->send(std::move(req));
    EXPECT_FALSE(res);
    if (!res) {
      EXPECT_EQ(res.error().code, ErrorCode::kCancelled);
    }
  };
  auto fut = io.spawn(body());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  (*t)->cancel();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(3)), std::future_status::ready);
  fut.get();
}

TEST(ServerUrl, Parses) {
  Endpoint e;
  std::string err;
  ASSERT_TRUE(parse_server_url("https://[::1]:6443/k8s/clusters/c1/", &e, &err));
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, "6443");
  EXPECT_EQ(e.path_prefix, "/k8s/clusters/c1");
  ASSERT_TRUE(parse_server_url("http://example.com", &e, &err));
  EXPECT_FALSE(e.tls);
  EXPECT_EQ(e.port, "80");
  EXPECT_FALSE(parse_server_url("ftp://x", &e, &err));
  EXPECT_FALSE(parse_server_url("https://x:99999", &e, &err));
  EXPECT_FALSE(parse_server_url("https://", &e, &err));
  EXPECT_FALSE(parse_server_url("https://[::1", &e, &err));
}

}  // namespace
}  // namespace nvdra::k8s
