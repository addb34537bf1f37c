// Boost.Beast implementation of Transport.
//
// Threading: a transport and its connections live on one executor (a single-threaded io_context or
// a strand); cancel() may be called from any thread and posts the socket closes there.
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <array>
#include <limits>
#include <mutex>
#include <set>

#include "base/log.h"
#include "k8sclient/transport/transport.h"

namespace nvdra::k8s {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;

struct Conn {
  std::optional<beast::tcp_stream> tcp;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  bool reused = false;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *tcp; }
  void close() {
    error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close();
  }
};

bool is_ip_literal(const std::string& host) {
  error_code ec;
  boost::asio::ip::make_address(host, ec);
  return !ec;
}

Error io_error(std::string_view what, const error_code& ec, bool cancelled) {
  if (cancelled || ec == boost::asio::error::operation_aborted) {
    return Error(ErrorCode::kCancelled, fmt::format("{}: cancelled", what));
  }
  if (ec == beast::error::timeout) {
    return Error(ErrorCode::kTimeout, fmt::format("{}: timed out", what));
  }
  if (ec.category() == boost::asio::error::get_ssl_category() ||
      ec.category() == ssl::error::get_stream_category()) {
    return Error(ErrorCode::kTls, fmt::format("{}: TLS: {}", what, ec.message()));
  }
  return Error(ErrorCode::kIo, fmt::format("{}: {}", what, ec.message()));
}

// A connection that failed before the server answered anything may simply have been closed by the
// server while idle; such requests are safe to send once more on a fresh connection.
bool stale_connection_error(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == boost::asio::error::eof ||
         ec == boost::asio::error::connection_reset || ec == boost::asio::error::broken_pipe ||
         ec == ssl::error::stream_truncated;
}

class BeastTransport final : public Transport, public std::enable_shared_from_this<BeastTransport> {
 public:
  BeastTransport(net::any_io_executor ex, TransportOptions opt, std::unique_ptr<ssl::context> ctx)
      : ex_(std::move(ex)), opt_(std::move(opt)), ssl_(std::move(ctx)) {
    host_header_ = opt_.endpoint.host.find(':') != std::string::npos
                       ? fmt::format("[{}]:{}", opt_.endpoint.host, opt_.endpoint.port)
                       : fmt::format("{}:{}", opt_.endpoint.host, opt_.endpoint.port);
    verify_name_ = opt_.tls.server_name.empty() ? opt_.endpoint.host : opt_.tls.server_name;
  }

  awaitable<Result<HttpResponse>> send(HttpRequest request) override {
    auto self = shared_from_this();
    for (int attempt = 0;; ++attempt) {
      auto conn = co_await acquire(nullptr);
      if (!conn) co_return unexpected(conn.error());
      std::unique_ptr<Conn> c = std::move(*conn);
      bool got_bytes = false;
      error_code ec;
      auto res = co_await exchange(*c, request, &got_bytes, &ec);
      if (!res && c->reused && !got_bytes && attempt == 0 && stale_connection_error(ec)) {
        NVDRA_V(6, "transport: idle connection was closed by the server, reconnecting");
        forget(c.get());
        continue;
      }
      forget(c.get());
      if (res && res->keep_alive) release(std::move(c));
      if (!res) co_return unexpected(res.error());
      co_return std::move(res->response);
    }
  }

  awaitable<Result<HttpResponse>> stream(HttpRequest request, BodyCallback on_body,
                                         std::chrono::milliseconds idle_timeout,
                                         Cancellation* cancel) override {
    auto self = shared_from_this();
    // Watches get a connection of their own: it is held for minutes.
    auto conn = co_await connect(cancel);
    if (!conn) co_return unexpected(conn.error());
    std::unique_ptr<Conn> c = std::move(*conn);
    Conn* raw = c.get();
    CancelScope scope(cancel, [this, self, raw] { post_close(raw); });
    auto res = co_await stream_on(*c, request, on_body, idle_timeout, cancel);
    forget(raw);
    c->close();
    co_return res;
  }

  void cancel() override {
    std::vector<Conn*> active;
    std::vector<std::unique_ptr<Conn>> idle;
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
      active.assign(active_.begin(), active_.end());
      idle.swap(idle_);
    }
    auto self = shared_from_this();
    for (Conn* c : active)
      post_close(c);
    net::post(ex_, [self, idle = std::make_shared<decltype(idle)>(std::move(idle))] {
      for (auto& c : *idle)
        c->close();
    });
  }

 private:
  struct Exchanged {
    HttpResponse response;
    bool keep_alive = false;
  };

  bool is_cancelled() {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

  void post_close(Conn* c) {
    auto self = shared_from_this();
    net::post(ex_, [this, self, c] {
      std::lock_guard lock(mu_);
      if (active_.count(c)) c->close();
    });
  }

  void forget(Conn* c) {
    std::lock_guard lock(mu_);
    active_.erase(c);
  }

  void release(std::unique_ptr<Conn> c) {
    std::lock_guard lock(mu_);
    if (cancelled_ || idle_.size() >= opt_.max_idle_connections) return;
    c->reused = true;
    idle_.push_back(std::move(c));
  }

  awaitable<Result<std::unique_ptr<Conn>>> acquire(Cancellation* cancel) {
    {
      std::lock_guard lock(mu_);
      if (cancelled_) co_return unexpected(ErrorCode::kCancelled, "transport is closed");
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        active_.insert(c.get());
        co_return c;
      }
    }
    co_return co_await connect(cancel);
  }

  // The server's addresses. getaddrinfo runs on Asio's resolver thread and cannot be interrupted,
  // so a lookup that hangs (an unreachable DNS server) is abandoned after resolve_timeout rather
  // than waited for; it finishes in the background. Handlers run on ex_, one at a time.
  awaitable<Result<tcp::resolver::results_type>> resolve(const std::string& what) {
    struct Lookup {
      explicit Lookup(const net::any_io_executor& ex) : resolver(ex), timer(ex) {}
      tcp::resolver resolver;
      net::steady_timer timer;
      bool done = false;
      error_code ec;
      tcp::resolver::results_type results;
    };
    auto l = std::make_shared<Lookup>(ex_);
    l->timer.expires_after(opt_.resolve_timeout);
    l->resolver.async_resolve(opt_.endpoint.host, opt_.endpoint.port,
                              [l](const error_code& ec, tcp::resolver::results_type r) {
                                l->done = true;
                                l->ec = ec;
                                l->results = std::move(r);
                                l->timer.cancel();
                              });
    error_code ignored;
    co_await l->timer.async_wait(net::redirect_error(net::use_awaitable, ignored));
    if (!l->done) {
      l->resolver.cancel();
      co_return unexpected(ErrorCode::kTimeout,
                           fmt::format("{}: DNS lookup of {} timed out after {} ms", what,
                                       opt_.endpoint.host, opt_.resolve_timeout.count()));
    }
    if (l->ec) co_return unexpected(io_error(what, l->ec, is_cancelled()));
    co_return std::move(l->results);
  }

  awaitable<Result<std::unique_ptr<Conn>>> connect(Cancellation* cancel) {
    if (is_cancelled() || (cancel && cancel->cancelled())) {
      co_return unexpected(ErrorCode::kCancelled, "transport is closed");
    }
    const auto& ep = opt_.endpoint;
    auto c = std::make_unique<Conn>();
    if (ep.tls) {
      c->tls.emplace(ex_, *ssl_);
    } else {
      c->tcp.emplace(ex_);
    }
    Conn* raw = c.get();
    {
      std::lock_guard lock(mu_);
      active_.insert(raw);
    }
    auto self = shared_from_this();
    CancelScope scope(cancel, [this, self, raw] { post_close(raw); });
    const std::string what = fmt::format("connect to {}", host_header_);

    auto endpoints = co_await resolve(what);
    if (!endpoints) {
      forget(raw);
      co_return unexpected(endpoints.error());
    }
    error_code ec;
    c->lowest().expires_after(opt_.connect_timeout);
    co_await c->lowest().async_connect(*endpoints, net::redirect_error(net::use_awaitable, ec));
    if (!ec && ep.tls) {
      SSL* s = c->tls->native_handle();
      const bool ip = is_ip_literal(verify_name_);
      // SNI carries DNS names only (RFC 6066).
      if (!ip) SSL_set_tlsext_host_name(s, verify_name_.c_str());
      if (!opt_.tls.insecure_skip_verify) {
        // Chain verification comes from the context; the name check is OpenSSL's own
        // (DNS SAN, or IP SAN for address literals), performed inside the handshake.
        X509_VERIFY_PARAM* param = SSL_get0_param(s);
        if (ip) {
          X509_VERIFY_PARAM_set1_ip_asc(param, verify_name_.c_str());
        } else {
          X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
          X509_VERIFY_PARAM_set1_host(param, verify_name_.c_str(), 0);
        }
      }
      co_await c->tls->async_handshake(ssl::stream_base::client,
                                       net::redirect_error(net::use_awaitable, ec));
      if (ec && !is_cancelled()) {
        long verify = SSL_get_verify_result(s);
        if (verify != X509_V_OK) {
          forget(raw);
          co_return unexpected(ErrorCode::kTls,
                               fmt::format("{}: TLS certificate verification failed: {}", what,
                                           X509_verify_cert_error_string(verify)));
        }
      }
    }
    if (ec) {
      forget(raw);
      co_return unexpected(io_error(what, ec, is_cancelled() || (cancel && cancel->cancelled())));
    }
    co_return c;
  }

  http::request<http::string_body> build(const HttpRequest& r) {
    http::request<http::string_body> req;
    req.version(11);
    http::verb v = http::string_to_verb(r.method);
    if (v == http::verb::unknown) {
      req.method_string(r.method);
    } else {
      req.method(v);
    }
    req.target(r.target);
    req.set(http::field::host, host_header_);
    for (const auto& [k, val] : r.headers)
      req.insert(k, val);
    if (!find_header(r.headers, "User-Agent")) req.set(http::field::user_agent, "nvdra/0.1");
    req.body() = r.body;
    req.prepare_payload();
    if (log::v(8)) {
      for (const auto& [k, val] : r.headers) {
        NVDRA_V(8, "request header {}: {}", k, log::redact_header(k, val));
      }
    }
    return req;
  }

  template <class Stream>
  awaitable<void> write_request(Stream& s, Conn& c, http::request<http::string_body>& req,
                                error_code& ec, std::chrono::milliseconds timeout) {
    c.lowest().expires_after(timeout);
    co_await http::async_write(s, req, net::redirect_error(net::use_awaitable, ec));
  }

  awaitable<Result<Exchanged>> exchange(Conn& c, const HttpRequest& r, bool* got_bytes,
                                        error_code* out_ec) {
    auto req = build(r);
    http::response_parser<http::string_body> parser;
    parser.body_limit(opt_.max_body_bytes);
    error_code ec;
    const std::string what = fmt::format("{} {}", r.method, r.target);
    if (c.tls) {
      co_await write_request(*c.tls, c, req, ec, opt_.request_timeout);
    } else {
      co_await write_request(*c.tcp, c, req, ec, opt_.request_timeout);
    }
    if (!ec) {
      c.lowest().expires_after(opt_.request_timeout);
      if (c.tls) {
        co_await http::async_read(*c.tls, c.buffer, parser,
                                  net::redirect_error(net::use_awaitable, ec));
      } else {
        co_await http::async_read(*c.tcp, c.buffer, parser,
                                  net::redirect_error(net::use_awaitable, ec));
      }
      *got_bytes = parser.got_some();
    }
    *out_ec = ec;
    if (ec) co_return unexpected(io_error(what, ec, is_cancelled()));
    c.lowest().expires_never();
    auto& msg = parser.get();
    Exchanged out;
    out.response.status = msg.result_int();
    for (const auto& f : msg) {
      out.response.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    out.response.body = std::move(msg.body());
    out.keep_alive = msg.keep_alive();
    NVDRA_V(7, "{} -> {}", what, out.response.status);
    co_return out;
  }

  template <class Stream>
  awaitable<Result<HttpResponse>> stream_impl(Stream& s, Conn& c, const HttpRequest& r,
                                              const BodyCallback& on_body,
                                              std::chrono::milliseconds idle,
                                              Cancellation* cancel) {
    const std::string what = fmt::format("{} {}", r.method, r.target);
    auto cancelled = [&] { return is_cancelled() || (cancel && cancel->cancelled()); };
    auto req = build(r);
    error_code ec;
    co_await write_request(s, c, req, ec, opt_.request_timeout);
    if (ec) co_return unexpected(io_error(what, ec, cancelled()));
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // a watch has no natural end
    c.lowest().expires_after(opt_.request_timeout);
    co_await http::async_read_header(s, c.buffer, parser,
                                     net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return unexpected(io_error(what, ec, cancelled()));
    HttpResponse head;
    head.status = parser.get().result_int();
    for (const auto& f : parser.get()) {
      head.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    const bool ok = head.status >= 200 && head.status < 300;
    std::array<char, 64 * 1024> chunk;  // lives in the coroutine frame
    while (!parser.is_done()) {
      parser.get().body().data = chunk.data();
      parser.get().body().size = chunk.size();
      c.lowest().expires_after(idle);
      co_await http::async_read_some(s, c.buffer, parser,
                                     net::redirect_error(net::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        if (ec == http::error::end_of_stream || ec == boost::asio::error::eof) break;
        co_return unexpected(io_error(what, ec, cancelled()));
      }
      size_t n = chunk.size() - parser.get().body().size;
      if (n == 0) continue;
      if (ok) {
        if (!on_body(std::string_view(chunk.data(), n))) break;
      } else if (head.body.size() < 1 << 20) {
        head.body.append(chunk.data(), n);
      }
    }
    if (cancelled()) co_return unexpected(ErrorCode::kCancelled, what + ": cancelled");
    co_return head;
  }

  awaitable<Result<HttpResponse>> stream_on(Conn& c, const HttpRequest& r, const BodyCallback& cb,
                                            std::chrono::milliseconds idle, Cancellation* cancel) {
    if (c.tls) co_return co_await stream_impl(*c.tls, c, r, cb, idle, cancel);
    co_return co_await stream_impl(*c.tcp, c, r, cb, idle, cancel);
  }

  net::any_io_executor ex_;
  TransportOptions opt_;
  std::unique_ptr<ssl::context> ssl_;
  std::string host_header_;
  std::string verify_name_;
  std::mutex mu_;
  bool cancelled_ = false;                   // guarded by mu_
  std::set<Conn*> active_;                   // guarded by mu_
  std::vector<std::unique_ptr<Conn>> idle_;  // guarded by mu_
};

}  // namespace

Result<std::shared_ptr<Transport>> make_beast_transport(net::any_io_executor executor,
                                                        TransportOptions options) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  if (options.tls.insecure_skip_verify) {
    ctx->set_verify_mode(ssl::verify_none);
  } else {
    ctx->set_verify_mode(ssl::verify_peer);
    if (options.tls.ca_pem.empty()) {
      ctx->set_default_verify_paths(ec);
      if (ec) return unexpected(ErrorCode::kTls, "cannot load the system's CA certificates");
    } else {
      ctx->add_certificate_authority(net::buffer(options.tls.ca_pem), ec);
      if (ec) {
        return unexpected(ErrorCode::kTls,
                          fmt::format("cannot load the CA certificate: {}", ec.message()));
      }
    }
  }
  if (!options.tls.client_cert_pem.empty() || !options.tls.client_key_pem.empty()) {
    ctx->use_certificate_chain(net::buffer(options.tls.client_cert_pem), ec);
    if (ec) {
      return unexpected(ErrorCode::kTls,
                        fmt::format("cannot load the client certificate: {}", ec.message()));
    }
    ctx->use_private_key(net::buffer(options.tls.client_key_pem), ssl::context::pem, ec);
    if (ec) {
      // Never echo key material; the OpenSSL message names only the failure.
      return unexpected(ErrorCode::kTls,
                        fmt::format("cannot load the client key: {}", ec.message()));
    }
  }
  return std::shared_ptr<Transport>(
      std::make_shared<BeastTransport>(std::move(executor), std::move(options), std::move(ctx)));
}

}  // namespace nvdra::k8s
