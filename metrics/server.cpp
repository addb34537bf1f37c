#include "metrics/server.h"

namespace nvdra::metrics {

Server::Server(net::any_io_executor executor, std::string bind_address, const Registry& registry,
               const HealthChecks& health)
    : executor_(std::move(executor)),
      bind_address_(std::move(bind_address)),
      registry_(registry),
      health_(health) {}

Result<uint16_t> Server::start() {
  httpd::ServerOptions opt;
  if (!httpd::parse_bind_address(bind_address_, &opt.address, &opt.port)) {
    return unexpected(ErrorCode::kInvalidArgument,
                      "invalid metrics bind address \"" + bind_address_ + "\" (want host:port)");
  }
  server_ = std::make_unique<httpd::HttpServer>(
      executor_, opt,
      [this](const httpd::Request& req, httpd::ResponseWriter& w) { return handle(req, w); });
  return server_->start();
}

void Server::stop() {
  if (server_) server_->stop();
}

namespace {
struct Reply {
  int status;
  Headers headers;
  std::string body;
};

Reply text_reply(int status, std::string body) {
  return Reply{status, {{"Content-Type", "text/plain; charset=utf-8"}}, std::move(body)};
}

// Plain function: g++ 12 miscompiles string literals in braced initializers inside coroutines.
Reply route(const httpd::Request& req, const Registry& registry, const HealthChecks& health) {
  if (req.method != "GET" && req.method != "HEAD") {
    Reply r = text_reply(405, "method not allowed\n");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  if (req.path == "/metrics") {
    return Reply{
        200, {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}}, registry.serialize()};
  }
  if (req.path == "/healthz" || req.path == "/livez" || req.path == "/readyz") {
    auto report = req.path == "/readyz" ? health.readiness() : health.liveness();
    const bool verbose = req.query_param("verbose").has_value();
    return text_reply(report.ok ? 200 : 503, verbose || !report.ok ? report.text : "ok\n");
  }
  return text_reply(404, "not found\n");
}
}  // namespace

awaitable<void> Server::handle(const httpd::Request& req, httpd::ResponseWriter& w) {
  Reply r = route(req, registry_, health_);
  co_await w.respond(r.status, std::move(r.headers), std::move(r.body));
}

}  // namespace nvdra::metrics
