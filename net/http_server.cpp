#include "net/http_server.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fmt/format.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <charconv>
#include <mutex>
#include <set>

#include "base/log.h"
#include "base/url.h"

namespace nvdra::httpd {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;

std::string too_large_body() {
  return R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
         R"("message":"request body too large","reason":"RequestEntityTooLarge","code":413})";
}

}  // namespace

std::optional<std::string> Request::query_param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view kv = q.substr(0, amp);
    size_t eq = kv.find('=');
    std::string k = url_decode(kv.substr(0, eq));
    if (k == name) {
      return eq == std::string_view::npos ? std::string() : url_decode(kv.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

bool parse_bind_address(std::string_view s, std::string* host, uint16_t* port) {
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view h = s.substr(0, colon);
  std::string_view p = s.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (ec != std::errc() || ptr != p.data() + p.size() || v > 65535) return false;
  *host = h.empty() ? "0.0.0.0" : std::string(h);
  *port = static_cast<uint16_t>(v);
  return true;
}

class HttpServer::Impl : public std::enable_shared_from_this<HttpServer::Impl> {
 public:
  Impl(net::any_io_executor ex, ServerOptions opt, Handler handler)
      : ex_(std::move(ex)), opt_(std::move(opt)), handler_(std::move(handler)), acceptor_(ex_) {}

  Result<uint16_t> start() {
    if (opt_.tls) {
      ssl_ = std::make_unique<ssl::context>(ssl::context::tls_server);
      error_code ec;
      ssl_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      ssl_->use_certificate_chain(net::buffer(opt_.tls->cert_pem), ec);
      if (!ec) ssl_->use_private_key(net::buffer(opt_.tls->key_pem), ssl::context::pem, ec);
      if (ec) return unexpected(ErrorCode::kTls, "cannot load the serving certificate or key");
      if (!opt_.tls->client_ca_pem.empty()) {
        ssl_->add_certificate_authority(net::buffer(opt_.tls->client_ca_pem), ec);
        if (ec) return unexpected(ErrorCode::kTls, "cannot load the client CA");
        // Client certificates are optional at the TLS layer; handlers decide (bearer tokens are
        // an alternative), but a presented certificate must verify.
        ssl_->set_verify_mode(ssl::verify_peer);
      }
    }
    error_code ec;
    auto addr = net::ip::make_address(opt_.address, ec);
    if (ec) return unexpected(ErrorCode::kInvalidArgument, "invalid bind address " + opt_.address);
    tcp::endpoint ep(addr, opt_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return unexpected(ErrorCode::kIo, fmt::format("cannot listen on {}:{}: {}", opt_.address,
                                                    opt_.port, ec.message()));
    }
    port_ = acceptor_.local_endpoint().port();
    net::co_spawn(ex_, accept_loop(shared_from_this()), net::detached);
    return port_;
  }

  void stop() {
    auto self = shared_from_this();
    net::post(ex_, [self] {
      self->stopping_ = true;
      error_code ec;
      self->acceptor_.close(ec);
      std::lock_guard lock(self->mu_);
      for (auto* s : self->sockets_) {
        s->shutdown(tcp::socket::shutdown_both, ec);
        s->close(ec);
      }
    });
  }

  uint16_t port() const { return port_; }

  void drop_connections() {
    auto self = shared_from_this();
    net::post(ex_, [self] {
      error_code ec;
      std::lock_guard lock(self->mu_);
      for (auto* s : self->sockets_) {
        s->shutdown(tcp::socket::shutdown_both, ec);
        s->close(ec);
      }
    });
  }

 private:
  template <class Stream>
  class Writer final : public ResponseWriter {
   public:
    Writer(Stream& s, beast::tcp_stream& lowest, Impl& server, unsigned version, bool keep_alive)
        : s_(s), lowest_(lowest), server_(server), version_(version), keep_alive_(keep_alive) {}

    awaitable<bool> respond(int status, Headers headers, std::string body) override {
      http::response<http::string_body> res;
      res.version(version_);
      res.result(static_cast<unsigned>(status));
      if (auto c = find_header(headers, "Connection"); c && iequals(*c, "close"))
        keep_alive_ = false;
      for (auto& [k, v] : headers) {
        if (!iequals(k, "Connection")) res.insert(k, v);
      }
      res.keep_alive(keep_alive_);
      res.body() = std::move(body);
      res.prepare_payload();
      error_code ec;
      lowest_.expires_after(std::chrono::seconds(30));
      co_await http::async_write(s_, res, net::redirect_error(net::use_awaitable, ec));
      done_ = true;
      failed_ = failed_ || ec;
      co_return !ec;
    }
    awaitable<bool> start_stream(int status, Headers headers) override {
      http::response<http::empty_body> res;
      res.version(version_);
      res.result(static_cast<unsigned>(status));
      for (auto& [k, v] : headers)
        res.insert(k, v);
      res.chunked(true);
      res.keep_alive(keep_alive_);
      http::response_serializer<http::empty_body> sr(res);
      error_code ec;
      lowest_.expires_after(std::chrono::seconds(30));
      co_await http::async_write_header(s_, sr, net::redirect_error(net::use_awaitable, ec));
      streaming_ = true;
      failed_ = failed_ || ec;
      co_return !ec;
    }
    awaitable<bool> write_chunk(std::string_view data) override {
      if (failed_) co_return false;
      if (data.empty()) co_return true;
      error_code ec;
      lowest_.expires_after(std::chrono::seconds(30));
      auto chunk = http::make_chunk(net::buffer(data.data(), data.size()));
      co_await net::async_write(s_, chunk, net::redirect_error(net::use_awaitable, ec));
      failed_ = failed_ || ec;
      co_return !ec;
    }
    awaitable<bool> end_stream() override {
      if (failed_) co_return false;
      error_code ec;
      lowest_.expires_after(std::chrono::seconds(30));
      auto last = http::make_chunk_last();
      co_await net::async_write(s_, last, net::redirect_error(net::use_awaitable, ec));
      done_ = true;
      failed_ = failed_ || ec;
      co_return !ec;
    }
    void abort() override {
      failed_ = true;
      error_code ec;
      lowest_.socket().shutdown(tcp::socket::shutdown_both, ec);
      lowest_.socket().close(ec);
    }
    bool closed() const override { return failed_ || server_.stopping_; }
    bool finished() const { return done_ && !failed_; }
    bool keep_alive() const { return keep_alive_; }

   private:
    Stream& s_;
    beast::tcp_stream& lowest_;
    Impl& server_;
    unsigned version_;
    bool keep_alive_;
    bool done_ = false, failed_ = false, streaming_ = false;
  };

  awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
    constexpr auto kMinBackoff = std::chrono::milliseconds(10);
    auto backoff = kMinBackoff;
    while (!stopping_) {
      if (sessions_ >= opt_.max_connections) {
        co_await sleep_for(std::chrono::milliseconds(20));  // until a connection closes
        continue;
      }
      error_code ec;
      tcp::socket sock =
          co_await acceptor_.async_accept(net::redirect_error(net::use_awaitable, ec));
      if (ec) {
        if (stopping_ || ec == net::error::operation_aborted) break;
        // Out of file descriptors (EMFILE) or memory: the pending connection stays in the
        // backlog and accept fails again at once, so retrying without a pause spins the only
        // thread. Back off (up to 1 s) until accepting works again.
        NVDRA_WARN("http server: accept failed: {}; retrying in {} ms", ec.message(),
                   backoff.count());
        co_await sleep_for(backoff);
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(1));
        continue;
      }
      backoff = kMinBackoff;
      ++sessions_;
      net::co_spawn(ex_, session(self, std::move(sock)), net::detached);
    }
  }

  std::string peer_cn(SSL* s) {
    X509* cert = SSL_get1_peer_certificate(s);
    if (cert == nullptr) return {};
    std::string cn;
    if (SSL_get_verify_result(s) == X509_V_OK) {
      char buf[256] = {0};
      if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf) >
          0) {
        cn = buf;
      }
    }
    X509_free(cert);
    return cn;
  }

  awaitable<void> session(std::shared_ptr<Impl> self, tcp::socket sock) {
    (void)self;  // keeps the server alive while the session runs
    beast::tcp_stream stream(std::move(sock));
    {
      std::lock_guard lock(mu_);
      sockets_.insert(&stream.socket());
    }
    if (ssl_) {
      beast::ssl_stream<beast::tcp_stream&> tls(stream, *ssl_);
      error_code ec;
      stream.expires_after(std::chrono::seconds(10));
      co_await tls.async_handshake(ssl::stream_base::server,
                                   net::redirect_error(net::use_awaitable, ec));
      std::string cn = ec ? std::string() : peer_cn(tls.native_handle());
      if (!ec) co_await serve(tls, stream, cn);
    } else {
      std::string no_cn;
      co_await serve(stream, stream, no_cn);
    }
    std::lock_guard lock(mu_);
    sockets_.erase(&stream.socket());
    error_code ec;
    stream.socket().close(ec);
    --sessions_;
  }

  template <class Stream>
  awaitable<void> serve(Stream& s, beast::tcp_stream& lowest, const std::string& peer_cn) {
    const uint64_t connection_id = ++connections_;
    beast::flat_buffer buffer;
    while (!stopping_) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(opt_.max_body_bytes);
      parser.header_limit(64 * 1024);
      error_code ec;
      lowest.expires_after(opt_.idle_timeout);
      auto too_large = [&]() -> awaitable<void> {
        Writer<Stream> w(s, lowest, *this, 11, false);
        std::string body = too_large_body();
        Headers headers{{"Content-Type", "application/json"}};
        co_await w.respond(413, std::move(headers), std::move(body));
      };
      // The headers first: the request may be screened before its body is read.
      co_await http::async_read_header(s, buffer, parser,
                                       net::redirect_error(net::use_awaitable, ec));
      if (ec == http::error::body_limit) {  // a Content-Length beyond the limit
        co_await too_large();
        co_return;
      }
      if (ec) co_return;
      auto& msg = parser.get();
      Request req;
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      size_t q = req.target.find('?');
      req.path = req.target.substr(0, q);
      if (q != std::string::npos) req.query = req.target.substr(q + 1);
      for (const auto& f : msg) {
        req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      }
      if (opt_.screen) {
        if (auto answer = opt_.screen(req)) {
          Writer<Stream> w(s, lowest, *this, msg.version(), false);
          co_await w.respond(answer->status, std::move(answer->headers), std::move(answer->body));
          co_return;  // the body was not read: the connection cannot be reused
        }
      }
      if (!parser.is_done()) {
        co_await http::async_read(s, buffer, parser, net::redirect_error(net::use_awaitable, ec));
        if (ec == http::error::body_limit) {
          co_await too_large();
          co_return;
        }
        if (ec) co_return;
      }
      lowest.expires_never();
      req.body = std::move(msg.body());
      req.peer_common_name = peer_cn;
      req.connection_id = connection_id;
      Writer<Stream> w(s, lowest, *this, msg.version(), msg.keep_alive());
      try {
        co_await handler_(req, w);
      } catch (const std::exception& e) {
        NVDRA_ERROR("http handler for {} {} failed: {}", req.method, req.path, e.what());
        if (!w.finished()) co_return;
      }
      if (!w.finished() || !w.keep_alive()) co_return;
    }
  }

  net::any_io_executor ex_;
  ServerOptions opt_;
  Handler handler_;
  tcp::acceptor acceptor_;
  std::unique_ptr<ssl::context> ssl_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> connections_{0};
  std::atomic<size_t> sessions_{0};  // open connections
  std::mutex mu_;
  std::set<tcp::socket*> sockets_;  // guarded by mu_
};

HttpServer::HttpServer(net::any_io_executor executor, ServerOptions options, Handler handler)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options), std::move(handler))) {}
HttpServer::~HttpServer() {
  impl_->stop();
}
Result<uint16_t> HttpServer::start() {
  return impl_->start();
}
void HttpServer::stop() {
  impl_->stop();
}
void HttpServer::drop_connections() {
  impl_->drop_connections();
}
uint16_t HttpServer::port() const {
  return impl_->port();
}

}  // namespace nvdra::httpd
