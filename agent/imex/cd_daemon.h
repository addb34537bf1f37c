// nvdra-agent compute-domain-daemon: runs in the per-domain DaemonSet's pod on every node of a
// ComputeDomain. It renders the IMEX config from the template the agent left in /imexd, keeps
// /etc/hosts mapping the DNS-mode peer names of its clique to the IPs the controller wrote into the
// domain's status, starts and watches the IMEX daemon (restarted when it exits) and tells it to
// re-resolve its peers (SIGUSR1) when they change, so healthy peers are never restarted.
// `check` answers the pod's probes from the IMEX daemon's own state (nvidia-imex-ctl -q).
// Without an NVLink clique there is nothing to run: the daemon idles and `check` succeeds.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "agent/exec/executor.h"
#include "base/asio.h"
#include "base/cancel.h"
#include "base/child_process.h"
#include "k8sclient/cache/informer.h"
#include "k8sclient/rest/rest_client.h"

namespace nvdra::agent::imex {

struct DaemonOptions {
  std::string domain_uid;   // --compute-domain; must match the CDI-injected COMPUTE_DOMAIN_UUID
  std::string domain_name;  // COMPUTE_DOMAIN_NAME / _NAMESPACE (CDI): narrows the watch
  std::string domain_namespace;
  std::string node_name;
  std::string pod_ip;
  std::string clique_id;                    // CLIQUE_ID (CDI); empty: no NVLink fabric
  std::string root;                         // prefix of the container paths (/imexd, /etc/hosts)
  std::string imex_binary = "nvidia-imex";  // env NVDRA_IMEX_BINARY
  std::string imex_ctl_binary = "nvidia-imex-ctl";  // env NVDRA_IMEX_CTL_BINARY
  int max_nodes = 18;                               // MAX_NODES_PER_IMEX_DOMAIN
};

// The options' problems (missing CDI environment, bad values) as one message; empty when usable.
std::string validate(const DaemonOptions& o);

class ComputeDomainDaemon {
 public:
  ComputeDomainDaemon(std::shared_ptr<k8s::RestClient> client, DaemonOptions options);
  ~ComputeDomainDaemon();

  // Writes imexd.cfg and nodes.cfg; fails when the domain folder was not mounted.
  Status write_config();
  // Follows the domain until `cancel` fires, then stops the IMEX daemon.
  awaitable<void> run(Cancellation* cancel);

 private:
  void apply_peers();
  void supervise();

  std::shared_ptr<k8s::RestClient> client_;
  DaemonOptions opt_;
  std::shared_ptr<k8s::Informer> domain_;
  ChildProcess imex_;
  int starts_ = 0;
  std::map<std::string, std::string> peers_;
  bool hosts_written_ = false;
};

// The probe: ready when `nvidia-imex-ctl -c <config> -q` prints exactly "READY". Returns the
// message to print; `ready` tells the exit status.
std::string check(const DaemonOptions& o, Executor& executor, bool* ready);

}  // namespace nvdra::agent::imex
