// Transport: HTTP/1.1 exchanges with one API server over TCP or TLS. The REST layer builds on
// this interface; tests substitute scripted transports.
//
// Promises: TLS peers are verified against the configured CA (or the system roots) including the
// host name or IP address; idle connections are reused (keep-alive); every connect, write and
// read has a deadline; cancel() makes every pending call return kCancelled promptly.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "base/asio.h"
#include "base/cancel.h"
#include "base/result.h"
#include "k8sclient/transport/http.h"

namespace nvdra::k8s {

struct TransportOptions {
  Endpoint endpoint;
  TlsConfig tls;
  std::chrono::milliseconds connect_timeout{10'000};
  // A DNS lookup (getaddrinfo, which cannot be interrupted) is abandoned after this long.
  std::chrono::milliseconds resolve_timeout{10'000};
  std::chrono::milliseconds request_timeout{60'000};  // per write/read step of a plain request
  size_t max_idle_connections = 16;
  size_t max_body_bytes = 512u << 20;
};

// Receives a streamed body piece by piece; returns false to stop reading.
using BodyCallback = std::function<bool(std::string_view)>;

class Transport {
 public:
  virtual ~Transport() = default;

  // One request and its whole response (any status; the REST layer maps non-2xx to errors).
  virtual awaitable<Result<HttpResponse>> send(HttpRequest request) = 0;

  // A request whose 2xx body is streamed to `on_body` as it arrives (watch). A non-2xx answer is
  // returned whole as an error-carrying response instead. `idle_timeout` bounds the wait for each
  // read. Returns when the body ends, on_body returns false, an error happens, or `cancel` fires.
  virtual awaitable<Result<HttpResponse>> stream(HttpRequest request, BodyCallback on_body,
                                                 std::chrono::milliseconds idle_timeout,
                                                 Cancellation* cancel) = 0;

  // Closes every connection; pending and future calls fail with kCancelled.
  virtual void cancel() = 0;
};

// The real transport on Boost.Beast and OpenSSL. Fails at construction time (Error) when the TLS
// material does not load.
Result<std::shared_ptr<Transport>> make_beast_transport(net::any_io_executor executor,
                                                        TransportOptions options);

}  // namespace nvdra::k8s
