// nvdra-controller: the ComputeDomain controller. With --leader-elect, replicas campaign for a
// Lease and only the holder reconciles; SIGTERM drains the work queue, then releases the Lease
// so a standby takes over at once. Losing the Lease without being asked to stop exits 1, as
// client-go controllers do: a fresh process starts from a clean cache.
#include <unistd.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_future.hpp>

#include <csignal>
#include <cstdlib>
#include <future>
#include <iostream>
#include <mutex>
#include <thread>

#include "base/atomic_file.h"
#include "base/json.h"
#include "base/log.h"
#include "base/random.h"
#include "cmd/common/process.h"
#include "controller/controller.h"
#include "k8sclient/cache/leader_election.h"
#include "k8sclient/config/config.h"
#include "metrics/server.h"

namespace po = boost::program_options;
using namespace nvdra;

namespace {

std::string env_or(const char* name, std::string def) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : def;
}

// Ends main's wait once, with the first exit code given.
class ExitLatch {
 public:
  void exit(int rc) {
    std::lock_guard lock(mu_);
    if (!set_) {
      set_ = true;
      p_.set_value(rc);
    }
  }
  int wait() { return f_.get(); }

 private:
  std::mutex mu_;
  bool set_ = false;
  std::promise<int> p_;
  std::future<int> f_ = p_.get_future();
};

// What the IMEX daemon pods take from this controller's own pod unless flags say otherwise: its
// image and its image pull secrets, so an install that changes them (a kustomize overlay, a Helm
// value) says it once.
struct OwnPod {
  std::string image;
  std::vector<std::string> pull_secrets;
};
awaitable<Result<OwnPod>> read_own_pod(std::shared_ptr<k8s::RestClient> client, std::string ns,
                                       std::string pod) {
  const k8s::ResourceRef ref{"", "v1", "pods", ns, pod};
  auto obj = co_await client->get(ref);
  if (!obj) co_return unexpected(obj.error().wrap(fmt::format("reading my pod {}/{}", ns, pod)));
  auto doc = (*obj)->doc();
  if (!doc) co_return unexpected(doc.error());
  const json::Value* containers = json::find_path(*doc, {"spec", "containers"});
  if (!containers || !containers->IsArray() || containers->GetArray().Empty())
    co_return unexpected(ErrorCode::kInvalidArgument, "my pod has no containers");
  OwnPod own;
  own.image = json::string_or(containers->GetArray()[0], "image");
  for (const auto& c : containers->GetArray())
    if (json::string_or(c, "name") == "controller") own.image = json::string_or(c, "image");
  if (const json::Value* secrets = json::find_path(*doc, {"spec", "imagePullSecrets"});
      secrets && secrets->IsArray())
    for (const auto& r : secrets->GetArray())
      if (r.IsObject() && !json::string_or(r, "name").empty())
        own.pull_secrets.emplace_back(json::string_or(r, "name"));
  co_return own;
}

// "a,b , c" -> {"a", "b", "c"}: NVIDIA's comma-separated flag values.
std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    const size_t comma = s.find(',');
    std::string_view item = s.substr(0, comma);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
  }
  return out;
}

awaitable<void> run_controller(controller::Controller* c, Cancellation* cancel,
                               std::promise<void>* finished) {
  co_await c->run(cancel);
  finished->set_value();
}

awaitable<void> campaign(k8s::LeaderElector* elector, Cancellation* cancel,
                         std::promise<void>* finished) {
  co_await elector->run(cancel);
  finished->set_value();
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  po::options_description d("nvdra-controller options");
  d.add_options()("help,h", "show this help")(
      "kubeconfig", po::value<std::string>()->default_value(env_or("KUBECONFIG", "")),
      "kubeconfig file (default: in-cluster configuration)")(
      "namespace", po::value<std::string>()->default_value(env_or("POD_NAMESPACE", "nvdra-system")),
      "the driver's namespace: IMEX DaemonSets, their claim templates and the Lease live here "
      "(env POD_NAMESPACE)")("leader-elect", po::bool_switch(),
                             "campaign for the Lease; only the holder reconciles")(
      "leader-elect-lease-duration", po::value<int>()->default_value(12),
      "seconds a standby waits after the last renewal before taking over")(
      "leader-elect-renew-deadline", po::value<int>()->default_value(8),
      "seconds the leader keeps trying to renew before it gives up")(
      "leader-elect-retry-period", po::value<int>()->default_value(2),
      "seconds between attempts to acquire or renew")(
      "leader-elect-resource-name", po::value<std::string>()->default_value("nvdra-controller"),
      "the Lease's name")("metrics-bind-address", po::value<std::string>()->default_value(""),
                          "serve /metrics, /healthz and /readyz here (host:port; empty = off)")(
      "metrics-address-file", po::value<std::string>()->default_value(""),
      "write the bound metrics address here (for port 0 in tests)")(
      "daemon-image",
      po::value<std::string>()->default_value(env_or("DAEMON_IMAGE", env_or("IMAGE_NAME", ""))),
      "image of the IMEX daemon pods (nvdra-agent compute-domain-daemon; env DAEMON_IMAGE or "
      "IMAGE_NAME; default: the controller's own image, read from its pod POD_NAMESPACE/POD_NAME, "
      "else nvdra:latest)")("daemon-service-account",
                            po::value<std::string>()->default_value("nvdra-compute-domain-daemon"),
                            "service account of the IMEX daemon pods")(
      "cd-daemon-image-pull-secret-names",
      po::value<std::string>()->default_value(env_or("CD_DAEMON_IMAGE_PULL_SECRET_NAMES", "")),
      "image pull secrets of the IMEX daemon pods, comma-separated (env "
      "CD_DAEMON_IMAGE_PULL_SECRET_NAMES; default: the controller pod's own)")(
      "workers", po::value<int>()->default_value(4), "ComputeDomains reconciled at once")(
      "kube-api-qps", po::value<double>()->default_value(20), "API requests per second")(
      "kube-api-burst", po::value<int>()->default_value(40), "API request burst");
  po::variables_map vm;
  if (auto rc = cmd::parse_flags(argc, argv, d, "nvdra-controller", vm)) return *rc;
  const int workers = vm["workers"].as<int>();
  if (workers < 1 || workers > 64) {
    std::cerr << "nvdra-controller: --workers must be between 1 and 64\n";
    return 2;
  }
  auto config = k8s::load_rest_config(vm["kubeconfig"].as<std::string>());
  if (!config) {
    std::cerr << "nvdra-controller: " << config.error().message << "\n";
    return 1;
  }
  config->qps = vm["kube-api-qps"].as<double>();
  config->burst = vm["kube-api-burst"].as<int>();
  config->user_agent = "nvdra-controller";

  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  // <pod>-<uuid>, NVIDIA's form: unique across restarts of the same pod.
  const std::string identity = env_or("POD_NAME", host) + "-" + random_uuid();
  controller::ControllerOptions o;
  o.daemon.ns = vm["namespace"].as<std::string>();
  o.daemon.image = vm["daemon-image"].as<std::string>();
  o.daemon.service_account = vm["daemon-service-account"].as<std::string>();
  o.daemon.verbosity = vm.count("v") ? vm["v"].as<int>() : 0;
  o.workers = workers;
  o.identity = identity;

  net::io_context io;
  cmd::IoThreads threads(io, 2);
  auto client = k8s::RestClient::create(io.get_executor(), *config);
  if (!client) {
    std::cerr << "nvdra-controller: " << client.error().message << "\n";
    return 1;
  }
  o.daemon.pull_secrets = split_list(vm["cd-daemon-image-pull-secret-names"].as<std::string>());
  const std::string pod = env_or("POD_NAME", ""), pod_ns = env_or("POD_NAMESPACE", "");
  if ((o.daemon.image.empty() || o.daemon.pull_secrets.empty()) && !pod.empty() &&
      !pod_ns.empty()) {
    auto own = net::co_spawn(io, read_own_pod(*client, pod_ns, pod), net::use_future).get();
    if (own) {
      if (o.daemon.image.empty()) o.daemon.image = own->image;
      if (o.daemon.pull_secrets.empty()) o.daemon.pull_secrets = own->pull_secrets;
    } else {
      NVDRA_WARN("IMEX daemon pods: {}", own.error().message);
    }
  }
  if (o.daemon.image.empty()) o.daemon.image = "nvdra:latest";
  NVDRA_INFO("IMEX daemon pods run {} (image pull secrets: {})", o.daemon.image,
             o.daemon.pull_secrets.empty()
                 ? "none"
                 : fmt::format("{}", fmt::join(o.daemon.pull_secrets, ",")));
  metrics::Registry registry;
  metrics::HealthChecks health;
  controller::Controller ctl(*client, o, registry);
  std::atomic<bool> leading{!vm["leader-elect"].as<bool>()};
  health.add_readiness("informers", [&] {
    return !leading || ctl.synced() ? std::string() : std::string("caches not synced");
  });
  auto metrics_server =
      cmd::serve_metrics(io.get_executor(), vm["metrics-bind-address"].as<std::string>(), registry,
                         health, vm["metrics-address-file"].as<std::string>());
  if (!metrics_server) {
    std::cerr << "nvdra-controller: " << metrics_server.error().message << "\n";
    threads.stop();
    return 1;
  }

  ExitLatch exit;
  Cancellation ctl_cancel, elect_cancel;
  std::promise<void> ctl_done, elect_done;
  std::atomic<bool> ctl_started{false}, stopping{false};
  auto start_controller = [&] {
    if (ctl_started.exchange(true)) return;
    net::co_spawn(io, run_controller(&ctl, &ctl_cancel, &ctl_done), net::detached);
  };
  std::unique_ptr<k8s::RestLeaseLock> lock;
  std::unique_ptr<k8s::LeaderElector> elector;
  if (vm["leader-elect"].as<bool>()) {
    lock = std::make_unique<k8s::RestLeaseLock>(*client, o.daemon.ns,
                                                vm["leader-elect-resource-name"].as<std::string>());
    k8s::LeaderElectionConfig lc;
    lc.identity = identity;
    lc.lease_duration = std::chrono::seconds(vm["leader-elect-lease-duration"].as<int>());
    lc.renew_deadline = std::chrono::seconds(vm["leader-elect-renew-deadline"].as<int>());
    lc.retry_period = std::chrono::seconds(vm["leader-elect-retry-period"].as<int>());
    k8s::LeaderCallbacks cb;
    cb.on_started_leading = [&] {
      leading = true;
      start_controller();
    };
    cb.on_stopped_leading = [&] {
      leading = false;
      if (!stopping) {
        NVDRA_ERROR("leader election lost; exiting");
        exit.exit(1);
      }
    };
    cb.on_new_leader = [&](const std::string& holder) {
      if (holder != identity) NVDRA_INFO("the leader is {}", holder);
    };
    auto e = k8s::LeaderElector::create(*lock, lc, cb);
    if (!e) {
      std::cerr << "nvdra-controller: leader election: " << e.error().message << "\n";
      threads.stop();
      return 2;
    }
    elector = std::move(*e);
    NVDRA_INFO("nvdra-controller {} campaigning for Lease {}/{}", identity, o.daemon.ns,
               vm["leader-elect-resource-name"].as<std::string>());
    net::co_spawn(io, campaign(elector.get(), &elect_cancel, &elect_done), net::detached);
  } else {
    NVDRA_INFO("nvdra-controller {} starting without leader election", identity);
    elect_done.set_value();
    start_controller();
  }

  net::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    NVDRA_INFO("received signal {}, shutting down", sig);
    exit.exit(0);
  });
  const int rc = exit.wait();
  stopping = true;
  // Drain the reconciles in flight, then hand the Lease over.
  ctl_cancel.cancel();
  if (ctl_started) ctl_done.get_future().wait_for(std::chrono::seconds(20));
  elect_cancel.cancel();
  elect_done.get_future().wait_for(std::chrono::seconds(10));
  signals.cancel();
  if (*metrics_server) (*metrics_server)->stop();
  threads.stop();
  NVDRA_INFO("nvdra-controller stopped");
  return rc;
}
