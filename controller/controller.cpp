#include "controller/controller.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "base/log.h"
#include "k8sclient/cache/leader_election.h"
#include "k8sclient/rest/status.h"

namespace nvdra::controller {
namespace {

using json::Value;

const char* kUidIndex = "uid";
const char* kDomainIndex = "domain";

k8s::ResourceRef domains_ref() {
  return {"resource.nvidia.com", "v1beta1", "computedomains"};
}
k8s::ResourceRef templates_ref() {
  return {"resource.k8s.io", "v1", "resourceclaimtemplates"};
}
k8s::ResourceRef daemon_sets_ref() {
  return {"apps", "v1", "daemonsets"};
}
k8s::ResourceRef pods_ref() {
  return {"", "v1", "pods"};
}
k8s::ResourceRef nodes_ref() {
  return {"", "v1", "nodes"};
}
k8s::ResourceRef slices_ref() {
  return {"resource.k8s.io", "v1", "resourceslices"};
}
k8s::ResourceRef claims_ref() {
  return {"resource.k8s.io", "v1", "resourceclaims"};
}

std::vector<std::string> domain_label_index(const k8s::Object& o) {
  if (auto v = o.label(kDomainLabel)) return {std::string(*v)};
  return {};
}

const char* policy_name(placement::Policy p) {
  switch (p) {
    case placement::Policy::kSingleClique:
      return "SingleClique";
    case placement::Policy::kNone:
      return "None";
    default:
      return "PreferSingleClique";
  }
}

bool pod_ready(const Value& pod) {
  const Value* conds = json::find_path(pod, {"status", "conditions"});
  if (!conds || !conds->IsArray()) return false;
  for (const auto& c : conds->GetArray())
    if (json::string_or(c, "type") == "Ready") return json::string_or(c, "status") == "True";
  return false;
}

}  // namespace

struct Controller::Domain {
  std::string key;
  std::optional<placement::Decision> decision;
  bool waiting = false;         // placement holds the workload template back
  bool ready_recorded = false;  // time to Ready observed
  std::string last_warning;     // the last Warning Event sent, so a repeat is not resent
};

struct Controller::Metrics {
  explicit Metrics(metrics::Registry& r)
      : reconciles(r.counter("nvdra_controller_reconciles_total",
                             "ComputeDomain reconciles by result (success, requeue, error)")),
        reconcile_seconds(r.histogram("nvdra_controller_reconcile_duration_seconds",
                                      "Time one ComputeDomain reconcile took")
                              .Add({}, metrics::Registry::latency_buckets())),
        queue_depth(r.gauge("nvdra_controller_workqueue_depth",
                            "ComputeDomain keys waiting in the work queue (ready and delayed)")
                        .Add({})),
        queue_wait(r.gauge("nvdra_controller_workqueue_longest_wait_seconds",
                           "How long the oldest ready key has waited in the work queue")
                       .Add({})),
        status_writes(r.counter("nvdra_controller_status_writes_total",
                                "ComputeDomain status writes by result")),
        domains(r.gauge("nvdra_compute_domains", "ComputeDomains by global status")),
        nvidia_domains(r.gauge("nvidia_dra_compute_domain_info",
                               "ComputeDomains by global status (NVIDIA's series)")),
        time_to_ready(
            r.histogram("nvdra_compute_domain_time_to_ready_seconds",
                        "Time from a ComputeDomain's creation to its first Ready status")
                .Add({}, prometheus::Histogram::BucketBoundaries{0.5, 1, 2, 5, 10, 20, 30, 60, 120,
                                                                 300, 600, 1200})),
        decisions(r.counter("nvdra_placement_decisions_total",
                            "Placement decisions by result (placed, spread, wait, "
                            "unconstrained, invalid)")),
        placement_seconds(
            r.histogram("nvdra_placement_duration_seconds", "Time one placement decision took")
                .Add({}, prometheus::Histogram::BucketBoundaries{1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1,
                                                                 1})),
        clique_free(r.gauge("nvdra_clique_free_nodes",
                            "Nodes of an NVLink clique with a free GPU and no reservation")),
        fragmentation(r.gauge("nvdra_clique_fragmentation",
                              "1 - largest clique's free nodes / all free nodes")
                          .Add({})) {
    for (const char* s : {"Ready", "NotReady"}) {
      domains.Add({{"status", s}});
      nvidia_domains.Add({{"status", s}});
    }
  }
  metrics::Family<metrics::Counter>& reconciles;
  metrics::Histogram& reconcile_seconds;
  metrics::Gauge& queue_depth;
  metrics::Gauge& queue_wait;
  metrics::Family<metrics::Counter>& status_writes;
  metrics::Family<metrics::Gauge>& domains;
  metrics::Family<metrics::Gauge>& nvidia_domains;
  metrics::Histogram& time_to_ready;
  metrics::Family<metrics::Counter>& decisions;
  metrics::Histogram& placement_seconds;
  metrics::Family<metrics::Gauge>& clique_free;
  metrics::Gauge& fragmentation;
};

Controller::Controller(std::shared_ptr<k8s::RestClient> client, ControllerOptions options,
                       metrics::Registry& registry)
    : client_(std::move(client)),
      opt_(std::move(options)),
      events_(client_,
              k8s::EventRecorderOptions{"resource.nvidia.com/nvdra-controller", opt_.identity}),
      m_(std::make_unique<Metrics>(registry)) {
  const std::string selector(kDomainLabel);
  auto informer = [&](k8s::ResourceRef ref, std::string label_selector, const char* name) {
    auto o = opt_.reflector;
    o.name = name;
    return std::make_shared<k8s::Informer>(std::make_shared<k8s::RestListerWatcher>(
                                               client_, std::move(ref), std::move(label_selector)),
                                           o);
  };
  domains_ = informer(domains_ref(), "", "computedomains");
  templates_ = informer(templates_ref(), selector, "resourceclaimtemplates");
  daemon_sets_ = informer(daemon_sets_ref().in_namespace(opt_.daemon.ns), selector, "daemonsets");
  pods_ = informer(pods_ref().in_namespace(opt_.daemon.ns), selector, "daemon-pods");
  nodes_ = informer(nodes_ref(), selector, "labelled-nodes");
  slices_ = informer(slices_ref(), "", "resourceslices");
  claims_ = informer(claims_ref(), "", "resourceclaims");
  domains_->add_indexer(kUidIndex, [](const k8s::Object& o) {
    return std::vector<std::string>{std::string(o.uid())};
  });
  for (auto* i : {&templates_, &daemon_sets_, &pods_, &nodes_})
    (*i)->add_indexer(kDomainIndex, domain_label_index);
  add_informer_handlers();
}

Controller::~Controller() = default;

void Controller::add_informer_handlers() {
  auto domain_key = [this](const k8s::ObjectPtr& o) { queue_.add(std::string(o->key())); };
  domains_->add_handlers({domain_key, [domain_key](const auto&, const auto& n) { domain_key(n); },
                          [this, domain_key](const k8s::ObjectPtr& o) {
                            domain_key(o);
                            sweep_requested_ = true;
                          }});
  // Objects of a domain: its key, after the coalescing delay.
  auto owned = [this](const k8s::ObjectPtr& o) {
    if (auto uid = o->label(kDomainLabel)) enqueue_domain_uid(*uid, true);
  };
  for (auto* i : {&templates_, &daemon_sets_, &pods_}) {
    (*i)->add_handlers({owned, [owned](const auto&, const auto& n) { owned(n); }, owned});
  }
  // Devices and allocations change the placement inventory: domains waiting for room look again.
  auto inventory = [this](const k8s::ObjectPtr&) {
    inventory_dirty_ = true;
    enqueue_waiting();
  };
  for (auto* i : {&slices_, &claims_})
    (*i)->add_handlers(
        {inventory, [inventory](const auto&, const auto& n) { inventory(n); }, inventory});
}

void Controller::enqueue_domain_uid(std::string_view uid, bool coalesce) {
  for (const auto& d : domains_->store().by_index(kUidIndex, std::string(uid))) {
    if (coalesce)
      queue_.add_after(std::string(d->key()), opt_.coalesce);
    else
      queue_.add(std::string(d->key()));
  }
}

void Controller::enqueue_waiting() {
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mu_);
    for (const auto& [uid, d] : state_)
      if (d->waiting) keys.push_back(d->key);
  }
  for (const auto& k : keys)
    queue_.add_after(k, opt_.coalesce);
}

bool Controller::all_synced() const {
  for (const auto* i : {&domains_, &templates_, &daemon_sets_, &pods_, &nodes_, &slices_, &claims_})
    if (!(*i)->has_synced()) return false;
  return true;
}

void Controller::spawn_child(net::any_io_executor ex, awaitable<void> task) {
  ++children_;
  net::co_spawn(ex, child(std::move(task)), net::detached);
}

awaitable<void> Controller::child(awaitable<void> task) {
  co_await std::move(task);
  --children_;
}

awaitable<void> Controller::run(Cancellation* cancel) {
  auto ex = co_await net::this_coro::executor;
  for (auto* i : {&domains_, &templates_, &daemon_sets_, &pods_, &nodes_, &slices_, &claims_})
    spawn_child(ex, k8s::run_informer(*i, cancel));
  while (!all_synced()) {
    if (!co_await sleep_for(std::chrono::milliseconds(20), cancel)) break;
  }
  if (!cancel->cancelled()) {
    synced_ = true;
    NVDRA_INFO("caches synced: {} ComputeDomains", domains_->store().size());
    co_await sweep_orphans();
    spawn_child(ex, housekeeping(cancel));
    for (int i = 0; i < opt_.workers; ++i)
      spawn_child(ex, worker(cancel));
  }
  while (!cancel->cancelled())
    co_await sleep_for(std::chrono::seconds(3600), cancel);
  co_await queue_.shut_down_with_drain();
  // Informers, workers and housekeeping hold this object and `cancel`: wait for them to end.
  while (children_ > 0)
    co_await sleep_for(std::chrono::milliseconds(5));
  NVDRA_INFO("controller stopped: work queue drained");
}

awaitable<void> Controller::housekeeping(Cancellation* cancel) {
  auto next_sweep = std::chrono::steady_clock::now() + opt_.sweep_period;
  while (co_await sleep_for(std::chrono::milliseconds(500), cancel)) {
    m_->queue_depth.Set(static_cast<double>(queue_.len() + queue_.waiting_len()));
    const auto wait = queue_.oldest_wait();
    m_->queue_wait.Set(wait ? std::chrono::duration<double>(*wait).count() : 0);
    if (sweep_requested_.exchange(false) || std::chrono::steady_clock::now() >= next_sweep) {
      co_await sweep_orphans();
      next_sweep = std::chrono::steady_clock::now() + opt_.sweep_period;
    }
    int ready = 0, not_ready = 0;
    for (const auto& o : domains_->store().list()) {
      auto doc = o->doc();
      if (!doc) continue;
      const Value* st = json::find_path(*doc, {"status", "status"});
      (st && st->IsString() && std::string_view(st->GetString()) == "Ready" ? ready : not_ready)++;
    }
    for (auto* f : {&m_->domains, &m_->nvidia_domains}) {
      f->Add({{"status", "Ready"}}).Set(ready);
      f->Add({{"status", "NotReady"}}).Set(not_ready);
    }
    std::lock_guard lock(mu_);
    if (inventory_dirty_) refresh_inventory_locked();
  }
}

awaitable<void> Controller::worker(Cancellation* cancel) {
  (void)cancel;
  for (;;) {
    auto key = co_await queue_.get();
    if (!key) co_return;
    const auto start = std::chrono::steady_clock::now();
    Outcome out = co_await reconcile(*key);
    m_->reconcile_seconds.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    switch (out) {
      case Outcome::kDone:
        queue_.forget(*key);
        m_->reconciles.Add({{"result", "success"}}).Increment();
        break;
      case Outcome::kRequeue:
        queue_.forget(*key);
        queue_.add_after(*key, std::chrono::milliseconds(500));
        m_->reconciles.Add({{"result", "requeue"}}).Increment();
        break;
      case Outcome::kRetryLater:
        queue_.add_rate_limited(*key);
        m_->reconciles.Add({{"result", "error"}}).Increment();
        break;
    }
    queue_.done(*key);
  }
}

awaitable<Controller::Outcome> Controller::reconcile(std::string key) {
  k8s::ObjectPtr obj = domains_->store().get(key);
  if (!obj) {
    // Gone (its finalizer was removed, or it was never ours): drop what was kept for it.
    std::lock_guard lock(mu_);
    for (auto it = state_.begin(); it != state_.end(); ++it) {
      if (it->second->key != key) continue;
      placer_.release(it->first);
      state_.erase(it);
      break;
    }
    co_return Outcome::kDone;
  }
  auto doc = obj->doc();
  if (!doc) co_return Outcome::kDone;
  auto d = parse_domain(*doc);
  if (!d) {
    NVDRA_WARN("ComputeDomain {}: {}", key, d.error().message);
    co_return Outcome::kDone;
  }
  {
    std::lock_guard lock(mu_);
    auto& st = state_[d->uid];
    if (!st) st = std::make_unique<Domain>();
    st->key = key;
  }
  if (obj->being_deleted()) co_return co_await finalize(std::move(*d));
  co_return co_await reconcile_live(std::move(obj), std::move(*d));
}

awaitable<Controller::Outcome> Controller::reconcile_live(k8s::ObjectPtr obj, DomainSpec d) {
  auto doc = obj->doc();
  if (!doc) co_return Outcome::kDone;
  const std::string finalizer(kFinalizer);
  if (std::find(d.finalizers.begin(), d.finalizers.end(), finalizer) == d.finalizers.end()) {
    auto with = d.finalizers;
    with.push_back(finalizer);
    auto s = co_await set_finalizers(d, with);
    if (!s) {
      if (k8s::is_not_found(s.error())) co_return Outcome::kDone;
      if (k8s::is_conflict(s.error())) co_return Outcome::kRequeue;  // the informer catches up
      NVDRA_WARN("ComputeDomain {}/{}: adding the finalizer: {}", d.ns, d.name, s.error().message);
      co_return Outcome::kRetryLater;
    }
    // The write comes back through the informer and queues the domain again.
    co_return Outcome::kDone;
  }

  std::vector<Condition> conditions;
  std::optional<PlacementStatus> placement = parse_placement_status(*doc);
  bool retry = false;
  if (!d.invalid.empty()) {
    conditions.push_back({"Provisioned", "False", "InvalidSpec", d.invalid});
    conditions.push_back({"Placed", "False", "InvalidSpec", "the spec is invalid"});
  } else {
    // Daemon side first: a daemon must be able to start on every node a workload lands on.
    const std::string daemon_name = daemon_object_name(d.uid);
    const std::string daemon_key = k8s::object_key(opt_.daemon.ns, daemon_name);
    std::string failure;
    if (!templates_->store().get(daemon_key)) {
      auto ref = templates_ref().in_namespace(opt_.daemon.ns);
      auto body = daemon_template_json(d, opt_.daemon);
      if (auto s = co_await ensure_created(ref, body); !s) failure = s.error().message;
    }
    if (failure.empty() && !daemon_sets_->store().get(daemon_key)) {
      auto ref = daemon_sets_ref().in_namespace(opt_.daemon.ns);
      auto body = daemon_set_json(d, opt_.daemon);
      if (auto s = co_await ensure_created(ref, body); !s) failure = s.error().message;
    }
    // The workload template: created once, narrowed to the placement decided for it.
    const std::string workload_key = k8s::object_key(d.ns, d.template_name);
    k8s::ObjectPtr existing = templates_->store().get(workload_key);
    bool conflict = false, have_workload = false;
    if (!existing && failure.empty()) {
      auto tmpl_ref = templates_ref().in_namespace(d.ns).with_name(d.template_name);
      auto got = co_await client_->get(tmpl_ref);  // not ours (no label): not in the informer
      if (got) {
        existing = *got;
      } else if (!k8s::is_not_found(got.error())) {
        failure = got.error().message;
      }
    }
    if (existing && existing->label(kDomainLabel).value_or("") != d.uid) {
      conflict = true;
      conditions.push_back(
          {"Provisioned", "False", "TemplateConflict",
           fmt::format("ResourceClaimTemplate {}/{} already exists and belongs to {}", d.ns,
                       d.template_name,
                       existing->label(kDomainLabel) ? "another ComputeDomain" : "someone else")});
    } else if (!existing && failure.empty()) {
      auto decided = decide_placement(d, conditions);
      if (decided) {
        placement = decided;
        auto ref = templates_ref().in_namespace(d.ns);
        auto body = workload_template_json(d, decided->cliques);
        if (auto s = co_await ensure_created(ref, body); !s) failure = s.error().message;
        have_workload = failure.empty();
      }
    } else if (existing) {
      have_workload = true;
      conditions.push_back({"Placed", "True",
                            placement && !placement->cliques.empty() ? "Placed" : "Unconstrained",
                            placement ? placement->reason : "decided earlier"});
    }
    if (!failure.empty()) {
      NVDRA_WARN("ComputeDomain {}/{}: {}", d.ns, d.name, failure);
      conditions.push_back({"Provisioned", "False", "CreateFailed", failure});
      retry = true;
    } else if (!conflict) {
      if (have_workload)
        conditions.push_back({"Provisioned", "True", "Created",
                              "daemon ResourceClaimTemplate, DaemonSet and workload "
                              "ResourceClaimTemplate exist"});
      else
        conditions.push_back({"Provisioned", "False", "WaitingForPlacement",
                              "the workload ResourceClaimTemplate is created once the domain is "
                              "placed (see the Placed condition)"});
    }
  }

  // Status: rows from the daemon pods, global status as NVIDIA defines it.
  auto nodes = derive_nodes(daemon_pods(d.uid), clique_of_node(), parse_status_nodes(*doc));
  const bool ready = domain_ready(d, nodes);
  const auto ready_count =
      std::count_if(nodes.begin(), nodes.end(), [](const NodeStatus& n) { return n.ready; });
  conditions.push_back({"Ready", ready ? "True" : "False",
                        ready ? "DaemonsReady" : "DaemonsNotReady",
                        fmt::format("{} of {} IMEX daemons ready; numNodes {}", ready_count,
                                    nodes.size(), d.num_nodes)});
  const std::string now = k8s::format_micro_time(std::chrono::system_clock::now());
  const std::string wanted = status_json(*doc, d, nodes, placement, conditions, now);
  auto wanted_doc = json::parse(wanted);
  const Value* current = json::find(*doc, "status");
  // Compared without the timestamps set_condition had to invent for new conditions.
  if (!wanted_doc || !current || !(*current == *wanted_doc)) {
    // Built before the co_await: GCC 12 destroys a conditional's temporary twice inside one.
    std::string patch =
        wanted_doc ? status_patch(current, *wanted_doc) : "{\"status\":" + wanted + "}";
    auto s = co_await write_status(d, std::move(patch));
    m_->status_writes.Add({{"result", s ? "success" : "error"}}).Increment();
    if (!s && !k8s::is_not_found(s.error())) {
      NVDRA_WARN("ComputeDomain {}/{}: writing status: {}", d.ns, d.name, s.error().message);
      co_return Outcome::kRetryLater;
    }
    bool record_ready = false;
    {
      std::lock_guard lock(mu_);
      auto& st = *state_.at(d.uid);
      record_ready = ready && !st.ready_recorded;
      if (ready) st.ready_recorded = true;
    }
    if (record_ready) {
      if (auto created = k8s::parse_time(d.creation_timestamp))
        m_->time_to_ready.Observe(
            std::chrono::duration<double>(std::chrono::system_clock::now() - *created).count());
      NVDRA_INFO("ComputeDomain {}/{} is Ready ({} nodes)", d.ns, d.name, nodes.size());
    }
  }
  // One Warning per distinct problem (the recorder folds repeats, this avoids even asking).
  std::string warning;
  for (const auto& c : conditions)
    if (c.status == "False" && c.type != "Ready" && c.reason != "WaitingForPlacement")
      warning = c.reason + ": " + c.message;
  bool send = false;
  {
    std::lock_guard lock(mu_);
    auto& st = *state_.at(d.uid);
    send = !warning.empty() && warning != st.last_warning;
    st.last_warning = warning;
  }
  if (send) {
    const auto colon = warning.find(':');
    co_await event(d, "Warning", warning.substr(0, colon), warning.substr(colon + 2));
  }
  co_return retry ? Outcome::kRetryLater : Outcome::kDone;
}

std::optional<PlacementStatus> Controller::decide_placement(const DomainSpec& d,
                                                            std::vector<Condition>& conditions) {
  std::lock_guard lock(mu_);
  if (inventory_dirty_) refresh_inventory_locked();
  auto& st = *state_.at(d.uid);
  placement::Request r{d.uid, d.num_nodes, d.gpus_per_node, d.policy};
  const auto start = std::chrono::steady_clock::now();
  placement::Decision dec = placer_.place(r);
  m_->placement_seconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  PlacementStatus out;
  const char* result = "placed";
  switch (dec.kind) {
    case placement::Decision::Kind::kPlaced:
      out.cliques = dec.cliques;
      out.reason = dec.cliques.size() == 1
                       ? fmt::format("{} nodes in clique {}", dec.nodes.size(), dec.cliques[0])
                       : fmt::format("{} nodes over {} cliques (no single clique had room)",
                                     dec.nodes.size(), dec.cliques.size());
      if (dec.cliques.size() > 1) result = "spread";
      conditions.push_back({"Placed", "True", "Placed", out.reason});
      break;
    case placement::Decision::Kind::kUnconstrained:
      out.reason = dec.reason;
      result = "unconstrained";
      conditions.push_back({"Placed", "True", "Unconstrained", dec.reason});
      break;
    case placement::Decision::Kind::kWait:
    case placement::Decision::Kind::kInvalid:
      placer_.release(d.uid);
      if (d.policy == placement::Policy::kPreferSingleClique &&
          dec.kind == placement::Decision::Kind::kWait) {
        // Preferred, not required: without room the scheduler places the pods on any nodes.
        out.reason = "no clique had room (" + dec.reason + "); nodes left to the scheduler";
        result = "unconstrained";
        conditions.push_back({"Placed", "True", "NoRoom", out.reason});
        break;
      }
      result = dec.kind == placement::Decision::Kind::kWait ? "wait" : "invalid";
      st.waiting = dec.kind == placement::Decision::Kind::kWait;
      conditions.push_back(
          {"Placed", "False",
           dec.kind == placement::Decision::Kind::kWait ? "WaitingForRoom" : "CannotFit",
           dec.reason});
      m_->decisions.Add({{"result", result}}).Increment();
      return std::nullopt;
  }
  st.waiting = false;
  st.decision = dec;
  m_->decisions.Add({{"result", result}}).Increment();
  NVDRA_INFO("ComputeDomain {}/{} ({} nodes, {}): {}", d.ns, d.name, d.num_nodes,
             policy_name(d.policy), out.reason);
  return out;
}

void Controller::refresh_inventory_locked() {
  inventory_dirty_ = false;
  std::map<std::string, std::string> clique;  // node → clique ("" without fabric)
  std::map<std::string, int> gpus, used;
  std::set<std::string> busy;  // nodes whose IMEX channel is allocated
  for (const auto& s : slices_->store().list()) {
    auto doc = s->doc();
    if (!doc) continue;
    const Value* spec = json::find(*doc, "spec");
    if (!spec) continue;
    const std::string driver(json::string_or(*spec, "driver"));
    const std::string node(json::string_or(*spec, "nodeName"));
    const Value* devices = json::find(*spec, "devices");
    if (node.empty() || !devices || !devices->IsArray()) continue;
    for (const auto& dev : devices->GetArray()) {
      const Value* attrs = json::find(dev, "attributes");
      auto attr = [&](const char* name) -> std::string {
        const Value* a = attrs ? json::find(*attrs, name) : nullptr;
        return a ? std::string(json::string_or(*a, "string")) : "";
      };
      if (driver == kDriver && attr("type") == "channel") clique[node] = attr("cliqueID");
      if (driver == "gpu.nvidia.com" && attr("type") == "gpu") ++gpus[node];
    }
  }
  for (const auto& c : claims_->store().list()) {
    auto doc = c->doc();
    if (!doc) continue;
    const Value* results = json::find_path(*doc, {"status", "allocation", "devices", "results"});
    if (!results || !results->IsArray()) continue;
    for (const auto& r : results->GetArray()) {
      const std::string_view driver = json::string_or(r, "driver");
      const std::string pool(json::string_or(r, "pool"));
      const std::string_view device = json::string_or(r, "device");
      if (driver == kDriver && device.starts_with("channel")) busy.insert(pool);
      if (driver == "gpu.nvidia.com" && device.starts_with("gpu-") &&
          device.find("-mig-") == std::string_view::npos)
        ++used[pool];
    }
  }
  for (auto it = node_clique_.begin(); it != node_clique_.end(); ++it)
    if (!clique.contains(it->first)) placer_.remove_node(it->first);
  // A node's clique shows in its daemon's status row; rows written before the node's slice was
  // seen need that again (rare: nodes joining, leaving or changing fabric).
  if (clique != node_clique_) {
    for (const auto& d : domains_->store().list())
      queue_.add(std::string(d->key()));
  }
  for (const auto& [node, cl] : clique) {
    if (cl.empty()) continue;
    const int free = busy.contains(node) ? 0 : std::max(0, gpus[node] - used[node]);
    placer_.set_node(node, cl, free);
  }
  node_clique_ = std::move(clique);
  for (const auto& [name, s] : placer_.stats())
    m_->clique_free.Add({{"clique", name}}).Set(s.free_nodes);
  m_->fragmentation.Set(placer_.fragmentation());
}

std::map<std::string, std::string> Controller::clique_of_node() {
  std::lock_guard lock(mu_);
  if (inventory_dirty_) refresh_inventory_locked();
  return node_clique_;
}

std::vector<DaemonPod> Controller::daemon_pods(const std::string& uid) const {
  std::vector<DaemonPod> out;
  for (const auto& p : pods_->store().by_index(kDomainIndex, uid)) {
    if (p->being_deleted()) continue;  // leaving: its node drops out of the domain
    auto doc = p->doc();
    if (!doc) continue;
    const Value* spec = json::find(*doc, "spec");
    const Value* st = json::find(*doc, "status");
    if (!spec || !st) continue;
    const std::string_view phase = json::string_or(*st, "phase");
    if (phase == "Succeeded" || phase == "Failed") continue;
    out.push_back({std::string(json::string_or(*spec, "nodeName")),
                   std::string(json::string_or(*st, "podIP")), pod_ready(*doc)});
  }
  return out;
}

awaitable<Controller::Outcome> Controller::finalize(DomainSpec d) {
  const std::string finalizer(kFinalizer);
  if (std::find(d.finalizers.begin(), d.finalizers.end(), finalizer) == d.finalizers.end())
    co_return Outcome::kDone;  // not ours to finish
  // Owned objects first (the workload template, then the daemon side), then node labels.
  bool left = false;
  for (const auto& t : templates_->store().by_index(kDomainIndex, d.uid)) {
    left = true;
    auto ref = templates_ref()
                   .in_namespace(std::string(t->namespace_()))
                   .with_name(std::string(t->name()));
    if (auto s = co_await delete_object(ref, d.uid); !s) co_return Outcome::kRetryLater;
  }
  for (const auto& ds : daemon_sets_->store().by_index(kDomainIndex, d.uid)) {
    left = true;
    auto ref = daemon_sets_ref()
                   .in_namespace(std::string(ds->namespace_()))
                   .with_name(std::string(ds->name()));
    if (auto s = co_await delete_object(ref, d.uid); !s) co_return Outcome::kRetryLater;
  }
  for (const auto& n : nodes_->store().by_index(kDomainIndex, d.uid)) {
    left = true;
    if (auto s = co_await unlabel_node(std::string(n->name()), d.uid); !s)
      co_return Outcome::kRetryLater;
  }
  // Finished only once the informers have seen all of it go.
  if (left) co_return Outcome::kRequeue;
  auto rest = d.finalizers;
  std::erase(rest, finalizer);
  auto s = co_await set_finalizers(d, rest);
  if (!s && !k8s::is_not_found(s.error())) {
    if (k8s::is_conflict(s.error())) co_return Outcome::kRequeue;
    NVDRA_WARN("ComputeDomain {}/{}: removing the finalizer: {}", d.ns, d.name, s.error().message);
    co_return Outcome::kRetryLater;
  }
  NVDRA_INFO("ComputeDomain {}/{} deleted: its objects and node labels are gone", d.ns, d.name);
  std::lock_guard lock(mu_);
  placer_.release(d.uid);
  state_.erase(d.uid);
  co_return Outcome::kDone;
}

awaitable<void> Controller::sweep_orphans() {
  // Anything labelled for a domain UID that no ComputeDomain has any more.
  auto orphan = [this](const k8s::ObjectPtr& o) {
    auto uid = o->label(kDomainLabel);
    return uid && domains_->store().by_index(kUidIndex, std::string(*uid)).empty();
  };
  int removed = 0;
  for (const auto& t : templates_->store().list()) {
    if (!orphan(t)) continue;
    auto ref = templates_ref()
                   .in_namespace(std::string(t->namespace_()))
                   .with_name(std::string(t->name()));
    const std::string uid(*t->label(kDomainLabel));
    if (co_await delete_object(ref, uid)) ++removed;
  }
  for (const auto& ds : daemon_sets_->store().list()) {
    if (!orphan(ds)) continue;
    auto ref = daemon_sets_ref()
                   .in_namespace(std::string(ds->namespace_()))
                   .with_name(std::string(ds->name()));
    const std::string uid(*ds->label(kDomainLabel));
    if (co_await delete_object(ref, uid)) ++removed;
  }
  for (const auto& n : nodes_->store().list()) {
    if (!orphan(n)) continue;
    const std::string uid(*n->label(kDomainLabel));
    if (co_await unlabel_node(std::string(n->name()), uid)) ++removed;
  }
  if (removed > 0)
    NVDRA_INFO("orphan sweep: removed {} objects or labels of deleted domains", removed);
}

awaitable<Status> Controller::ensure_created(k8s::ResourceRef ref, std::string body) {
  k8s::WriteOptions w;
  w.field_manager = "nvdra-controller";
  auto r = co_await client_->create(ref, std::move(body), w);
  if (!r && !k8s::is_already_exists(r.error())) co_return unexpected(r.error());
  co_return ok();
}

awaitable<Status> Controller::delete_object(k8s::ResourceRef ref, std::string uid) {
  // Only what still carries this domain's label: a name reused since is someone else's.
  auto got = co_await client_->get(ref);
  if (!got) {
    if (k8s::is_not_found(got.error())) co_return ok();
    co_return unexpected(got.error());
  }
  if ((*got)->label(kDomainLabel).value_or("") != uid) co_return ok();
  k8s::DeleteOptions o;
  o.propagation_policy = "Background";
  o.precondition_uid = std::string((*got)->uid());
  auto r = co_await client_->remove(ref, o);
  if (!r && !k8s::is_not_found(r.error()) && !k8s::is_conflict(r.error())) {
    NVDRA_WARN("deleting {}: {}", ref.path(), r.error().message);
    co_return unexpected(r.error());
  }
  co_return ok();
}

awaitable<Status> Controller::unlabel_node(std::string node, std::string uid) {
  // The test makes it a no-op (422) when an agent has meanwhile labelled the node for another
  // domain: that label is not ours to remove.
  std::string key(kDomainLabel);
  std::string escaped;
  for (char c : key)
    escaped += c == '/' ? std::string("~1") : std::string(1, c);
  const std::string path = "/metadata/labels/" + escaped;
  auto body =
      fmt::format(R"([{{"op":"test","path":{0},"value":{1}}},{{"op":"remove","path":{0}}}])",
                  json::quote(path), json::quote(uid));
  auto ref = nodes_ref().with_name(node);
  auto r = co_await client_->patch(ref, k8s::PatchType::kJson, std::move(body));
  if (!r && !k8s::is_not_found(r.error()) && !k8s::is_invalid(r.error())) {
    NVDRA_WARN("removing label {} from node {}: {}", key, node, r.error().message);
    co_return unexpected(r.error());
  }
  if (r) NVDRA_V(1, "node {}: removed the label of deleted ComputeDomain {}", node, uid);
  co_return ok();
}

awaitable<Status> Controller::set_finalizers(DomainSpec d, std::vector<std::string> finalizers) {
  // resourceVersion makes the patch conditional: finalizers are edited on what was read.
  auto body = fmt::format(R"({{"metadata":{{"finalizers":{},"resourceVersion":{}}}}})",
                          json::quote_array(finalizers), json::quote(d.resource_version));
  auto ref = domains_ref().in_namespace(d.ns).with_name(d.name);
  auto r = co_await client_->patch(ref, k8s::PatchType::kMerge, std::move(body));
  if (!r) co_return unexpected(r.error());
  co_return ok();
}

awaitable<Status> Controller::write_status(DomainSpec d, std::string patch) {
  // A merge patch of the whole status: the controller is its only writer, so there is nothing to
  // merge with and no conflict to retry.
  auto ref = domains_ref().in_namespace(d.ns).with_name(d.name).sub("status");
  auto r = co_await client_->patch(ref, k8s::PatchType::kMerge, std::move(patch));
  if (!r) co_return unexpected(r.error());
  co_return ok();
}

awaitable<void> Controller::event(DomainSpec d, std::string type, std::string reason,
                                  std::string note) {
  k8s::ObjectReference ref{"ComputeDomain", "resource.nvidia.com/v1beta1", d.ns, d.name, d.uid};
  std::string action = "Reconcile";
  auto s = co_await events_.record(ref, type, reason, action, note);
  if (!s) NVDRA_V(1, "event for ComputeDomain {}/{}: {}", d.ns, d.name, s.error().message);
}

}  // namespace nvdra::controller
