// The node agents `nvdra-sim up` runs: one nvdra-agent process per simulated node, started with
// an argv vector (never a shell), its output in <node dir>/agent.log, restarted with backoff when
// it exits, stopped with SIGTERM (then SIGKILL after 5 s) when the simulator stops.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "sim/cluster/topology.h"

namespace nvdra::sim::cluster {

struct AgentOptions {
  std::string binary;      // nvdra-agent
  std::string kubeconfig;  // what the agents use to reach the API server
  std::string root;        // node n's folder is <root>/<n>; its kubelet folder below it
};

// The node description the agent's simulated device backend reads (<root>/<n>/node.yaml).
std::string agent_node_description(const NodeSpec& node);

class AgentSupervisor {
 public:
  AgentSupervisor(AgentOptions options, const Topology& topology);
  ~AgentSupervisor();  // stops every agent

  // Writes each node's description and starts its agent.
  Status start();
  void stop();
  // The node's machine is gone: its agent is stopped (SIGKILL) and not restarted.
  void remove(const std::string& node);
  // Process ids of the running agents, by node (for tests).
  std::map<std::string, pid_t> pids() const;

 private:
  pid_t spawn(const std::string& node);
  void monitor();

  AgentOptions options_;
  std::vector<NodeSpec> nodes_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, pid_t> pids_;  // guarded by mu_
  bool stopping_ = false;              // guarded by mu_
  std::thread monitor_;
};

}  // namespace nvdra::sim::cluster
