// nvdra-agent: the node agent. `kubelet-plugin` serves kubelet's DRA calls for gpu.nvidia.com
// and compute-domain.nvidia.com on this node and publishes the node's ResourceSlices.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>

#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdlib>
#include <future>
#include <iostream>
#include <sstream>
#include <thread>

#include "agent/agent.h"
#include "agent/imex/cd_daemon.h"
#include "base/atomic_file.h"
#include "base/log.h"
#include "cmd/common/process.h"
#include "k8sclient/config/config.h"
#include "metrics/server.h"

namespace po = boost::program_options;
using namespace nvdra;

namespace {

// Flags fall back to the environment variables NVIDIA's plugins read (NODE_NAME, …).
std::string env_or(const char* name, std::string def) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : def;
}

// The flags that choose and configure the device backend (kubelet-plugin and discover).
void add_device_flags(po::options_description& d) {
  d.add_options()("device-backend", po::value<std::string>()->default_value("nvml"), "nvml or sim")(
      "root", po::value<std::string>()->default_value(""),
      "prefix for every host path (kubelet folders, CDI root, /dev); for tests and the simulator")(
      "sim-node-config", po::value<std::string>()->default_value(""),
      "node description file for --device-backend sim")(
      "sim-root", po::value<std::string>()->default_value(""),
      "--device-backend sim: the simulated driver's folder; it gets real device nodes (DIR/dev), "
      "DIR/proc/devices and the MIG capabilities, and the CDI specs name them (needs CAP_MKNOD)")(
      "nvidia-driver-root",
      po::value<std::string>()->default_value(env_or("NVIDIA_DRIVER_ROOT", "/")),
      "where the NVIDIA driver (libnvidia-ml.so.1, nvidia-smi) is installed")(
      "feature-gates", po::value<std::string>()->default_value(env_or("FEATURE_GATES", "")),
      "Name=true|false,… (NVIDIA's gate names)")(
      "host-proc-root", po::value<std::string>()->default_value(env_or("HOST_PROC_ROOT", "/proc")),
      "the host's /proc, to see which processes hold a GPU before it is passed through");
}

// Fills the backend's options from add_device_flags' flags; a message when one is bad.
std::string read_device_flags(const po::variables_map& vm, agent::AgentOptions& o) {
  auto gates = agent::FeatureGates::parse(vm["feature-gates"].as<std::string>());
  if (!gates) return "--feature-gates: " + gates.error().message;
  o.gates = *gates;
  o.root = vm["root"].as<std::string>();
  o.device_backend = vm["device-backend"].as<std::string>();
  o.sim_node_config = vm["sim-node-config"].as<std::string>();
  o.sim_root = vm["sim-root"].as<std::string>();
  if (!o.sim_root.empty()) {
    if (o.device_backend != "sim") return "--sim-root needs --device-backend sim";
    if (o.sim_root.front() != '/') return "--sim-root must be an absolute path";
    // The agent's device and driver paths are the simulated driver's.
    o.dev_root = o.sim_root + "/dev";
    o.proc_root = o.sim_root + "/proc";
  }
  o.driver_root = vm["nvidia-driver-root"].as<std::string>();
  o.host_proc_root = vm["host-proc-root"].as<std::string>();
  return "";
}

int kubelet_plugin(int argc, char** argv) {
  po::options_description d("nvdra-agent kubelet-plugin options");
  d.add_options()("help,h", "show this help")(
      "kubeconfig", po::value<std::string>()->default_value(env_or("KUBECONFIG", "")),
      "kubeconfig file (default: in-cluster configuration)")(
      "node-name", po::value<std::string>()->default_value(env_or("NODE_NAME", "")),
      "this node's name (required; env NODE_NAME)")(
      "namespace", po::value<std::string>()->default_value(env_or("POD_NAMESPACE", "nvdra-system")),
      "the driver's namespace, where the controller's IMEX daemon claims are (env "
      "POD_NAMESPACE); a daemon claim elsewhere must be in its ComputeDomain's namespace")(
      "cdi-root", po::value<std::string>()->default_value(env_or("CDI_ROOT", "/var/run/cdi")),
      "where CDI claim specs are written")(
      "kubelet-registrar-directory-path",
      po::value<std::string>()->default_value("/var/lib/kubelet/plugins_registry"),
      "kubelet's plugin registration folder")(
      "kubelet-plugins-directory-path",
      po::value<std::string>()->default_value("/var/lib/kubelet/plugins"),
      "kubelet's plugin data folder")("additional-xids-to-ignore",
                                      po::value<std::string>()->default_value(""),
                                      "comma-separated XIDs that only get a None-effect taint")(
      "metrics-bind-address", po::value<std::string>()->default_value(""),
      "serve /metrics, /healthz and /readyz here (host:port; empty = off)")(
      "kube-api-qps", po::value<double>()->default_value(5), "API requests per second")(
      "kube-api-burst", po::value<int>()->default_value(10), "API request burst");
  add_device_flags(d);
  po::variables_map vm;
  if (auto rc = cmd::parse_flags(argc, argv, d, "nvdra-agent kubelet-plugin", vm)) return *rc;
  agent::AgentOptions o;
  o.node_name = vm["node-name"].as<std::string>();
  if (o.node_name.empty()) {
    std::cerr << "nvdra-agent kubelet-plugin: --node-name (or NODE_NAME) is required\n";
    return 2;
  }
  if (auto why = read_device_flags(vm, o); !why.empty()) {
    std::cerr << "nvdra-agent kubelet-plugin: " << why << "\n";
    return 2;
  }
  o.cdi_root = vm["cdi-root"].as<std::string>();
  o.driver_namespace = vm["namespace"].as<std::string>();
  o.registry_dir = vm["kubelet-registrar-directory-path"].as<std::string>();
  o.plugins_dir = vm["kubelet-plugins-directory-path"].as<std::string>();
  {
    std::stringstream xids(vm["additional-xids-to-ignore"].as<std::string>());
    for (std::string x; std::getline(xids, x, ',');) {
      try {
        if (!x.empty()) o.ignored_xids.insert(std::stoi(x));
      } catch (const std::exception&) {
        std::cerr << "nvdra-agent kubelet-plugin: --additional-xids-to-ignore: bad XID \"" << x
                  << "\"\n";
        return 2;
      }
    }
  }
  auto config = k8s::load_rest_config(vm["kubeconfig"].as<std::string>());
  if (!config) {
    std::cerr << "nvdra-agent kubelet-plugin: " << config.error().message << "\n";
    return 1;
  }
  config->qps = vm["kube-api-qps"].as<double>();
  config->burst = vm["kube-api-burst"].as<int>();
  config->user_agent = "nvdra-agent/" + o.node_name;
  NVDRA_INFO("nvdra-agent kubelet-plugin on node {}: backend {}, feature gates {}", o.node_name,
             o.device_backend, o.gates.to_string());

  net::io_context io;
  cmd::IoThreads threads(io, 2);
  auto client = k8s::RestClient::create(io.get_executor(), *config);
  if (!client) {
    std::cerr << "nvdra-agent kubelet-plugin: " << client.error().message << "\n";
    return 1;
  }
  metrics::Registry registry;
  metrics::HealthChecks health;
  agent::Agent a(io, *client, o, registry);
  health.add_readiness("kubelet-registration", [&a] {
    return a.registered() ? std::string() : std::string("not registered with kubelet");
  });
  // With --root (tests, the simulator) the address is left for scrapers to find (port 0).
  auto metrics_server =
      cmd::serve_metrics(io.get_executor(), vm["metrics-bind-address"].as<std::string>(), registry,
                         health, o.root.empty() ? "" : o.root + "/metrics-address");
  if (!metrics_server) {
    std::cerr << "nvdra-agent kubelet-plugin: " << metrics_server.error().message << "\n";
    threads.stop();
    return 1;
  }
  if (auto s = a.start(); !s) {
    NVDRA_ERROR("nvdra-agent kubelet-plugin: {}", s.error().message);
    std::cerr << "nvdra-agent kubelet-plugin: " << s.error().message << "\n";
    a.stop();
    threads.stop();
    return 1;
  }
  net::signal_set signals(io, SIGINT, SIGTERM);
  std::promise<int> stopped;
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (!ec) NVDRA_INFO("received signal {}, shutting down", sig);
    stopped.set_value(0);
  });
  const int rc = stopped.get_future().get();
  a.stop();
  if (*metrics_server) (*metrics_server)->stop();
  threads.stop();
  NVDRA_INFO("nvdra-agent stopped");
  return rc;
}

// discover: what this node's GPUs look like to the driver, read-only: the ResourceSlices the
// kubelet plugin would publish, as a List on stdout (no API server, no change to any GPU).
int discover(int argc, char** argv) {
  po::options_description d("nvdra-agent discover options");
  d.add_options()("help,h", "show this help")(
      "node-name", po::value<std::string>()->default_value(env_or("NODE_NAME", "")),
      "the node the slices name (default: env NODE_NAME, else the host name)")(
      "kubernetes-minor-version", po::value<int>()->default_value(35),
      "lay the slices out for this API server (1.N; from 35 counter sets get a slice of their "
      "own)");
  add_device_flags(d);
  po::variables_map vm;
  if (auto rc = cmd::parse_flags(argc, argv, d, "nvdra-agent discover", vm)) return *rc;
  agent::AgentOptions o;
  if (auto why = read_device_flags(vm, o); !why.empty()) {
    std::cerr << "nvdra-agent discover: " << why << "\n";
    return 2;
  }
  o.node_name = vm["node-name"].as<std::string>();
  if (o.node_name.empty()) {
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) == 0) o.node_name = host.data();
  }
  auto backend = agent::make_device_backend(o);
  if (!backend) {
    std::cerr << "nvdra-agent discover: " << backend.error().message << "\n";
    return 1;
  }
  auto devices = (*backend)->discover();
  if (!devices) {
    std::cerr << "nvdra-agent discover: discovering GPUs: " << devices.error().message << "\n";
    return 1;
  }
  api::SliceLayout layout = agent::device_layout(**backend, o.gates);
  layout.separate_counter_slice = vm["kubernetes-minor-version"].as<int>() >= 35;
  std::string items;
  for (const auto& slice : agent::node_resource_slices(o.node_name, *devices, layout))
    items += (items.empty() ? "" : ",") + slice;
  std::cout << R"({"apiVersion":"v1","kind":"List","items":[)" << items << "]}\n";
  std::cerr << fmt::format(
      "{} GPU(s), {} MIG device(s), driver {}, CUDA {}, clique \"{}\"\n", devices->gpus.size(),
      devices->mig_devices.size(), devices->driver_version,
      api::cuda_version_string(devices->cuda_driver_version), devices->clique_id());
  return 0;
}

// compute-domain-daemon [check]: the IMEX daemon's keeper in a ComputeDomain's DaemonSet pod.
int compute_domain_daemon(int argc, char** argv) {
  po::options_description d("nvdra-agent compute-domain-daemon options");
  d.add_options()("help,h", "show this help")(
      "kubeconfig", po::value<std::string>()->default_value(env_or("KUBECONFIG", "")),
      "kubeconfig file (default: in-cluster configuration)")(
      "compute-domain", po::value<std::string>()->default_value(env_or("COMPUTE_DOMAIN_UUID", "")),
      "the ComputeDomain's UID")("node-name",
                                 po::value<std::string>()->default_value(env_or("NODE_NAME", "")),
                                 "this node's name (env NODE_NAME)")(
      "pod-ip", po::value<std::string>()->default_value(env_or("POD_IP", "")),
      "the pod's IP, which IMEX binds (env POD_IP)")(
      "root", po::value<std::string>()->default_value(env_or("NVDRA_ROOT", "")),
      "prefix of the container paths /imexd and /etc/hosts (the simulator's containers)")(
      "imex-binary",
      po::value<std::string>()->default_value(env_or("NVDRA_IMEX_BINARY", "nvidia-imex")),
      "the IMEX daemon")(
      "imex-ctl-binary",
      po::value<std::string>()->default_value(env_or("NVDRA_IMEX_CTL_BINARY", "nvidia-imex-ctl")),
      "the IMEX control tool the probes query")(
      "command", po::value<std::string>()->default_value("run"), "run (default) or check");
  po::positional_options_description pos;
  pos.add("command", 1);
  po::variables_map vm;
  if (auto rc = cmd::parse_flags(argc, argv, d, "nvdra-agent compute-domain-daemon", vm, &pos))
    return *rc;
  agent::imex::DaemonOptions o;
  o.domain_uid = vm["compute-domain"].as<std::string>();
  o.domain_name = env_or("COMPUTE_DOMAIN_NAME", "");
  o.domain_namespace = env_or("COMPUTE_DOMAIN_NAMESPACE", "");
  o.node_name = vm["node-name"].as<std::string>();
  o.pod_ip = vm["pod-ip"].as<std::string>();
  o.clique_id = env_or("CLIQUE_ID", "");
  o.root = vm["root"].as<std::string>();
  o.imex_binary = vm["imex-binary"].as<std::string>();
  o.imex_ctl_binary = vm["imex-ctl-binary"].as<std::string>();
  try {
    o.max_nodes = std::stoi(env_or("MAX_NODES_PER_IMEX_DOMAIN", "18"));
  } catch (const std::exception&) {
    o.max_nodes = -1;
  }
  const std::string command = vm["command"].as<std::string>();
  if (command == "check") {
    agent::ProcessExecutor executor;
    bool ready = false;
    std::cout << agent::imex::check(o, executor, &ready) << "\n";
    return ready ? 0 : 1;
  }
  if (command != "run") {
    std::cerr << "nvdra-agent compute-domain-daemon: unknown command \"" << command << "\"\n";
    return 2;
  }
  // The CDI edits of the daemon claim must have reached this container (NVIDIA's check).
  const std::string injected = env_or("COMPUTE_DOMAIN_UUID", "");
  if (injected.empty() || injected != o.domain_uid) {
    const std::string why = injected.empty()
                                ? agent::imex::validate(agent::imex::DaemonOptions{})
                                : "--compute-domain " + o.domain_uid +
                                      " differs from the claim's COMPUTE_DOMAIN_UUID " + injected;
    std::cerr << "nvdra-agent compute-domain-daemon: " << why << "\n";
    return 1;
  }
  if (auto why = agent::imex::validate(o); !why.empty()) {
    std::cerr << "nvdra-agent compute-domain-daemon: " << why << "\n";
    return 2;
  }
  auto config = k8s::load_rest_config(vm["kubeconfig"].as<std::string>());
  if (!config) {
    std::cerr << "nvdra-agent compute-domain-daemon: " << config.error().message << "\n";
    return 1;
  }
  config->user_agent = "nvdra-compute-domain-daemon/" + o.node_name;
  NVDRA_INFO(
      "compute-domain daemon for ComputeDomain {} ({}/{}) on node {}, clique \"{}\", pod IP {}",
      o.domain_uid, o.domain_namespace, o.domain_name, o.node_name, o.clique_id, o.pod_ip);
  net::io_context io;
  auto client = k8s::RestClient::create(io.get_executor(), *config);
  if (!client) {
    std::cerr << "nvdra-agent compute-domain-daemon: " << client.error().message << "\n";
    return 1;
  }
  agent::imex::ComputeDomainDaemon daemon(*client, o);
  if (!o.clique_id.empty()) {
    if (auto s = daemon.write_config(); !s) {
      std::cerr << "nvdra-agent compute-domain-daemon: " << s.error().message << "\n";
      return 1;
    }
  }
  Cancellation cancel;
  net::co_spawn(io, daemon.run(&cancel), [&io](std::exception_ptr) { io.stop(); });
  net::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    NVDRA_INFO("received signal {}, stopping", sig);
    cancel.cancel();
  });
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // A tool that exits before reading its stdin must not take the agent down with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  const std::string usage =
      "usage: nvdra-agent kubelet-plugin --node-name NAME [--device-backend nvml|sim] [flags]\n"
      "       nvdra-agent compute-domain-daemon --compute-domain UID [--node-name NAME] [check]\n"
      "       nvdra-agent discover [--device-backend nvml|sim] [flags]\n"
      "       nvdra-agent kubelet-plugin --help\n";
  if (argc < 2) {
    std::cerr << usage;
    return 2;
  }
  const std::string sub = argv[1];
  if (sub == "kubelet-plugin") return kubelet_plugin(argc - 1, argv + 1);
  if (sub == "compute-domain-daemon") return compute_domain_daemon(argc - 1, argv + 1);
  if (sub == "discover") return discover(argc - 1, argv + 1);
  if (sub == "--help" || sub == "-h") {
    std::cout << usage;
    return 0;
  }
  std::cerr << "nvdra-agent: unknown command \"" << sub << "\"\n" << usage;
  return 2;
}
