// The one HTTP endpoint of a process: /metrics (Prometheus text format), /healthz and /readyz.
#pragma once

#include <memory>
#include <string>

#include "base/asio.h"
#include "base/result.h"
#include "metrics/registry.h"
#include "net/http_server.h"

namespace nvdra::metrics {

class Server {
 public:
  // bind_address: "host:port" as in --metrics-bind-address (":8080" = all interfaces).
  Server(net::any_io_executor executor, std::string bind_address, const Registry& registry,
         const HealthChecks& health);
  Result<uint16_t> start();
  void stop();

 private:
  awaitable<void> handle(const httpd::Request& req, httpd::ResponseWriter& w);
  net::any_io_executor executor_;
  std::string bind_address_;
  const Registry& registry_;
  const HealthChecks& health_;
  std::unique_ptr<httpd::HttpServer> server_;
};

}  // namespace nvdra::metrics
