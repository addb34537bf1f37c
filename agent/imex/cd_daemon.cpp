#include "agent/imex/cd_daemon.h"

#include <signal.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "agent/imex/imex_config.h"
#include "base/atomic_file.h"
#include "base/log.h"

namespace nvdra::agent::imex {
namespace {

std::string config_path(const DaemonOptions& o) {
  return o.root + "/imexd/imexd.cfg";
}

}  // namespace

std::string validate(const DaemonOptions& o) {
  if (o.domain_uid.empty())
    return "CDI container edits did not apply -- is CDI enabled in your container runtime?";
  if (o.node_name.empty()) return "--node-name (or NODE_NAME) is required";
  if (!o.clique_id.empty() && o.pod_ip.empty()) return "--pod-ip (or POD_IP) is required";
  if (o.max_nodes < 1 || o.max_nodes > 10000)
    return "MAX_NODES_PER_IMEX_DOMAIN must be between 1 and 10000";
  return {};
}

ComputeDomainDaemon::ComputeDomainDaemon(std::shared_ptr<k8s::RestClient> client,
                                         DaemonOptions options)
    : client_(std::move(client)), opt_(std::move(options)) {
  k8s::ResourceRef ref{"resource.nvidia.com", "v1beta1", "computedomains"};
  std::string fields;
  if (!opt_.domain_name.empty() && !opt_.domain_namespace.empty()) {
    ref = ref.in_namespace(opt_.domain_namespace);
    fields = "metadata.name=" + opt_.domain_name;
  }
  k8s::ReflectorOptions ro;
  ro.name = "computedomain";
  domain_ = std::make_shared<k8s::Informer>(
      std::make_shared<k8s::RestListerWatcher>(client_, ref, "", fields), ro);
}

ComputeDomainDaemon::~ComputeDomainDaemon() = default;

Status ComputeDomainDaemon::write_config() {
  const std::string dir = opt_.root + "/imexd";
  auto tmpl = read_file(dir + "/imexd.cfg.tmpl");
  if (!tmpl)
    return unexpected(ErrorCode::kNotFound,
                      fmt::format("{}/imexd.cfg.tmpl: {} (is the domain folder mounted?)", dir,
                                  tmpl.error().message));
  // Paths inside the config are the IMEX daemon's view: the same prefix as ours.
  if (auto s = write_file_atomic(config_path(opt_),
                                 render_config(*tmpl, opt_.pod_ip, dir + "/nodes.cfg"));
      !s)
    return s;
  return write_file_atomic(dir + "/nodes.cfg", node_list(opt_.max_nodes));
}

void ComputeDomainDaemon::apply_peers() {
  std::map<std::string, std::string> peers;
  for (const auto& cd : domain_->store().list()) {
    if (cd->uid() != opt_.domain_uid) continue;
    auto doc = cd->doc();
    if (doc) peers = clique_peers(*doc, opt_.clique_id, opt_.max_nodes);
  }
  if (hosts_written_ && peers == peers_) return;
  const std::string hosts_file = opt_.root + "/etc/hosts";
  auto current = read_file(hosts_file);
  // Rewritten in place, not renamed over: a container's /etc/hosts is a bind mount.
  std::filesystem::create_directories(std::filesystem::path(hosts_file).parent_path());
  std::ofstream out(hosts_file, std::ios::trunc);
  out << rewrite_hosts(current ? *current : "", peers);
  out.close();
  if (!out) {
    NVDRA_WARN("writing {} failed", hosts_file);
    return;
  }
  hosts_written_ = true;
  peers_ = std::move(peers);
  NVDRA_INFO("IMEX peers of clique {}: {} daemons", opt_.clique_id, peers_.size());
  for (const auto& [name, ip] : peers_)
    NVDRA_V(1, "  {} -> {}", name, ip);
  // DNS mode: the IMEX daemon re-resolves its peer names; connections to the others stay up.
  if (imex_.running() && imex_.signal(SIGUSR1))
    NVDRA_INFO("signalled the IMEX daemon (pid {}) to re-resolve its peers", imex_.pid());
}

void ComputeDomainDaemon::supervise() {
  if (imex_.running()) return;
  if (starts_ > 0)
    NVDRA_WARN("the IMEX daemon exited (wait status {}); restarting it",
               imex_.exit_status().value_or(-1));
  ChildSpec spec;
  spec.argv = {opt_.imex_binary, "-c", config_path(opt_)};
  if (auto s = imex_.start(spec); !s) {
    NVDRA_ERROR("starting {}: {}", opt_.imex_binary, s.error().message);
    return;
  }
  ++starts_;
  NVDRA_INFO("started the IMEX daemon: {} -c {} (pid {})", opt_.imex_binary, config_path(opt_),
             imex_.pid());
}

awaitable<void> ComputeDomainDaemon::run(Cancellation* cancel) {
  if (opt_.clique_id.empty()) {
    NVDRA_INFO("no NVLink clique on node {}: nothing to run (the pod is ready at once)",
               opt_.node_name);
    while (co_await sleep_for(std::chrono::hours(1), cancel)) {
    }
    co_return;
  }
  net::co_spawn(co_await net::this_coro::executor, k8s::run_informer(domain_, cancel),
                net::detached);
  while (!domain_->has_synced()) {
    if (!co_await sleep_for(std::chrono::milliseconds(50), cancel)) break;
  }
  auto last_watchdog = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  while (!cancel->cancelled()) {
    apply_peers();
    if (std::chrono::steady_clock::now() - last_watchdog >= std::chrono::seconds(1)) {
      supervise();  // the watchdog: once a second, as upstream's
      last_watchdog = std::chrono::steady_clock::now();
    }
    co_await sleep_for(std::chrono::milliseconds(100), cancel);
  }
  imex_.stop(std::chrono::seconds(5));
  NVDRA_INFO("compute-domain daemon for {} stopped", opt_.domain_uid);
}

std::string check(const DaemonOptions& o, Executor& executor, bool* ready) {
  *ready = false;
  if (o.clique_id.empty()) {
    *ready = true;
    return "check succeeded (noop, clique ID is empty)";
  }
  Command c;
  c.argv = {o.imex_ctl_binary, "-c", config_path(o), "-q"};
  c.timeout = std::chrono::seconds(10);
  auto r = executor.run(c);
  if (!r) return fmt::format("{}: {}", describe(c), r.error().message);
  if (r->exit_code == 0 && r->output == "READY\n") {
    *ready = true;
    return "check succeeded: IMEX daemon READY";
  }
  return fmt::format("IMEX daemon not ready: {} exited {}: {}", describe(c), r->exit_code,
                     r->output);
}

}  // namespace nvdra::agent::imex
