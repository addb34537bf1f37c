// Containers the simulated kubelets run for real: those whose command is one of nvdra's own
// programs (nvdra-agent compute-domain-daemon in the IMEX DaemonSets). Every other container is
// only pretended to run. A real container gets:
//  - a folder of its own as its root (NVDRA_ROOT), with /etc/hosts and the CDI mounts of its
//    pod's prepared claims as symlinks (/imexd → the domain folder the agent made);
//  - the environment the pod spec gives it (values and the downward API) plus the CDI env edits;
//  - its startup probe (exec) every periodSeconds until it passes, then its readiness probe at once
//    and every periodSeconds after, as kubelet runs them; until readiness passes the pod is not
//    Ready (liveness probes are not run);
//  - a restart when it exits, and SIGTERM (then SIGKILL after the grace period) when the pod ends.
// The IMEX daemon it may start is nvdra-imex-sim (NVDRA_IMEX_BINARY / NVDRA_IMEX_CTL_BINARY).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/child_process.h"
#include "sim/cluster/cluster.h"

namespace nvdra::sim::cluster {

// The kubeconfig (a path) that lets a container reach the API server as service account
// <namespace>/<name>: what the kubelet's projected token gives a real pod.
using KubeconfigFor = std::function<std::string(const std::string& ns, const std::string& name)>;

struct ContainerOptions {
  std::string bin_dir;  // where nvdra's programs are (build/bin)
  KubeconfigFor kubeconfig_for;
  std::string root;  // node n's folders are below <root>/<n>
};

class ContainerRunner {
 public:
  using Steady = std::chrono::steady_clock;
  explicit ContainerRunner(ContainerOptions options) : opt_(std::move(options)) {}
  ~ContainerRunner();  // stops every container

  // Whether the pod has a container this runner runs for real.
  bool runs(const json::Value& pod) const;
  // Whether the pod's containers were started by this runner (not after a simulator restart).
  bool started(const std::string& key) const { return pods_.contains(key); }
  // Starts the pod's real containers; `pod_ip` is the IP the kubelet gives the pod.
  // `claim_uids`: the pod's claims, whose CDI specs on the node give env and mounts.
  Status start(const std::string& key, const json::Value& pod, const std::string& node,
               const std::string& pod_ip, const std::vector<std::string>& claim_uids,
               Steady::time_point now);
  // Asks the pod's containers to stop; true once none runs any more.
  bool stopped(const std::string& key, Steady::time_point now);
  // The pod object is gone (a forced deletion): its containers are killed at once.
  void kill(const std::string& key);
  // Probes, restarts, kill deadlines. Returns the pods whose readiness changed (key → ready).
  std::map<std::string, bool> poll(Steady::time_point now);

 private:
  struct Probe {
    std::vector<std::string> argv;
    std::chrono::seconds period{10}, timeout{1};
    int failure_threshold = 3;
    int failures = 0;
    Steady::time_point next{}, deadline{};
    ChildProcess run;
  };
  struct Container {
    std::string name;
    ChildSpec spec;
    ChildProcess process;
    std::optional<Probe> startup, readiness;
    bool started = false;  // the startup probe passed (or there is none)
    bool ready = false;
    int restarts = 0;
    Steady::time_point restart_at{};
  };
  struct Pod {
    std::vector<std::unique_ptr<Container>> containers;
    bool ready = false;
    bool stopping = false;
    Steady::time_point kill_at{};
    std::chrono::seconds grace{30};
  };
  // "nvdra-…" with no slash and present in bin_dir → its path there.
  std::optional<std::string> resolve(const json::Value& command) const;
  void poll_container(Container& c, Steady::time_point now);
  // Reads the probe of `field` ("readinessProbe", "startupProbe") if it is an exec probe of an
  // nvdra program.
  std::optional<Probe> probe_of(const json::Value& container, const char* field,
                                Steady::time_point now) const;
  // Advances a probe; returns its result when one came in.
  std::optional<bool> step(Probe& p, const Container& c, Steady::time_point now);

  ContainerOptions opt_;
  std::map<std::string, Pod> pods_;  // by pod key
};

}  // namespace nvdra::sim::cluster
