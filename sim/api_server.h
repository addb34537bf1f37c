// The HTTP face of nvdra-sim's API server: authentication, discovery, and the REST verbs of
// every registered resource (list, get, watch, create, update, patch, delete, deletecollection,
// and the status subresource) over the Store, answering with the Status errors kube-apiserver
// gives for the same mistakes.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>

#include <memory>
#include <string>
#include "base/token_bucket.h"

#include "base/asio.h"
#include "net/http_server.h"
#include "sim/auth.h"
#include "sim/resource_types.h"
#include "sim/store.h"

namespace nvdra::sim {

// Faults for resilience tests, set by flags at start and changed at run time through
// PUT /nvdra-sim/faults (admin token). Zero values mean "off".
struct Faults {
  double watch_close_seconds = 0;  // every watch stream is cut (connection dropped) after this long
  double error_rate = 0;           // share of non-watch requests answered with error_code
  int error_code = 500;            // 429 (with Retry-After) or 500
  int latency_ms = 0;              // added before every request
  double client_qps = 0;           // per-client cap, as API Priority and Fairness would: 429 beyond
  int gone_on_resume = 0;          // the next N watch resumes get 410 Expired
  // Errors and 429s spare the admin (the operator's kubectl driving a test), so that only the
  // components under test see them.
  bool spare_admin = false;
  // Read-only: requests answered with an injected error or 429 since the server started.
  int64_t injected = 0;
};
Result<Faults> parse_faults(std::string_view json, const Faults& base);
std::string faults_json(const Faults& f);

struct ApiServerOptions {
  std::string admin_token;  // bearer token that may do anything
  std::chrono::milliseconds bookmark_interval{std::chrono::seconds(60)};
  std::string version = "v1.34.0-nvdra-sim";
  std::string token_secret;  // signs service-account tokens; empty = random per start
  // The largest object a patch may produce, in serialized bytes (what the HTTP server lets a
  // request carry); also what JSON patch `copy` operations may duplicate in all.
  size_t max_object_bytes = 3u << 20;
  // How long a watch from a resourceVersion the server has not reached waits for it before the
  // 504 "Too large resource version" (kube-apiserver's watch cache waits 3 s).
  std::chrono::milliseconds future_rv_wait{3000};
};

class ApiServer {
 public:
  ApiServer(Store& store, ResourceRegistry& registry, ApiServerOptions options);
  awaitable<void> handle(const httpd::Request& req, httpd::ResponseWriter& w);
  // For ServerOptions::screen: a request that will not authenticate gets its 401 before its body
  // is read (health checks pass).
  std::optional<httpd::EarlyAnswer> screen(const httpd::Request& head) const;

  // The token a kubelet would mount into a pod running as this service account.
  std::string service_account_token(const std::string& ns, const std::string& name) const {
    return authn_.service_account_token(ns, name);
  }

  // What DELETE /nvdra-sim/machines/<node> calls (admin only): the node's machine goes away.
  // Returns false for an unknown node. Runs on the server's executor.
  void set_machine_remover(std::function<bool(const std::string& node)> f) {
    remove_machine_ = std::move(f);
  }

  // Serves the kinds of every stored CRD (after loading a --data-dir).
  void serve_stored_crds();

  // Fault injection: the next `n` watches that resume from a resourceVersion get 410 Expired.
  void force_gone_on_resume(int n) { force_gone_ += n; }
  void set_faults(const Faults& f);
  Faults faults() const;

  struct Reply {
    int status = 200;
    Headers headers;
    std::string body;
  };
  struct Route {
    std::shared_ptr<const ResourceType> type;     // the version the client asked for
    std::shared_ptr<const ResourceType> storage;  // the version objects are stored as
    std::string ns, name, subresource;
  };

 private:
  Reply serve(const httpd::Request& req, const Route& route, const UserInfo& user);
  // Store::modify of the route's object, with RBAC's escalation check for roles and bindings.
  Result<std::string> modify_checked(const UserInfo& user, const ResourceType& t, const Route& r,
                                     bool status, bool dry_run, bool create,
                                     const Store::Mutator& mutate);
  // kubectl auth can-i: may the caller do what the review describes?
  Reply self_subject_access_review(const httpd::Request& req, const UserInfo& user);
  Reply binding(const httpd::Request& req, const Route& route);
  Reply discovery(const httpd::Request& req, bool* handled);
  awaitable<void> watch(const httpd::Request& req, const Route& route, httpd::ResponseWriter& w);
  void after_write(const ResourceType& t, const std::string& body, bool deleted);
  // Storage-version JSON as the client's version (resource.k8s.io conversion), and back.
  static std::string present(const ResourceType& view, std::string stored);
  static void to_storage(const ResourceType& view, json::Document& doc);

  Store& store_;
  ResourceRegistry& registry_;
  // A request answered by the fault injector instead of the API (nullopt = serve it).
  std::optional<Reply> injected_fault(const httpd::Request& req, bool admin);

  ApiServerOptions opt_;
  Authenticator authn_;
  Authorizer authz_;
  std::function<bool(const std::string&)> remove_machine_;
  std::atomic<int> force_gone_{0};
  mutable std::mutex faults_mu_;
  Faults faults_;                                                   // guarded by faults_mu_
  std::map<std::string, std::unique_ptr<TokenBucket>> client_qps_;  // guarded by faults_mu_
  std::minstd_rand rng_{12345};                                     // guarded by faults_mu_
  int64_t injected_ = 0;                                            // guarded by faults_mu_
};

// Status JSON for an error (with details and causes).
std::string status_body(const Error& e);

}  // namespace nvdra::sim
