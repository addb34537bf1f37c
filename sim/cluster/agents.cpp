#include "sim/cluster/agents.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "base/child_process.h"
#include "base/log.h"

namespace nvdra::sim::cluster {

std::string agent_node_description(const NodeSpec& node) {
  std::string out =
      fmt::format("# Written by nvdra-sim up: the devices of simulated node {}.\nnodeName: {}\n",
                  node.name, node.name);
  if (node.gpu) {
    out += fmt::format("gpu: {}\ngpus: {}\nmig: {}\n", node.gpu->id, node.gpus,
                       node.dynamic_mig ? "dynamic" : "none");
  } else {
    out += "gpus: 0\n";
  }
  if (!node.clique_id.empty()) out += fmt::format("cliqueID: \"{}\"\n", node.clique_id);
  return out;
}

AgentSupervisor::AgentSupervisor(AgentOptions options, const Topology& topology)
    : options_(std::move(options)), nodes_(topology.nodes) {}

AgentSupervisor::~AgentSupervisor() {
  stop();
}

Status AgentSupervisor::start() {
  if (::access(options_.binary.c_str(), X_OK) != 0)
    return unexpected(ErrorCode::kNotFound,
                      fmt::format("the node agent {} is not an executable file", options_.binary));
  for (const auto& n : nodes_) {
    const std::string dir = options_.root + "/" + n.name;
    // The longest socket a node's agent binds (unix socket paths hold at most 107 bytes).
    const std::string socket =
        dir + "/var/lib/kubelet/plugins_registry/compute-domain.nvidia.com-reg.sock";
    if (socket.size() > 107)
      return unexpected(
          ErrorCode::kInvalidArgument,
          fmt::format("--root {} is too long: the agents' unix sockets (e.g. {}) would "
                      "exceed 107 bytes; use a shorter folder",
                      options_.root, socket));
    std::error_code ec;
    std::filesystem::create_directories(dir + "/var/lib/kubelet/plugins_registry", ec);
    if (ec)
      return unexpected(ErrorCode::kIo, fmt::format("cannot create {}: {}", dir, ec.message()));
    std::ofstream(dir + "/node.yaml", std::ios::trunc) << agent_node_description(n);
    ::chmod((dir + "/node.yaml").c_str(), 0644);
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& n : nodes_)
      pids_[n.name] = spawn(n.name);
  }
  monitor_ = std::thread([this] { monitor(); });
  return ok();
}

pid_t AgentSupervisor::spawn(const std::string& node) {
  const std::string dir = options_.root + "/" + node;
  std::vector<std::string> args = {options_.binary,
                                   "kubelet-plugin",
                                   "--kubeconfig",
                                   options_.kubeconfig,
                                   "--node-name",
                                   node,
                                   "--device-backend",
                                   "sim",
                                   "--root",
                                   dir,
                                   "--sim-node-config",
                                   dir + "/node.yaml",
                                   "--metrics-bind-address",
                                   "127.0.0.1:0"};
  for (const auto& n : nodes_) {
    if (n.name == node && !n.feature_gates.empty()) {
      args.push_back("--feature-gates");
      args.push_back(n.feature_gates);
    }
  }
  // Output to the node's log; an argv vector, no shell.
  // SIGTERM when the simulator dies: node agents do not outlive the cluster they serve.
  ChildSpec spec{args, {}, dir + "/agent.log", ""};
  spec.parent_death_signal = SIGTERM;
  auto pid = spawn_process(spec);
  if (!pid) {
    NVDRA_ERROR("nvdra-sim: cannot start the agent of node {}: {}", node, pid.error().message);
    return -1;
  }
  return *pid;
}

void AgentSupervisor::monitor() {
  std::map<std::string, int> restarts;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    for (auto& [node, pid] : pids_) {
      if (pid <= 0) continue;
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) != pid) continue;
      const int n = ++restarts[node];
      NVDRA_WARN("nvdra-sim: the agent of node {} exited ({}); restarting it (restart {})", node,
                 WIFEXITED(status) ? fmt::format("status {}", WEXITSTATUS(status))
                                   : fmt::format("signal {}", WTERMSIG(status)),
                 n);
      pid = spawn(node);
    }
    cv_.wait_for(lock, std::chrono::milliseconds(
                           std::min(200 * (1 << std::min(restarts.size(), size_t{4})), 2000)));
  }
}

void AgentSupervisor::stop() {
  std::map<std::string, pid_t> pids;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    pids = pids_;
  }
  cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
  for (const auto& [node, pid] : pids) {
    if (pid > 0) ::kill(pid, SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (const auto& [node, pid] : pids) {
    if (pid <= 0) continue;
    while (::waitpid(pid, nullptr, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        NVDRA_WARN("nvdra-sim: the agent of node {} ignored SIGTERM; killing it", node);
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

void AgentSupervisor::remove(const std::string& node) {
  pid_t pid = -1;
  {
    std::lock_guard lock(mu_);
    auto it = pids_.find(node);
    if (it == pids_.end()) return;
    pid = it->second;
    pids_.erase(it);
  }
  if (pid > 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
}

std::map<std::string, pid_t> AgentSupervisor::pids() const {
  std::lock_guard lock(mu_);
  return pids_;
}

}  // namespace nvdra::sim::cluster
