// The HTTP face of nvdra-sim's API server: authentication, discovery, and the REST verbs of
// every registered resource (list, get, watch, create, update, patch, delete, deletecollection,
// and the status subresource) over the Store, answering with the Status errors kube-apiserver
// gives for the same mistakes.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "base/asio.h"
#include "net/http_server.h"
#include "sim/resource_types.h"
#include "sim/store.h"

namespace nvdra::sim {

struct ApiServerOptions {
  std::string admin_token;  // bearer token that may do anything
  std::chrono::milliseconds bookmark_interval{std::chrono::seconds(60)};
  std::string version = "v1.34.0-nvdra-sim";
};

class ApiServer {
 public:
  ApiServer(Store& store, ResourceRegistry& registry, ApiServerOptions options);
  awaitable<void> handle(const httpd::Request& req, httpd::ResponseWriter& w);

  // Serves the kinds of every stored CRD (after loading a --data-dir).
  void serve_stored_crds();

  // Fault injection: the next `n` watches that resume from a resourceVersion get 410 Expired.
  void force_gone_on_resume(int n) { force_gone_ += n; }

  struct Reply {
    int status = 200;
    Headers headers;
    std::string body;
  };
  struct Route {
    std::shared_ptr<const ResourceType> type;
    std::string ns, name, subresource;
  };

 private:
  Reply serve(const httpd::Request& req, const Route& route);
  Reply discovery(const httpd::Request& req, bool* handled);
  awaitable<void> watch(const httpd::Request& req, const Route& route, httpd::ResponseWriter& w);
  void after_write(const ResourceType& t, const std::string& body, bool deleted);

  Store& store_;
  ResourceRegistry& registry_;
  ApiServerOptions opt_;
  std::atomic<int> force_gone_{0};
};

// Status JSON for an error (with details and causes).
std::string status_body(const Error& e);

}  // namespace nvdra::sim
