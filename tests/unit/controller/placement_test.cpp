#include "controller/placement/placement.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace nvdra::placement {
namespace {

using Kind = Decision::Kind;

// Cliques "a", "b", … with the given node counts, every node with 4 free GPUs.
Placer cluster(const std::vector<int>& sizes) {
  Placer p;
  for (size_t c = 0; c < sizes.size(); ++c) {
    const std::string clique(1, static_cast<char>('a' + c));
    for (int n = 0; n < sizes[c]; ++n)
      p.set_node(clique + "-" + std::to_string(n), clique, 4);
  }
  return p;
}

TEST(Placement, TightestFittingClique) {
  Placer p = cluster({18, 6, 8});
  auto d = p.place({"cd1", 5});
  ASSERT_EQ(d.kind, Kind::kPlaced);
  EXPECT_EQ(d.cliques, std::vector<std::string>{"b"});  // 6 free: the tightest fit for 5
  EXPECT_EQ(d.nodes.size(), 5u);
  auto e = p.place({"cd2", 8});
  EXPECT_EQ(e.cliques, std::vector<std::string>{"c"});
  auto f = p.place({"cd3", 2});  // b has 1 left, c none: a
  EXPECT_EQ(f.cliques, std::vector<std::string>{"a"});
}

TEST(Placement, TiesGoToTheSmallerCliqueThenByName) {
  Placer p = cluster({8, 4, 4});
  EXPECT_EQ(p.place({"x", 4}).cliques, std::vector<std::string>{"b"});
  EXPECT_EQ(p.place({"y", 4}).cliques, std::vector<std::string>{"c"});
  EXPECT_EQ(p.place({"z", 4}).cliques, std::vector<std::string>{"a"});
}

TEST(Placement, ReservationsKeepConcurrentDomainsApart) {
  Placer p = cluster({4});
  auto d1 = p.place({"cd1", 3});
  ASSERT_EQ(d1.kind, Kind::kPlaced);
  auto d2 = p.place({"cd2", 3, 1, Policy::kSingleClique});
  EXPECT_EQ(d2.kind, Kind::kWait);
  EXPECT_NE(d2.reason.find("no NVLink clique has 3 nodes"), std::string::npos);
  EXPECT_EQ(p.place({"cd1", 3}).nodes, d1.nodes);  // asking again: the same answer
  for (const auto& n : d1.nodes)
    EXPECT_EQ(p.reserved_by(n), "cd1");
  p.release("cd1");
  EXPECT_EQ(p.place({"cd2", 3, 1, Policy::kSingleClique}).kind, Kind::kPlaced);
}

TEST(Placement, PreferSingleCliqueSpreadsOverTheFewestCliques) {
  Placer p = cluster({4, 6, 2});
  auto d = p.place({"big", 9});
  ASSERT_EQ(d.kind, Kind::kPlaced);
  EXPECT_EQ(d.cliques, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(d.nodes.size(), 9u);
  auto none = p.place({"more", 4});
  EXPECT_EQ(none.kind, Kind::kWait);
  EXPECT_EQ(none.reason, "only 3 of 4 nodes have 1 free GPU(s); waiting for room");
}

TEST(Placement, BadInputAndOtherPolicies) {
  Placer p = cluster({18, 18});
  auto too_big = p.place({"cd", 19, 1, Policy::kSingleClique});
  EXPECT_EQ(too_big.kind, Kind::kInvalid);
  EXPECT_EQ(too_big.reason,
            "numNodes 19 is larger than any NVLink clique (the largest has 18 nodes)");
  EXPECT_EQ(p.place({"neg", -1}).kind, Kind::kInvalid);
  EXPECT_EQ(p.place({"zero", 0}).kind, Kind::kUnconstrained);
  EXPECT_EQ(p.place({"free", 4, 1, Policy::kNone}).kind, Kind::kUnconstrained);
  EXPECT_EQ(p.stats().at("a").reserved_nodes, 0);
}

TEST(Placement, GpusPerNodeAndFragmentation) {
  Placer p;
  p.set_node("a-0", "a", 4);
  p.set_node("a-1", "a", 1);
  p.set_node("b-0", "b", 4);
  p.set_node("b-1", "b", 4);
  p.set_node("c-0", "c", 0);                 // full
  EXPECT_DOUBLE_EQ(p.fragmentation(), 0.5);  // 4 free nodes, at most 2 in one clique
  auto d = p.place({"cd", 2, 4});
  EXPECT_EQ(d.cliques, std::vector<std::string>{"b"});  // a has one node with 4 free GPUs
  EXPECT_DOUBLE_EQ(p.fragmentation(), 0.0);             // what is left is all in a
  auto stats = p.stats();
  EXPECT_EQ(stats.at("b").reserved_nodes, 2);
  EXPECT_EQ(stats.at("c").free_nodes, 0);
  p.remove_node("a-1");
  EXPECT_EQ(p.stats().at("a").nodes, 1);
}

// Random clusters and domains arriving and leaving: a node is never reserved twice, a placement
// has exactly the nodes asked for, each with the GPUs asked for, and a single-clique placement
// stays in its clique.
TEST(Placement, PropertyNeverDoubleBooksOrExceedsCapacity) {
  std::mt19937 rng(20261125);
  for (int round = 0; round < 50; ++round) {
    Placer p;
    std::map<std::string, std::pair<std::string, int>> nodes;  // name → clique, free GPUs
    const int cliques = 1 + static_cast<int>(rng() % 6);
    for (int c = 0; c < cliques; ++c) {
      const int size = 1 + static_cast<int>(rng() % 18);
      for (int n = 0; n < size; ++n) {
        const std::string name = "c" + std::to_string(c) + "-" + std::to_string(n);
        nodes[name] = {"c" + std::to_string(c), static_cast<int>(rng() % 5)};
        p.set_node(name, nodes[name].first, nodes[name].second);
      }
    }
    std::map<std::string, Decision> live;
    for (int step = 0; step < 40; ++step) {
      if (!live.empty() && rng() % 3 == 0) {
        auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
        p.release(it->first);
        live.erase(it);
        continue;
      }
      const std::string domain = "d" + std::to_string(round) + "-" + std::to_string(step);
      const Request r{domain, 1 + static_cast<int>(rng() % 10), 1 + static_cast<int>(rng() % 4),
                      rng() % 2 ? Policy::kSingleClique : Policy::kPreferSingleClique};
      const Decision d = p.place(r);
      if (d.kind != Kind::kPlaced) continue;
      ASSERT_EQ(d.nodes.size(), static_cast<size_t>(r.num_nodes));
      std::set<std::string> in_cliques(d.cliques.begin(), d.cliques.end());
      if (r.policy == Policy::kSingleClique) {
        ASSERT_EQ(d.cliques.size(), 1u);
      }
      for (const auto& n : d.nodes) {
        ASSERT_GE(nodes.at(n).second, r.gpus_per_node);
        ASSERT_TRUE(in_cliques.contains(nodes.at(n).first));
        ASSERT_EQ(p.reserved_by(n), domain);
      }
      live[domain] = d;
      std::set<std::string> seen;
      for (const auto& [dom, dec] : live) {
        for (const auto& n : dec.nodes) {
          ASSERT_TRUE(seen.insert(n).second) << n << " booked twice";
        }
      }
      for (const auto& [clique, s] : p.stats())
        ASSERT_LE(s.reserved_nodes, s.nodes);
    }
  }
}

}  // namespace
}  // namespace nvdra::placement
