// HttpServer: a small HTTP/1.1 server (plain or TLS) on Boost.Beast with coroutine handlers.
// One per process serves /metrics, /healthz and /readyz; the simulated API server and the
// client tests' in-process servers use it too.
//
// Handlers either answer whole (respond) or stream a chunked body (start_stream, write_chunk,
// end_stream) - the shape of a watch. Keep-alive is honoured. Threading: runs on the executor
// given; stop() may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/asio.h"
#include "base/headers.h"
#include "base/result.h"

namespace nvdra::httpd {

struct Request {
  std::string method;
  std::string target;  // as sent: path?query
  std::string path;    // percent-decoding is left to the handler
  std::string query;   // without '?'
  Headers headers;
  std::string body;
  std::string peer_common_name;  // CN of a verified client certificate (TLS with client CA)
  uint64_t connection_id = 0;    // distinct per accepted connection (tests check reuse)

  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
  // Value of a query parameter (percent-decoded); nullopt when absent.
  std::optional<std::string> query_param(std::string_view name) const;
};

class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // Whole response. Returns false when the connection failed.
  virtual awaitable<bool> respond(int status, Headers headers, std::string body) = 0;
  // Chunked response for streaming.
  virtual awaitable<bool> start_stream(int status, Headers headers) = 0;
  virtual awaitable<bool> write_chunk(std::string_view data) = 0;
  virtual awaitable<bool> end_stream() = 0;
  // Drops the connection without finishing the response (fault injection, shutdown).
  virtual void abort() = 0;
  // True once the server is stopping or the peer went away (stream loops check it).
  virtual bool closed() const = 0;
};

using Handler = std::function<awaitable<void>(const Request&, ResponseWriter&)>;

struct TlsServerConfig {
  std::string cert_pem;       // serving certificate chain
  std::string key_pem;        // its private key
  std::string client_ca_pem;  // when set, client certificates are requested and verified
};

// An answer given before a request's body is read (see ServerOptions::screen).
struct EarlyAnswer {
  int status = 401;
  Headers headers;
  std::string body;
};

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;  // 0 = any free port
  std::optional<TlsServerConfig> tls;
  size_t max_body_bytes = 3u << 20;  // larger requests get 413
  std::chrono::seconds idle_timeout{120};
  // Looks at each request's method, target and headers (body still empty) before the body is
  // read; an answer is sent instead and the connection closed. What keeps a client that is not
  // authenticated from making the server read and buffer megabytes of body.
  std::function<std::optional<EarlyAnswer>(const Request& head)> screen;
  // Open connections beyond which the server stops accepting until one closes (each holds a
  // socket and buffers; the rest wait in the listen backlog).
  size_t max_connections = 1024;
};

class HttpServer {
 public:
  HttpServer(net::any_io_executor executor, ServerOptions options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. Returns the bound port.
  Result<uint16_t> start();
  // Stops accepting and closes every connection.
  void stop();
  // Closes every open connection but keeps listening (fault injection: watches drop).
  void drop_connections();
  uint16_t port() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Splits "host:port" / "[v6]:port" / ":port" as used by bind-address flags.
bool parse_bind_address(std::string_view s, std::string* host, uint16_t* port);

}  // namespace nvdra::httpd
