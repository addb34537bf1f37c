// nvdra-sim: a local Kubernetes cluster for nvdra, with no GPU and no container runtime.
//
//   nvdra-sim serve [--port N] [--address A] [--kubeconfig-out FILE] [--data-dir DIR]
//   nvdra-sim up --topology FILE [--no-agents] [same flags as serve]
//
// `serve` is the API server alone; `up` adds the control plane (resourceclaim controller,
// scheduler, workload controllers) and one simulated kubelet per topology node. Both print the
// kubeconfig path on their first line of output and run until SIGINT/SIGTERM.
#include <sys/stat.h>
#include <unistd.h>  // geteuid

#include <boost/program_options.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "base/base64.h"
#include "base/log.h"
#include "base/random.h"
#include "cmd/common/private_files.h"
#include "cmd/common/process.h"
#include "net/http_server.h"
#include "net/pki.h"
#include "sim/api_server.h"
#include "sim/cluster/agents.h"
#include "sim/cluster/claim_controller.h"
#include "sim/cluster/cluster.h"
#include "sim/cluster/kubelet.h"
#include "sim/cluster/scheduler.h"
#include "sim/cluster/topology.h"
#include "sim/cluster/workloads.h"

namespace po = boost::program_options;
using namespace nvdra;

namespace {

std::string kubeconfig(const std::string& server, const std::string& ca_pem,
                       const std::string& token, const std::string& user = "admin") {
  return "apiVersion: v1\nkind: Config\ncurrent-context: nvdra-sim\nclusters:\n- name: nvdra-sim\n"
         "  cluster:\n    server: " +
         server + "\n    certificate-authority-data: " + base64_encode(ca_pem) +
         "\nusers:\n- name: " + user + "\n  user:\n    token: " + token +
         "\ncontexts:\n- name: nvdra-sim\n  context:\n    cluster: nvdra-sim\n    user: " + user +
         "\n    namespace: default\n";
}

// Kubeconfigs of service accounts, written once each below `dir` (0700, files 0600): what the
// simulated kubelets give nvdra's containers, and the agents with --agent-service-account.
sim::cluster::KubeconfigFor service_account_kubeconfigs(std::string dir, std::string server,
                                                        std::string ca_pem,
                                                        const sim::ApiServer& api) {
  struct Written {
    std::mutex mu;
    std::set<std::string> paths;
  };
  auto written = std::make_shared<Written>();
  return [=, &api](const std::string& ns, const std::string& name) {
    const std::string path = dir + "/" + ns + "." + name + ".kubeconfig";
    std::lock_guard lock(written->mu);
    if (written->paths.insert(path).second) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(dir).parent_path(), ec);
      if (auto st = private_dir(dir); !st) NVDRA_ERROR("nvdra-sim: {}", st.error().message);
      if (!write_private(path, kubeconfig(server, ca_pem, api.service_account_token(ns, name),
                                          "system:serviceaccount:" + ns + ":" + name))) {
        NVDRA_ERROR("nvdra-sim: cannot write {}", path);
      }
    }
    return path;
  };
}

std::string read_or_empty(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The CA, the admin token and the service-account token secret: kept in --data-dir so that
// clients keep working across restarts, made fresh otherwise.
struct Identity {
  pki::KeyPair ca;
  std::string admin_token;
  std::string token_secret;
};

Result<Identity> identity(const std::string& data_dir) {
  if (!data_dir.empty()) {
    Identity id{{read_or_empty(data_dir + "/ca.crt"), read_or_empty(data_dir + "/ca.key")},
                read_or_empty(data_dir + "/admin.token"),
                read_or_empty(data_dir + "/sa-token.secret")};
    if (!id.ca.cert_pem.empty() && !id.ca.key_pem.empty() && !id.admin_token.empty() &&
        !id.token_secret.empty()) {
      return id;
    }
  }
  auto ca = pki::make_ca("nvdra-sim-ca");
  if (!ca) return unexpected(ca.error());
  Identity id{std::move(*ca), random_secret(), random_secret()};
  if (!data_dir.empty()) {
    if (!write_private(data_dir + "/ca.crt", id.ca.cert_pem) ||
        !write_private(data_dir + "/ca.key", id.ca.key_pem) ||
        !write_private(data_dir + "/admin.token", id.admin_token) ||
        !write_private(data_dir + "/sa-token.secret", id.token_secret)) {
      return unexpected(ErrorCode::kIo, "cannot write the CA and tokens into " + data_dir);
    }
  }
  return id;
}

int run(const po::variables_map& vm, const std::optional<sim::cluster::Topology>& topology) {
  const std::string address = vm["address"].as<std::string>();
  const std::string data_dir = vm["data-dir"].as<std::string>();
  net::io_context io(1);
  sim::ResourceRegistry registry;
  const int history_mib = vm["watch-history-mib"].as<int>();
  if (history_mib < 1) {
    std::cerr << "nvdra-sim: --watch-history-mib must be at least 1\n";
    return 2;
  }
  sim::Store store(SystemClock::instance(), 100'000, static_cast<size_t>(history_mib) << 20);
  if (!data_dir.empty()) {
    if (auto s = store.open_data_dir(data_dir); !s) {
      std::cerr << "nvdra-sim: --data-dir " << data_dir << ": " << s.error().message << "\n";
      return 1;
    }
  }
  auto id = identity(data_dir);
  if (!id) {
    std::cerr << "nvdra-sim: " << id.error().message << "\n";
    return 1;
  }
  const pki::KeyPair* ca = &id->ca;
  const std::string token = id->admin_token;
  pki::CertRequest req;
  req.common_name = "nvdra-sim";
  req.dns_names = {"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"};
  req.ip_addresses = {"127.0.0.1"};
  if (address != "127.0.0.1" && address != "0.0.0.0" && address != "localhost") {
    req.ip_addresses.push_back(address);
  }
  auto serving = pki::issue(*ca, req);
  if (!serving) {
    std::cerr << "nvdra-sim: " << serving.error().message << "\n";
    return 1;
  }
  // The system namespaces (already there after a restart with --data-dir).
  for (const char* ns : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
    auto doc = json::parse(
        std::string(R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":")") + ns + "\"}}");
    (void)store.create(*registry.find("", "v1", "namespaces"), "", std::move(*doc));
  }
  sim::ApiServer api(store, registry,
                     sim::ApiServerOptions{.admin_token = token, .token_secret = id->token_secret});
  api.serve_stored_crds();
  std::string faults = fmt::format(
      R"({{"watchCloseSeconds":{},"errorRate":{},"errorCode":{},"latencyMs":{},"clientQPS":{}}})",
      vm["fault-watch-close-seconds"].as<double>(), vm["fault-error-rate"].as<double>(),
      vm["fault-error-code"].as<int>(), vm["fault-latency-ms"].as<int>(),
      vm["fault-client-qps"].as<double>());
  auto parsed = sim::parse_faults(faults, sim::Faults{});
  if (!parsed) {
    std::cerr << "nvdra-sim: " << parsed.error().message << "\n";
    return 2;
  }
  api.set_faults(*parsed);
  httpd::ServerOptions sopt;
  sopt.address = address;
  sopt.port = static_cast<uint16_t>(vm["port"].as<int>());
  sopt.tls = httpd::TlsServerConfig{serving->cert_pem, serving->key_pem, ""};
  sopt.screen = [&api](const httpd::Request& head) { return api.screen(head); };
  httpd::HttpServer server(
      io.get_executor(), sopt,
      [&api](const httpd::Request& r, httpd::ResponseWriter& w) { return api.handle(r, w); });
  auto port = server.start();
  if (!port) {
    std::cerr << "nvdra-sim: " << port.error().message << "\n";
    return 1;
  }
  std::string host = address == "0.0.0.0" ? "127.0.0.1" : address;
  std::string url = "https://" + host + ":" + std::to_string(*port);
  std::string kc_path = vm["kubeconfig-out"].as<std::string>();
  if (kc_path.empty()) {
    const std::string dir =
        (std::filesystem::temp_directory_path() / ("nvdra-sim-" + std::to_string(::geteuid())))
            .string();
    if (auto st = private_dir(dir); !st) {
      std::cerr << "nvdra-sim: " << st.error().message << "\n";
      return 1;
    }
    kc_path = dir + "/nvdra-sim-" + std::to_string(*port) + ".kubeconfig";
  }
  if (!write_private(kc_path, kubeconfig(url, ca->cert_pem, token))) {
    std::cerr << "nvdra-sim: cannot write " << kc_path << "\n";
    return 1;
  }
  std::cout << kc_path << std::endl;
  std::unique_ptr<sim::cluster::Cluster> cluster;
  std::unique_ptr<sim::cluster::AgentSupervisor> agents;
  Cancellation stop_cluster;
  if (topology) {
    const bool no_agents = vm.count("no-agents") > 0;
    std::string root = vm["root"].as<std::string>();
    if (root.empty())
      root = data_dir.empty()
                 ? (std::filesystem::temp_directory_path() / ("nvdra-sim-" + std::to_string(*port)))
                       .string()
                 : data_dir + "/nodes";
    std::string agents_binary;
    auto kubeconfig_for =
        service_account_kubeconfigs(root + "/.kubeconfigs", url, ca->cert_pem, api);
    if (!no_agents) {
      std::string binary = vm["agent-binary"].as<std::string>();
      if (binary.empty())
        binary = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "nvdra-agent")
                     .string();
      agents_binary = binary;
      // The agents run as the service account the manifests bind (until those are applied
      // their requests are refused and they retry), or as admin.
      std::string agent_kc = kc_path;
      if (const auto sa = vm["agent-service-account"].as<std::string>(); !sa.empty()) {
        const size_t slash = sa.find('/');
        agent_kc = kubeconfig_for(sa.substr(0, slash), sa.substr(slash + 1));
      }
      agents = std::make_unique<sim::cluster::AgentSupervisor>(
          sim::cluster::AgentOptions{binary, agent_kc, root}, *topology);
      if (auto st = agents->start(); !st) {
        std::cerr << "nvdra-sim up: " << st.error().message
                  << "; build it, point --agent-binary at it, or run with --no-agents\n";
        return 1;
      }
    }
    store.set_graceful_pod_deletion(true);
    cluster = std::make_unique<sim::cluster::Cluster>(store, registry);
    cluster->add(std::make_unique<sim::cluster::ClaimController>(*cluster));
    cluster->add(std::make_unique<sim::cluster::Scheduler>(*cluster));
    cluster->add(std::make_unique<sim::cluster::ReplicaSetController>(*cluster));
    cluster->add(std::make_unique<sim::cluster::DeploymentController>(*cluster));
    cluster->add(std::make_unique<sim::cluster::JobController>(*cluster));
    cluster->add(std::make_unique<sim::cluster::DaemonSetController>(*cluster));
    cluster->add(std::make_unique<sim::cluster::MpiJobController>(*cluster));
    sim::cluster::KubeletOptions kopts;
    kopts.publish_slices = no_agents || vm.count("sim-slices") > 0;
    if (!no_agents) {
      kopts.root = root;
      // nvdra's own containers (the IMEX daemons) run for real from the agent's folder.
      kopts.bin_dir = std::filesystem::path(agents_binary).parent_path().string();
      kopts.kubeconfig_for = kubeconfig_for;
    }
    cluster->add(std::make_unique<sim::cluster::PodGarbageCollector>(*cluster));
    auto kubelets = std::make_unique<sim::cluster::Kubelets>(*cluster, *topology, kopts);
    api.set_machine_remover([k = kubelets.get(), a = agents.get()](const std::string& node) {
      if (!k->remove_machine(node)) return false;
      if (a) a->remove(node);
      return true;
    });
    cluster->add(std::move(kubelets));
    net::co_spawn(io, cluster->run(stop_cluster, std::chrono::milliseconds(500)), net::detached);
    std::cout << "nvdra-sim cluster \"" << topology->name << "\": " << topology->nodes.size()
              << " nodes on " << url << "\n";
  } else {
    std::cout << "nvdra-sim API server on " << url << "\n";
  }
  std::cout << "  export KUBECONFIG=" << kc_path << "\n  kubectl get "
            << (topology ? "nodes" : "namespaces") << std::endl;
  NVDRA_INFO("serving on {}", url);
  // The agents stop while the API server still answers (it runs on this thread): an agent that
  // finishes a request on SIGTERM (a prepare reading its claim) must not wait for a server that
  // waits for it — it would be killed after 5 s instead.
  std::thread stopper;
  cmd::run_until_signal(io, [&] {
    stopper = std::thread([&] {
      if (agents) agents->stop();
      net::post(io, [&] {
        stop_cluster.cancel();
        server.stop();
        io.stop();
      });
    });
  });
  if (stopper.joinable()) stopper.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description d("nvdra-sim options");
  d.add_options()("help,h", "show this help")("port", po::value<int>()->default_value(0),
                                              "port to listen on (0 = any free port)")(
      "address", po::value<std::string>()->default_value("127.0.0.1"), "address to listen on")(
      "kubeconfig-out", po::value<std::string>()->default_value(""),
      "where to write the kubeconfig (default: a file in a private folder of the temp directory)")(
      "data-dir", po::value<std::string>()->default_value(""),
      "keep objects here across restarts (write-ahead log + snapshot, fsync'd)")(
      "watch-history-mib", po::value<int>()->default_value(64),
      "memory for the watch history (objects of recent changes); older resumes get 410")(
      "fault-watch-close-seconds", po::value<double>()->default_value(0),
      "drop every watch connection after this many seconds (0 = never)")(
      "fault-error-rate", po::value<double>()->default_value(0),
      "share of requests (0..1) answered with --fault-error-code")(
      "fault-error-code", po::value<int>()->default_value(500),
      "429 (with Retry-After), 500 or 503")("fault-latency-ms", po::value<int>()->default_value(0),
                                            "latency added to every request")(
      "fault-client-qps", po::value<double>()->default_value(0),
      "per-client request rate beyond which requests get 429, as API Priority and Fairness would")(
      "topology", po::value<std::string>()->default_value(""),
      "up: the cluster's topology file (see examples/topologies/)")(
      "no-agents",
      "up: publish the nodes' devices from the simulator and prepare nothing, "
      "instead of running an nvdra-agent per node")(
      "sim-slices",
      "up: the simulator publishes the nodes' ResourceSlices even though agents run "
      "(for stand-in agents that only prepare)")(
      "agent-binary", po::value<std::string>()->default_value(""),
      "up: the node agent to run per node (default: nvdra-agent next to nvdra-sim)")(
      "agent-service-account", po::value<std::string>()->default_value(""),
      "up: NAMESPACE/NAME of the service account the agents run as (default: admin)")(
      "root", po::value<std::string>()->default_value(""),
      "up: folder of the simulated nodes; node N's files are under ROOT/N (default: "
      "DATA-DIR/nodes, "
      "else a folder in the temp directory)");
  cmd::add_logging_flags(d);
  const std::string verb = argc >= 2 ? argv[1] : "";
  if (verb != "serve" && verb != "up") {
    std::cerr
        << "usage: nvdra-sim serve [options]\n       nvdra-sim up --topology FILE [options]\n\n"
        << d;
    return 2;
  }
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc - 1, argv + 1, d), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "nvdra-sim: " << e.what() << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << d;
    return 0;
  }
  if (!cmd::init_logging(vm)) return 2;
  std::optional<sim::cluster::Topology> topology;
  if (verb == "up") {
    const std::string file = vm["topology"].as<std::string>();
    if (file.empty()) {
      std::cerr << "nvdra-sim up: --topology FILE is required (see examples/topologies/)\n";
      return 2;
    }
    auto t = sim::cluster::load_topology(file);
    if (!t) {
      std::cerr << "nvdra-sim up: " << t.error().message << "\n";
      return 2;
    }
    topology = std::move(*t);
    const std::string sa = vm["agent-service-account"].as<std::string>();
    if (!sa.empty() && (sa.find('/') == std::string::npos || sa.front() == '/' ||
                        sa.back() == '/' || sa.find('/') != sa.rfind('/'))) {
      std::cerr << "nvdra-sim up: --agent-service-account must be NAMESPACE/NAME, not \"" << sa
                << "\"\n";
      return 2;
    }
  } else if (vm.count("no-agents") || vm.count("sim-slices") ||
             !vm["topology"].as<std::string>().empty() ||
             !vm["agent-binary"].as<std::string>().empty() ||
             !vm["agent-service-account"].as<std::string>().empty() ||
             !vm["root"].as<std::string>().empty()) {
    std::cerr << "nvdra-sim serve: --topology, --no-agents, --sim-slices, --agent-binary, "
                 "--agent-service-account and --root belong to `nvdra-sim up`\n";
    return 2;
  }
  return run(vm, topology);
}
