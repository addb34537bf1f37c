#include "sim/cluster/containers.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "base/atomic_file.h"
#include "base/log.h"

namespace nvdra::sim::cluster {
namespace {

namespace fs = std::filesystem;
using json::Value;

// The downward API fields the simulator can answer.
std::string field_value(const Value& pod, std::string_view path, const std::string& node,
                        const std::string& ip) {
  if (path == "spec.nodeName") return node;
  if (path == "status.podIP") return ip;
  if (path == "metadata.name") return std::string(name_of(pod));
  if (path == "metadata.namespace") return std::string(namespace_of(pod));
  if (path == "metadata.uid") return std::string(uid_of(pod));
  if (path == "spec.serviceAccountName") {
    const Value* spec = json::find(pod, "spec");
    return spec ? std::string(json::string_or(*spec, "serviceAccountName", "default")) : "default";
  }
  return "";
}

// Env and mounts of the CDI specs (on the node) of the given claims.
struct CdiEdits {
  std::vector<std::string> env;
  std::vector<std::pair<std::string, std::string>> mounts;  // container path, host path
};
CdiEdits cdi_edits(const std::string& cdi_dir, const std::vector<std::string>& claim_uids) {
  CdiEdits out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(cdi_dir, ec)) {
    const std::string file = e.path().filename().string();
    bool mine = false;
    for (const auto& uid : claim_uids)
      mine = mine || (!uid.empty() && file.find(uid) != std::string::npos);
    if (!mine || !file.ends_with(".json")) continue;
    auto text = read_file(e.path().string());
    if (!text) continue;
    auto doc = json::parse(*text);
    if (!doc) continue;
    auto take = [&](const Value& edits) {
      if (const Value* env = json::find(edits, "env"); env && env->IsArray())
        for (const auto& v : env->GetArray())
          if (v.IsString()) out.env.emplace_back(v.GetString());
      if (const Value* m = json::find(edits, "mounts"); m && m->IsArray())
        for (const auto& v : m->GetArray())
          out.mounts.emplace_back(json::string_or(v, "containerPath"),
                                  json::string_or(v, "hostPath"));
    };
    if (const Value* common = json::find(*doc, "containerEdits")) take(*common);
    if (const Value* devs = json::find(*doc, "devices"); devs && devs->IsArray())
      for (const auto& d : devs->GetArray())
        if (const Value* edits = json::find(d, "containerEdits")) take(*edits);
  }
  return out;
}

std::vector<std::string> strings(const Value* list) {
  std::vector<std::string> out;
  if (list && list->IsArray())
    for (const auto& v : list->GetArray())
      if (v.IsString()) out.emplace_back(v.GetString());
  return out;
}

// The service account a pod runs as ("default" unless its spec names one).
std::string service_account_of(const Value& pod) {
  const Value* spec = json::find(pod, "spec");
  std::string name = spec ? std::string(json::string_or(*spec, "serviceAccountName")) : "";
  return name.empty() ? "default" : name;
}

}  // namespace

ContainerRunner::~ContainerRunner() {
  for (auto& [key, pod] : pods_)
    for (auto& c : pod.containers)
      c->process.signal(SIGTERM);
  for (auto& [key, pod] : pods_)
    for (auto& c : pod.containers)
      c->process.stop(std::chrono::seconds(2));
}

std::optional<std::string> ContainerRunner::resolve(const Value& command) const {
  if (!command.IsArray() || command.Empty() || !command[0].IsString()) return std::nullopt;
  const std::string name = command[0].GetString();
  if (opt_.bin_dir.empty() || !name.starts_with("nvdra-") || name.find('/') != std::string::npos)
    return std::nullopt;
  const std::string path = opt_.bin_dir + "/" + name;
  if (::access(path.c_str(), X_OK) != 0) return std::nullopt;
  return path;
}

bool ContainerRunner::runs(const Value& pod) const {
  const Value* cs = json::find_path(pod, {"spec", "containers"});
  if (!cs || !cs->IsArray()) return false;
  for (const auto& c : cs->GetArray())
    if (const Value* cmd = json::find(c, "command"); cmd && resolve(*cmd)) return true;
  return false;
}

Status ContainerRunner::start(const std::string& key, const Value& pod, const std::string& node,
                              const std::string& pod_ip, const std::vector<std::string>& claim_uids,
                              Steady::time_point now) {
  Pod& p = pods_[key];
  if (!p.containers.empty()) return ok();
  const std::string node_dir = opt_.root + "/" + node;
  const CdiEdits cdi = cdi_edits(node_dir + "/var/run/cdi", claim_uids);
  if (auto g = json::get_int(*json::find(pod, "spec"), "terminationGracePeriodSeconds"))
    p.grace = std::chrono::seconds(std::clamp<int64_t>(*g, 0, 30));
  const Value* cs = json::find_path(pod, {"spec", "containers"});
  for (const auto& ctr : cs->GetArray()) {
    const Value* cmd = json::find(ctr, "command");
    auto path = cmd ? resolve(*cmd) : std::nullopt;
    if (!path) continue;
    auto c = std::make_unique<Container>();
    c->name = json::string_or(ctr, "name");
    const std::string root = fmt::format("{}/containers/{}/{}", node_dir, uid_of(pod), c->name);
    std::error_code ec;
    fs::create_directories(root + "/etc", ec);
    if (ec)
      return unexpected(ErrorCode::kIo, fmt::format("cannot create {}: {}", root, ec.message()));
    std::ofstream(root + "/etc/hosts", std::ios::trunc) << "127.0.0.1\tlocalhost\n"
                                                        << pod_ip << "\t" << name_of(pod) << "\n";
    for (const auto& [container_path, host_path] : cdi.mounts) {
      const fs::path link = root + container_path;
      fs::create_directories(link.parent_path(), ec);
      fs::remove(link, ec);
      fs::create_symlink(host_path, link, ec);
    }
    // The container's environment: a clean one, as a runtime gives it.
    std::vector<std::string> env = {
        "PATH=" + std::string(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin"),
        "HOSTNAME=" + std::string(name_of(pod)),
        "KUBECONFIG=" +
            opt_.kubeconfig_for(std::string(namespace_of(pod)), service_account_of(pod)),
        "NVDRA_ROOT=" + root,
        "NVDRA_IMEX_BINARY=" + opt_.bin_dir + "/nvdra-imex-sim",
        "NVDRA_IMEX_CTL_BINARY=" + opt_.bin_dir + "/nvdra-imex-sim",
        "NVDRA_IMEX_SIM_LOOPBACK=1"};
    if (const Value* e = json::find(ctr, "env"); e && e->IsArray()) {
      for (const auto& v : e->GetArray()) {
        std::string value(json::string_or(v, "value"));
        if (const Value* f = json::find_path(v, {"valueFrom", "fieldRef"}))
          value = field_value(pod, json::string_or(*f, "fieldPath"), node, pod_ip);
        env.push_back(fmt::format("{}={}", json::string_or(v, "name"), value));
      }
    }
    env.insert(env.end(), cdi.env.begin(), cdi.env.end());
    c->spec.argv = strings(cmd);
    c->spec.argv[0] = *path;
    for (auto& a : strings(json::find(ctr, "args")))
      c->spec.argv.push_back(a);
    c->spec.env = env;
    c->spec.log_file = root + ".log";
    c->spec.own_process_group = true;
    // A killed simulator takes its containers along. SIGTERM, not SIGKILL: the container's
    // main process then stops what it started (the compute-domain daemon its IMEX daemon),
    // which a SIGKILL would leave running.
    c->spec.parent_death_signal = SIGTERM;
    c->startup = probe_of(ctr, "startupProbe", now);
    c->readiness = probe_of(ctr, "readinessProbe", now);
    c->started = !c->startup;
    c->ready = !c->readiness;
    if (auto s = c->process.start(c->spec); !s) return s;
    NVDRA_INFO("kubelet {}: started container {} of pod {} (pid {})", node, c->name, key,
               c->process.pid());
    p.containers.push_back(std::move(c));
  }
  return ok();
}

bool ContainerRunner::stopped(const std::string& key, Steady::time_point now) {
  auto it = pods_.find(key);
  if (it == pods_.end()) return true;
  Pod& p = it->second;
  if (!p.stopping) {
    p.stopping = true;
    p.kill_at = now + p.grace;
    for (auto& c : p.containers) {
      c->process.signal(SIGTERM);
      for (auto* p : {&c->startup, &c->readiness})
        if (*p) (*p)->run.stop(std::chrono::milliseconds(0));
    }
  }
  bool any = false;
  for (auto& c : p.containers) {
    if (!c->process.running()) continue;
    any = true;
    if (now >= p.kill_at) c->process.signal(SIGKILL);
  }
  if (any) return false;
  pods_.erase(it);
  return true;
}

void ContainerRunner::kill(const std::string& key) {
  auto it = pods_.find(key);
  if (it == pods_.end()) return;
  for (auto& c : it->second.containers)
    c->process.stop(std::chrono::milliseconds(0));
  pods_.erase(it);
}

void ContainerRunner::poll_container(Container& c, Steady::time_point now) {
  if (!c.process.running()) {
    c.ready = false;
    if (c.restart_at == Steady::time_point{}) {
      // Restarted with backoff, as kubelet's CrashLoopBackOff (1 s doubling, capped at 16 s).
      c.restart_at = now + std::chrono::seconds(1 << std::min(c.restarts, 4));
      NVDRA_WARN("container {} exited (wait status {}); restarting", c.name,
                 c.process.exit_status().value_or(-1));
    } else if (now >= c.restart_at) {
      c.restart_at = {};
      ++c.restarts;
      if (auto s = c.process.start(c.spec); !s)
        NVDRA_WARN("restarting container {}: {}", c.name, s.error().message);
    }
    return;
  }
  if (!c.started) {
    if (auto passed = step(*c.startup, c, now); passed && *passed) {
      c.started = true;
      if (c.readiness) c.readiness->next = now;  // readiness is probed at once after startup
    }
    if (!c.started) return;
  }
  if (!c.readiness) {
    c.ready = true;
    return;
  }
  if (auto passed = step(*c.readiness, c, now)) {
    Probe& pr = *c.readiness;
    if (*passed) c.ready = true;
    if (!*passed && pr.failures >= pr.failure_threshold) c.ready = false;
  }
}

std::optional<ContainerRunner::Probe> ContainerRunner::probe_of(const Value& ctr, const char* field,
                                                                Steady::time_point now) const {
  const Value* probe = json::find(ctr, field);
  const Value* pc = probe ? json::find_path(*probe, {"exec", "command"}) : nullptr;
  auto path = pc ? resolve(*pc) : std::nullopt;
  if (!path) return std::nullopt;
  Probe pr;
  pr.argv = strings(pc);
  pr.argv[0] = *path;
  pr.period = std::chrono::seconds(json::get_int(*probe, "periodSeconds").value_or(10));
  pr.timeout = std::chrono::seconds(json::get_int(*probe, "timeoutSeconds").value_or(1));
  pr.failure_threshold = static_cast<int>(json::get_int(*probe, "failureThreshold").value_or(3));
  pr.next = now + std::chrono::milliseconds(500);
  return pr;
}

std::optional<bool> ContainerRunner::step(Probe& pr, const Container& c, Steady::time_point now) {
  std::optional<bool> result;
  if (pr.run.pid() > 0) {
    if (pr.run.running()) {
      if (now < pr.deadline) return result;
      pr.run.stop(std::chrono::milliseconds(0));  // timed out: a failure
    }
    const auto st = pr.run.exit_status();
    result = st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0;
    pr.failures = *result ? 0 : pr.failures + 1;
    pr.run = ChildProcess();
  }
  if (now < pr.next) return result;
  pr.next = now + pr.period;
  pr.deadline = now + pr.timeout;
  ChildSpec spec;
  spec.argv = pr.argv;
  spec.env = c.spec.env;
  spec.log_file = c.spec.log_file + ".probe";
  if (auto s = pr.run.start(spec); !s) NVDRA_WARN("probe of {}: {}", c.name, s.error().message);
  return result;
}

std::map<std::string, bool> ContainerRunner::poll(Steady::time_point now) {
  std::map<std::string, bool> changed;
  for (auto& [key, p] : pods_) {
    if (p.stopping) continue;
    bool ready = true;
    for (auto& c : p.containers) {
      poll_container(*c, now);
      ready = ready && c->ready;
    }
    if (ready != p.ready) {
      p.ready = ready;
      changed[key] = ready;
    }
  }
  return changed;
}

}  // namespace nvdra::sim::cluster
