#include "controller/compute_domain.h"

#include "base/json_patch.h"

#include <gtest/gtest.h>

namespace nvdra::controller {
namespace {

json::Document doc(std::string_view text) {
  auto d = json::parse(text);
  EXPECT_TRUE(d) << text;
  return std::move(*d);
}

DomainSpec spec(std::string_view body) {
  auto d = parse_domain(doc(body));
  EXPECT_TRUE(d);
  return *d;
}

constexpr std::string_view kDomain =
    R"({"metadata":{"name":"cd","namespace":"ns","uid":"u-1","resourceVersion":"7","generation":2,)"
    R"("finalizers":["x"]},"spec":{"numNodes":4,"channel":{"resourceClaimTemplate":{"name":"ch"}}}})";

TEST(ParseDomain, ReadsNvidiaFieldsWithDefaults) {
  DomainSpec d = spec(kDomain);
  EXPECT_EQ(d.name, "cd");
  EXPECT_EQ(d.ns, "ns");
  EXPECT_EQ(d.uid, "u-1");
  EXPECT_EQ(d.generation, 2);
  EXPECT_EQ(d.num_nodes, 4);
  EXPECT_EQ(d.template_name, "ch");
  EXPECT_EQ(d.allocation_mode, "");
  EXPECT_EQ(d.policy, placement::Policy::kPreferSingleClique);
  EXPECT_EQ(d.gpus_per_node, 1);
  EXPECT_EQ(d.finalizers, std::vector<std::string>{"x"});
  EXPECT_TRUE(d.invalid.empty());
}

TEST(ParseDomain, InvalidSpecsSayWhy) {
  auto with = [](std::string_view spec_json) {
    return spec(std::string(R"({"metadata":{"name":"cd","uid":"u"},"spec":)") +
                std::string(spec_json) + "}")
        .invalid;
  };
  EXPECT_EQ(with(R"({"channel":{}})"), "spec.channel.resourceClaimTemplate.name: Required value");
  EXPECT_EQ(with(R"({"numNodes":-1,"channel":{"resourceClaimTemplate":{"name":"c"}}})"),
            "spec.numNodes: must be a whole number of nodes, 0 or more");
  EXPECT_NE(with(R"({"channel":{"allocationMode":"Some","resourceClaimTemplate":{"name":"c"}}})")
                .find("Unsupported value: \"Some\""),
            std::string::npos);
  EXPECT_NE(
      with(R"({"placement":{"policy":"Best"},"channel":{"resourceClaimTemplate":{"name":"c"}}})")
          .find("spec.placement.policy"),
      std::string::npos);
  EXPECT_NE(
      with(R"({"placement":{"gpusPerNode":0},"channel":{"resourceClaimTemplate":{"name":"c"}}})")
          .find("gpusPerNode"),
      std::string::npos);
  EXPECT_FALSE(parse_domain(doc(R"({"metadata":{"name":"cd"}})")));  // no UID: not an object
}

TEST(Templates, WorkloadTemplateCarriesTheChannelRequestAndPlacement) {
  DomainSpec d = spec(kDomain);
  d.allocation_mode = "All";
  auto t = doc(workload_template_json(d, {"c.1"}));
  EXPECT_STREQ(t["metadata"]["name"].GetString(), "ch");
  EXPECT_STREQ(t["metadata"]["namespace"].GetString(), "ns");
  EXPECT_STREQ(t["metadata"]["labels"]["resource.nvidia.com/computeDomain"].GetString(), "u-1");
  EXPECT_STREQ(t["metadata"]["labels"]["resource.nvidia.com/computeDomainTarget"].GetString(),
               "Workload");
  EXPECT_STREQ(t["metadata"]["ownerReferences"][0]["uid"].GetString(), "u-1");
  const auto& req = t["spec"]["spec"]["devices"]["requests"][0];
  EXPECT_STREQ(req["name"].GetString(), "channel");
  EXPECT_STREQ(req["exactly"]["deviceClassName"].GetString(),
               "compute-domain-default-channel.nvidia.com");
  EXPECT_EQ(std::string(req["exactly"]["selectors"][0]["cel"]["expression"].GetString()),
            clique_selector({"c.1"}));
  const auto& params = t["spec"]["spec"]["devices"]["config"][0]["opaque"]["parameters"];
  EXPECT_STREQ(params["kind"].GetString(), "ComputeDomainChannelConfig");
  EXPECT_STREQ(params["domainID"].GetString(), "u-1");
  EXPECT_STREQ(params["allocationMode"].GetString(), "All");

  // No placement: no selector; no mode: none written.
  d.allocation_mode.clear();
  auto free = doc(workload_template_json(d, {}));
  EXPECT_FALSE(free["spec"]["spec"]["devices"]["requests"][0]["exactly"].HasMember("selectors"));
  EXPECT_FALSE(free["spec"]["spec"]["devices"]["config"][0]["opaque"]["parameters"].HasMember(
      "allocationMode"));
}

TEST(Templates, CliqueSelectorIsGuardedForNodesWithoutFabric) {
  EXPECT_EQ(clique_selector({"a.1"}),
            R"("cliqueID" in device.attributes["compute-domain.nvidia.com"] && )"
            R"(device.attributes["compute-domain.nvidia.com"].cliqueID == "a.1")");
  EXPECT_EQ(clique_selector({"a.1", "a.2"}),
            R"("cliqueID" in device.attributes["compute-domain.nvidia.com"] && )"
            R"(device.attributes["compute-domain.nvidia.com"].cliqueID in ["a.1","a.2"])");
}

TEST(Templates, DaemonSetFollowsNvidiasTemplate) {
  DomainSpec d = spec(kDomain);
  DaemonSettings s;
  s.ns = "drv";
  auto ds = doc(daemon_set_json(d, s));
  EXPECT_STREQ(ds["metadata"]["name"].GetString(), "computedomain-daemon-u-1");
  EXPECT_STREQ(ds["metadata"]["namespace"].GetString(), "drv");
  const auto& pod = ds["spec"]["template"]["spec"];
  EXPECT_STREQ(pod["nodeSelector"]["resource.nvidia.com/computeDomain"].GetString(), "u-1");
  EXPECT_STREQ(
      ds["spec"]["selector"]["matchLabels"]["resource.nvidia.com/computeDomain"].GetString(),
      "u-1");
  EXPECT_EQ(pod["tolerations"].Size(), 3u);
  EXPECT_STREQ(pod["resourceClaims"][0]["resourceClaimTemplateName"].GetString(),
               "computedomain-daemon-u-1");
  const auto& ctr = pod["containers"][0];
  EXPECT_STREQ(ctr["command"][1].GetString(), "compute-domain-daemon");
  EXPECT_STREQ(ctr["command"][3].GetString(), "u-1");
  EXPECT_STREQ(ctr["readinessProbe"]["exec"]["command"][2].GetString(), "check");
  EXPECT_STREQ(ctr["resources"]["claims"][0]["name"].GetString(), "compute-domain-daemon");
  bool pod_ip = false;
  for (const auto& e : ctr["env"].GetArray())
    pod_ip = pod_ip || (std::string_view(e["name"].GetString()) == "POD_IP" &&
                        std::string_view(e["valueFrom"]["fieldRef"]["fieldPath"].GetString()) ==
                            "status.podIP");
  EXPECT_TRUE(pod_ip);
  // Root for the files it writes, without privilege beyond that.
  const auto& sc = ctr["securityContext"];
  EXPECT_EQ(sc["runAsUser"].GetInt(), 0);
  EXPECT_FALSE(sc["allowPrivilegeEscalation"].GetBool());
  EXPECT_STREQ(sc["capabilities"]["drop"][0].GetString(), "ALL");
  EXPECT_STREQ(sc["seccompProfile"]["type"].GetString(), "RuntimeDefault");
  EXPECT_FALSE(sc.HasMember("privileged"));
  EXPECT_FALSE(pod.HasMember("imagePullSecrets"));  // none unless there are some
  s.pull_secrets = {"regcred", "mirror"};
  auto with_secrets = doc(daemon_set_json(d, s));
  const auto& secrets = with_secrets["spec"]["template"]["spec"]["imagePullSecrets"];
  ASSERT_EQ(secrets.Size(), 2u);
  EXPECT_STREQ(secrets[1]["name"].GetString(), "mirror");

  auto rct = doc(daemon_template_json(d, s));
  EXPECT_STREQ(rct["metadata"]["namespace"].GetString(), "drv");
  EXPECT_STREQ(
      rct["spec"]["spec"]["devices"]["requests"][0]["exactly"]["deviceClassName"].GetString(),
      "compute-domain-daemon.nvidia.com");
  EXPECT_STREQ(
      rct["spec"]["spec"]["devices"]["config"][0]["opaque"]["parameters"]["kind"].GetString(),
      "ComputeDomainDaemonConfig");
}

TEST(Status, RowsKeepTheirIndexAndNewOnesTakeTheLowestFree) {
  std::map<std::string, std::string> cliques{{"n1", "c"}, {"n2", "c"}, {"n3", "c"}, {"x", ""}};
  std::vector<NodeStatus> prev{{"n2", "10.0.0.2", "c", 0, true}, {"n3", "10.0.0.3", "c", 2, true}};
  auto rows = derive_nodes({{"n1", "10.0.0.1", true},
                            {"n2", "10.0.0.9", false},  // restarted: new IP, same index
                            {"n3", "10.0.0.3", true},
                            {"x", "10.0.0.4", true},
                            {"n4", "", true}},  // no IP yet: not listed
                           cliques, prev);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], (NodeStatus{"n1", "10.0.0.1", "c", 1, true}));
  EXPECT_EQ(rows[1], (NodeStatus{"n2", "10.0.0.9", "c", 0, false}));
  EXPECT_EQ(rows[2], (NodeStatus{"n3", "10.0.0.3", "c", 2, true}));
  EXPECT_EQ(rows[3], (NodeStatus{"x", "10.0.0.4", "", -1, true}));  // no fabric: index -1
}

TEST(Status, AFullCliqueGivesNoIndex) {
  std::map<std::string, std::string> cliques;
  std::vector<DaemonPod> pods;
  for (int i = 0; i <= kMaxNodesPerImexDomain; ++i) {
    const std::string n = "n" + std::to_string(100 + i);
    cliques[n] = "c";
    pods.push_back({n, "10.0.0." + std::to_string(i), true});
  }
  auto rows = derive_nodes(pods, cliques, {});
  EXPECT_EQ(rows.back().index, -1);
  EXPECT_EQ(rows[kMaxNodesPerImexDomain - 1].index, kMaxNodesPerImexDomain - 1);
}

TEST(Status, GlobalStatusAsNvidiaDefinesIt) {
  DomainSpec d = spec(kDomain);  // numNodes 4
  std::vector<NodeStatus> three(3, NodeStatus{"n", "ip", "c", 0, true});
  EXPECT_FALSE(domain_ready(d, three));
  auto four = three;
  four.push_back({"m", "ip", "c", 3, true});
  EXPECT_TRUE(domain_ready(d, four));
  four[1].ready = false;
  EXPECT_FALSE(domain_ready(d, four));
  d.num_nodes = 0;  // NVIDIA's quirk, kept: no nodes needed
  EXPECT_TRUE(domain_ready(d, {}));
}

TEST(Status, ConditionsKeepTheirTransitionTime) {
  DomainSpec d = spec(kDomain);
  auto cd =
      doc(R"({"status":{"conditions":[{"type":"Ready","status":"False","reason":"R","message":"m",)"
          R"("lastTransitionTime":"2026-01-01T00:00:00Z"}]}})");
  auto same = doc(status_json(cd, d, {}, std::nullopt, {{"Ready", "False", "R", "m2"}}, "NOW"));
  EXPECT_STREQ(same["conditions"][0]["lastTransitionTime"].GetString(), "2026-01-01T00:00:00Z");
  EXPECT_STREQ(same["conditions"][0]["message"].GetString(), "m2");
  EXPECT_EQ(same["conditions"][0]["observedGeneration"].GetInt64(), 2);
  EXPECT_STREQ(same["status"].GetString(), "NotReady");
  auto flipped =
      doc(status_json(cd, d, {}, PlacementStatus{{"c"}, "why"},
                      {{"Ready", "True", "R", "m"}, {"Placed", "True", "P", "p"}}, "NOW"));
  EXPECT_STREQ(flipped["conditions"][0]["lastTransitionTime"].GetString(), "NOW");
  EXPECT_EQ(flipped["conditions"].Size(), 2u);
  EXPECT_STREQ(flipped["placement"]["cliques"][0].GetString(), "c");
  auto back =
      parse_placement_status(doc(std::string(R"({"status":)") + json::write(flipped) + "}"));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->cliques, std::vector<std::string>{"c"});
  EXPECT_EQ(back->reason, "why");
}

TEST(Status, NoNodesMeansNoNodesFieldAndThePatchRemovesTheOldOnes) {
  DomainSpec d = spec(kDomain);
  // Stored: two rows and a placement, from before the domain's daemons went away.
  auto cd = doc(R"({"status":{"status":"Ready","nodes":[{"name":"n1"},{"name":"n2"}],)"
                R"("placement":{"cliques":["c"],"reason":"r"},"conditions":[]}})");
  auto wanted = doc(status_json(cd, d, {}, std::nullopt, {{"Ready", "False", "R", "m"}}, "NOW"));
  EXPECT_FALSE(wanted.HasMember("nodes"));
  auto patch = doc(status_patch(json::find(cd, "status"), wanted));
  EXPECT_TRUE(patch["status"]["nodes"].IsNull());
  EXPECT_TRUE(patch["status"]["placement"].IsNull());
  ASSERT_TRUE(json::merge_patch(cd, patch));
  EXPECT_TRUE(cd["status"] == wanted) << json::write(cd);
  // Nothing stored yet: the patch is the status itself.
  auto first = doc(status_patch(nullptr, wanted));
  EXPECT_TRUE(first["status"] == wanted);
}

}  // namespace
}  // namespace nvdra::controller
