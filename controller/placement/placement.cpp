#include "controller/placement/placement.h"

#include <algorithm>
#include <tuple>

namespace nvdra::placement {

void Placer::count(const Node& n, int delta) {
  if (n.clique.empty() || !n.domain.empty()) return;
  free_[n.clique][std::clamp(n.free_gpus, 0, kBuckets - 1)] += delta;
}

void Placer::set_node(const std::string& node, const std::string& clique, int free_gpus) {
  auto& n = nodes_[node];
  count(n, -1);
  if (n.clique != clique) {
    if (!n.clique.empty()) cliques_[n.clique].erase(node);
    n.clique = clique;
  }
  if (!clique.empty()) cliques_[clique].insert(node);
  n.free_gpus = free_gpus;
  count(n, +1);
}

void Placer::remove_node(const std::string& node) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return;
  count(it->second, -1);
  if (!it->second.clique.empty()) cliques_[it->second.clique].erase(node);
  nodes_.erase(it);
}

int Placer::eligible_count(const std::string& clique, int gpus) const {
  auto it = free_.find(clique);
  if (it == free_.end()) return 0;
  int n = 0;
  for (int b = std::clamp(gpus, 0, kBuckets - 1); b < kBuckets; ++b)
    n += it->second[b];
  return n;
}

std::vector<std::string> Placer::eligible(const std::string& clique, int gpus) const {
  std::vector<std::string> out;
  auto c = cliques_.find(clique);
  if (c == cliques_.end()) return out;
  for (const auto& name : c->second) {
    const Node& n = nodes_.at(name);
    if (n.domain.empty() && n.free_gpus >= gpus) out.push_back(name);
  }
  // Tightest nodes first: keep nodes with more free GPUs for bigger requests.
  std::stable_sort(out.begin(), out.end(), [&](const std::string& a, const std::string& b) {
    return nodes_.at(a).free_gpus < nodes_.at(b).free_gpus;
  });
  return out;
}

Decision Placer::place(const Request& r) {
  if (auto it = placed_.find(r.domain); it != placed_.end()) return it->second;
  Decision d;
  if (r.policy == Policy::kNone || r.num_nodes == 0) {
    d.kind = Decision::Kind::kUnconstrained;
    d.reason = r.policy == Policy::kNone ? "placement policy None" : "numNodes is 0";
    return d;
  }
  if (r.num_nodes < 0 || r.gpus_per_node < 1) {
    d.kind = Decision::Kind::kInvalid;
    d.reason = "numNodes must not be negative and gpusPerNode must be at least 1";
    return d;
  }
  size_t largest = 0;
  for (const auto& [id, members] : cliques_)
    largest = std::max(largest, members.size());
  const size_t want = static_cast<size_t>(r.num_nodes);
  // Single clique: the tightest fit, then the clique left least scattered (fewest nodes), then
  // by name for a stable answer. Counts only; nodes are listed for the chosen clique alone.
  std::vector<std::pair<size_t, std::string>> room;  // (eligible nodes, clique)
  for (const auto& [id, members] : cliques_) {
    const int e = eligible_count(id, r.gpus_per_node);
    if (e > 0) room.emplace_back(static_cast<size_t>(e), id);
  }
  const std::pair<size_t, std::string>* best = nullptr;
  for (const auto& c : room) {
    if (c.first < want) continue;
    if (!best || std::tuple(c.first, cliques_.at(c.second).size(), c.second) <
                     std::tuple(best->first, cliques_.at(best->second).size(), best->second))
      best = &c;
  }
  if (best) {
    d.kind = Decision::Kind::kPlaced;
    d.cliques = {best->second};
    auto nodes = eligible(best->second, r.gpus_per_node);
    if (nodes.size() < want) {  // counts and nodes disagree: a bug, answered without a crash
      d.kind = Decision::Kind::kWait;
      d.reason = "internal error: the free-node count of clique " + best->second + " is stale";
      return d;
    }
    d.nodes.assign(nodes.begin(), nodes.begin() + static_cast<std::ptrdiff_t>(want));
  } else if (r.policy == Policy::kSingleClique) {
    if (want > largest) {
      d.kind = Decision::Kind::kInvalid;
      d.reason = "numNodes " + std::to_string(want) +
                 " is larger than any NVLink clique (the largest has " + std::to_string(largest) +
                 " nodes)";
    } else {
      d.kind = Decision::Kind::kWait;
      d.reason = "no NVLink clique has " + std::to_string(want) + " nodes with " +
                 std::to_string(r.gpus_per_node) + " free GPU(s); waiting for room";
    }
    return d;
  } else {
    // Spread over the fewest cliques: the ones with most room first (by name among equals).
    std::stable_sort(room.begin(), room.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    size_t have = 0;
    for (const auto& [n, clique] : room) {
      if (have >= want) break;
      d.cliques.push_back(clique);
      for (const auto& node : eligible(clique, r.gpus_per_node)) {
        if (have == want) break;
        d.nodes.push_back(node);
        ++have;
      }
    }
    if (have < want) {
      d = Decision{};
      d.kind = Decision::Kind::kWait;
      d.reason = "only " + std::to_string(have) + " of " + std::to_string(want) + " nodes have " +
                 std::to_string(r.gpus_per_node) + " free GPU(s); waiting for room";
      return d;
    }
    d.kind = Decision::Kind::kPlaced;
  }
  for (const auto& n : d.nodes) {
    Node& node = nodes_[n];
    count(node, -1);
    node.domain = r.domain;
  }
  placed_[r.domain] = d;
  return d;
}

void Placer::release(const std::string& domain) {
  auto it = placed_.find(domain);
  if (it == placed_.end()) return;
  for (const auto& n : it->second.nodes) {
    auto node = nodes_.find(n);
    if (node != nodes_.end() && node->second.domain == domain) {
      node->second.domain.clear();
      count(node->second, +1);
    }
  }
  placed_.erase(it);
}

std::map<std::string, CliqueStats> Placer::stats() const {
  std::map<std::string, CliqueStats> out;
  for (const auto& [id, members] : cliques_) {
    auto& s = out[id];
    for (const auto& name : members) {
      const Node& n = nodes_.at(name);
      ++s.nodes;
      if (!n.domain.empty()) {
        ++s.reserved_nodes;
      } else if (n.free_gpus > 0) {
        ++s.free_nodes;
      }
    }
  }
  return out;
}

double Placer::fragmentation() const {
  int total = 0, largest = 0;
  for (const auto& [id, s] : stats()) {
    total += s.free_nodes;
    largest = std::max(largest, s.free_nodes);
  }
  return total == 0 ? 0.0 : 1.0 - static_cast<double>(largest) / total;
}

std::string Placer::reserved_by(const std::string& node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? std::string() : it->second.domain;
}

}  // namespace nvdra::placement
