// Clique placement for ComputeDomains, a pure library (no I/O): an inventory of NVLink cliques and
// their nodes' free GPUs, and for each domain of N nodes the clique that fits it best — the
// tightest fit, then the least fragmentation — with the chosen nodes reserved so concurrent
// domains never pick the same room. The controller feeds it from ResourceSlices and allocations
// and turns a decision into a CEL selector on the cliqueID attribute.
#pragma once

#include <array>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace nvdra::placement {

enum class Policy { kPreferSingleClique, kSingleClique, kNone };

struct Request {
  std::string domain;  // a ComputeDomain UID
  int num_nodes = 0;
  int gpus_per_node = 1;
  Policy policy = Policy::kPreferSingleClique;
};

struct Decision {
  enum class Kind {
    kPlaced,         // nodes reserved in `cliques`
    kWait,           // no room now (SingleClique, or too few free nodes anywhere)
    kUnconstrained,  // policy None, or a size of 0: the scheduler decides alone
    kInvalid,        // can never fit (more nodes than any clique under SingleClique, …)
  };
  Kind kind = Kind::kWait;
  std::vector<std::string> cliques;  // fewest first; one for a single-clique placement
  std::vector<std::string> nodes;
  std::string reason;  // why it waits or is invalid, for a condition and an Event
};

struct CliqueStats {
  int nodes = 0;
  int free_nodes = 0;  // nodes with a free GPU and no reservation
  int reserved_nodes = 0;
};

class Placer {
 public:
  // A node's place and free GPUs (after allocations); call again when they change.
  void set_node(const std::string& node, const std::string& clique, int free_gpus);
  void remove_node(const std::string& node);

  // Places `r`, reserving its nodes. Asking again for a placed domain returns its decision.
  Decision place(const Request& r);
  void release(const std::string& domain);

  std::map<std::string, CliqueStats> stats() const;
  // 0 when every free node sits in one clique, towards 1 as free nodes scatter over cliques:
  // 1 - (largest clique's free nodes / all free nodes).
  double fragmentation() const;
  // The domain holding a node's reservation, or "".
  std::string reserved_by(const std::string& node) const;

 private:
  struct Node {
    std::string clique;
    int free_gpus = 0;
    std::string domain;  // reservation
  };
  std::vector<std::string> eligible(const std::string& clique, int gpus) const;
  int eligible_count(const std::string& clique, int gpus) const;
  void count(const Node& n, int delta);  // keeps free_ in step with unreserved nodes

  static constexpr int kBuckets = 17;  // free GPUs 0..15, and 16 or more

  std::map<std::string, Node> nodes_;
  std::map<std::string, std::set<std::string>> cliques_;  // clique → nodes
  std::map<std::string, Decision> placed_;                // by domain
  // Unreserved nodes per clique by free GPUs, so a decision looks at counts, not nodes.
  std::map<std::string, std::array<int, kBuckets>> free_;
};

}  // namespace nvdra::placement
