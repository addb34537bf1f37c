// Where the API server is and who we are to it: kubeconfig files (with KUBECONFIG merging) and
// in-cluster service-account configuration, reduced to one RestConfig value.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/atomic_file.h"
#include "base/clock.h"
#include "base/result.h"
#include "k8sclient/transport/http.h"

namespace nvdra::k8s {

// A bearer token that may come from a file which is re-read periodically: projected
// service-account tokens rotate (client-go re-reads every minute). Thread-safe.
class TokenSource {
 public:
  static constexpr std::chrono::seconds kDefaultRefresh{60};
  static std::shared_ptr<TokenSource> fixed(std::string token);
  static std::shared_ptr<TokenSource> file(std::string path,
                                           const Clock& clock = SystemClock::instance(),
                                           std::chrono::seconds refresh = kDefaultRefresh);

  // The current token (empty when none is configured or the file cannot be read).
  std::string token();
  bool from_file() const { return !path_.empty(); }

 private:
  TokenSource() = default;
  std::mutex mu_;
  std::string token_;  // guarded by mu_
  std::string path_;
  const Clock* clock_ = nullptr;
  std::chrono::seconds refresh_{60};
  std::optional<Clock::steady_point> read_at_;  // guarded by mu_
};

struct RestConfig {
  std::string server;  // https://host:port[/prefix]
  Endpoint endpoint;
  TlsConfig tls;
  std::shared_ptr<TokenSource> token;  // may be null: no bearer token (client certificates)
  // A bearer token is sent over plain http only when this is set (env
  // NVDRA_ALLOW_INSECURE_TOKEN=true for load_rest_config): anyone on the path could read it.
  bool allow_insecure_token = false;
  std::string namespace_ = "default";
  double qps = 5;  // client-go defaults
  int burst = 10;
  std::string user_agent = "nvdra";
};

// Parses one kubeconfig document (YAML or JSON). `base_dir` resolves relative file references.
// Only the pieces needed for the selected context are checked.
Result<RestConfig> parse_kubeconfig(std::string_view yaml, const std::string& base_dir,
                                    const std::string& context_override = {});

// Loads kubeconfig from `explicit_path` (the --kubeconfig flag) or else from $KUBECONFIG (a
// ':'-separated list merged with the first file winning for each name and for current-context),
// or else ~/.kube/config.
Result<RestConfig> load_kubeconfig(const std::string& explicit_path,
                                   const std::string& context_override = {});

// Merges several kubeconfig texts as client-go does: for every cluster, user and context name,
// and for current-context, the first file that sets it wins. `base_dirs` parallel `texts`.
Result<RestConfig> merge_kubeconfigs(const std::vector<std::string>& texts,
                                     const std::vector<std::string>& base_dirs,
                                     const std::string& context_override = {});

// In-cluster config from KUBERNETES_SERVICE_HOST/PORT and the service-account files under
// `sa_dir` (default /var/run/secrets/kubernetes.io/serviceaccount).
Result<RestConfig> in_cluster_config(
    const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// The usual order for a component: --kubeconfig if given, else in-cluster when its variables are
// set, else $KUBECONFIG / ~/.kube/config.
Result<RestConfig> load_rest_config(const std::string& kubeconfig_flag);

using ::nvdra::read_file;  // base/atomic_file.h

}  // namespace nvdra::k8s
