// ComputeDomain placement quality and speed. A random arrival/departure trace of domains (2–18
// nodes, whole NVL72 nodes of 4 GPUs) runs over 8 and 64 racks of 18 nodes with four policies in
// the same run: nvdra's PreferSingleClique and SingleClique (controller/placement), first-fit (the
// first rack with room, else the first free nodes) and None (any free nodes, as scheduling
// without placement gives). Printed: the share of domains that got a single NVLink clique, node
// utilization, and mean waiting time. Then decisions per second on a 5,000-node inventory.
// Usage: bench_placement [steps]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "controller/placement/placement.h"

using namespace nvdra::placement;

namespace {

constexpr int kRackNodes = 18;

struct Job {
  std::string id;
  int nodes;
  int duration;
  int arrived;
};

// The trace: the same jobs for every policy.
std::vector<std::vector<Job>> make_trace(int steps, int racks, unsigned seed) {
  std::mt19937 rng(seed);
  const int sizes[] = {2, 2, 4, 4, 4, 8, 8, 16, 18};
  std::vector<std::vector<Job>> out(steps);
  int n = 0;
  // Arrivals keep the cluster around 85 % busy: nodes per step ≈ load × capacity / duration.
  const double mean_nodes = 7.3, mean_duration = 30;
  const double rate = 0.85 * racks * kRackNodes / (mean_nodes * mean_duration);
  std::poisson_distribution<int> arrivals(rate);
  for (int t = 0; t < steps; ++t) {
    for (int k = arrivals(rng); k > 0; --k)
      out[t].push_back({"j" + std::to_string(n++), sizes[rng() % 9], 10 + static_cast<int>(rng() % 41), t});
  }
  return out;
}

struct Result {
  int placed = 0, single = 0;
  double utilization = 0, wait = 0;
};

// A policy: place(job) → nodes (empty = wait), release(job).
class Baseline {
 public:
  Baseline(int racks, bool first_fit, unsigned seed) : first_fit_(first_fit), rng_(seed) {
    for (int r = 0; r < racks; ++r)
      for (int n = 0; n < kRackNodes; ++n)
        free_[r].insert(n);
  }
  std::vector<std::pair<int, int>> place(const Job& j) {
    int total = 0;
    for (const auto& [r, f] : free_)
      total += static_cast<int>(f.size());
    if (total < j.nodes) return {};
    std::vector<std::pair<int, int>> out;
    if (first_fit_) {
      for (auto& [r, f] : free_) {
        if (static_cast<int>(f.size()) >= j.nodes) {
          for (int k = 0; k < j.nodes; ++k)
            out.emplace_back(r, *f.begin()), f.erase(f.begin());
          return out;
        }
      }
      for (auto& [r, f] : free_) {
        while (!f.empty() && static_cast<int>(out.size()) < j.nodes)
          out.emplace_back(r, *f.begin()), f.erase(f.begin());
      }
      return out;
    }
    std::vector<std::pair<int, int>> all;  // None: any free nodes
    for (const auto& [r, f] : free_)
      for (int n : f)
        all.emplace_back(r, n);
    std::shuffle(all.begin(), all.end(), rng_);
    all.resize(j.nodes);
    for (const auto& [r, n] : all)
      free_[r].erase(n);
    return all;
  }
  void release(const std::vector<std::pair<int, int>>& nodes) {
    for (const auto& [r, n] : nodes)
      free_[r].insert(n);
  }

 private:
  bool first_fit_;
  std::mt19937 rng_;
  std::map<int, std::set<int>> free_;
};

template <class PlaceFn, class ReleaseFn>
Result simulate(const std::vector<std::vector<Job>>& trace, int racks, PlaceFn place, ReleaseFn release) {
  Result res;
  std::deque<Job> queue;
  std::multimap<int, std::string> ends;
  long busy = 0, waited = 0;
  long used_node_steps = 0;
  for (int t = 0; t < static_cast<int>(trace.size()); ++t) {
    for (auto it = ends.begin(); it != ends.end() && it->first <= t;) {
      busy -= release(it->second);
      it = ends.erase(it);
    }
    for (const auto& j : trace[t])
      queue.push_back(j);
    // FIFO with backfill: a job that does not fit waits; later ones may go.
    for (auto it = queue.begin(); it != queue.end();) {
      auto cliques = place(*it);
      if (cliques < 0) {
        ++it;
        continue;
      }
      ++res.placed;
      res.single += cliques == 1;
      waited += t - it->arrived;
      busy += it->nodes;
      ends.emplace(t + it->duration, it->id);
      it = queue.erase(it);
    }
    used_node_steps += busy;
  }
  res.utilization = static_cast<double>(used_node_steps) / (static_cast<double>(trace.size()) * racks * kRackNodes);
  res.wait = res.placed ? static_cast<double>(waited) / res.placed : 0;
  return res;
}

Result run_placer(const std::vector<std::vector<Job>>& trace, int racks, Policy policy) {
  Placer p;
  for (int r = 0; r < racks; ++r)
    for (int n = 0; n < kRackNodes; ++n)
      p.set_node("r" + std::to_string(r) + "-" + std::to_string(n), "r" + std::to_string(r), 4);
  std::map<std::string, int> sizes;
  return simulate(
      trace, racks,
      [&](const Job& j) {
        const Decision d = p.place({j.id, j.nodes, 4, policy});
        if (d.kind != Decision::Kind::kPlaced) return -1;
        sizes[j.id] = j.nodes;
        return static_cast<int>(d.cliques.size());
      },
      [&](const std::string& id) {
        p.release(id);
        return sizes[id];
      });
}

Result run_baseline(const std::vector<std::vector<Job>>& trace, int racks, bool first_fit) {
  Baseline b(racks, first_fit, 7);
  std::map<std::string, std::vector<std::pair<int, int>>> held;
  return simulate(
      trace, racks,
      [&](const Job& j) {
        auto nodes = b.place(j);
        if (nodes.empty()) return -1;
        std::set<int> cliques;
        for (const auto& [r, n] : nodes)
          cliques.insert(r);
        held[j.id] = nodes;
        return static_cast<int>(cliques.size());
      },
      [&](const std::string& id) {
        const int n = static_cast<int>(held[id].size());
        b.release(held[id]);
        held.erase(id);
        return n;
      });
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 2000;
  std::printf("Placement on a random trace (%d steps, ~85%% offered load, domains of 2-18 nodes)\n", steps);
  std::printf("%-7s %-20s %10s %13s %12s %12s\n", "racks", "policy", "placed", "one clique", "node use", "mean wait");
  for (int racks : {8, 64}) {
    const auto trace = make_trace(steps, racks, 42);
    const std::pair<const char*, Result> rows[] = {
        {"PreferSingleClique", run_placer(trace, racks, Policy::kPreferSingleClique)},
        {"SingleClique", run_placer(trace, racks, Policy::kSingleClique)},
        {"first-fit", run_baseline(trace, racks, true)},
        {"None (no placement)", run_baseline(trace, racks, false)},
    };
    for (const auto& [name, r] : rows)
      std::printf("%-7d %-20s %10d %12.1f%% %11.1f%% %10.2f st\n", racks, name, r.placed,
                  100.0 * r.single / std::max(1, r.placed), 100.0 * r.utilization, r.wait);
  }
  // Decisions per second: 5,004 nodes (278 racks), place and release 8-node domains.
  Placer p;
  for (int r = 0; r < 278; ++r)
    for (int n = 0; n < kRackNodes; ++n)
      p.set_node("r" + std::to_string(r) + "-" + std::to_string(n), "r" + std::to_string(r), 4);
  const int decisions = 20000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < decisions; ++i) {
    const std::string id = "d" + std::to_string(i);
    (void)p.place({id, 8, 4, Policy::kPreferSingleClique});
    if (i >= 200) p.release("d" + std::to_string(i - 200));  // keep 200 domains placed
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("decisions on 5,004 nodes with 200 domains placed: %.0f /s (%.1f us each)\n", decisions / s,
              1e6 * s / decisions);
  return 0;
}
