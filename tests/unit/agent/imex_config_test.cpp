#include "agent/imex/imex_config.h"

#include <gtest/gtest.h>

namespace nvdra::agent::imex {
namespace {

TEST(ImexConfig, RendersTheTemplateAndTheDnsNodeList) {
  EXPECT_EQ(render_config("A=1\nBIND_INTERFACE_IP={{IMEX_CMD_BIND_INTERFACE_IP}}\n"
                          "IMEX_NODE_CONFIG_FILE={{IMEX_NODE_CONFIG_FILE}}\n",
                          "10.1.2.3", "/imexd/nodes.cfg"),
            "A=1\nBIND_INTERFACE_IP=10.1.2.3\nIMEX_NODE_CONFIG_FILE=/imexd/nodes.cfg\n");
  EXPECT_EQ(node_list(3),
            "compute-domain-daemon-0000\ncompute-domain-daemon-0001\ncompute-domain-daemon-0002\n");
  EXPECT_EQ(peer_name(17), "compute-domain-daemon-0017");
}

TEST(ImexConfig, PeersAreTheRowsOfTheOwnCliqueWithAnIpAndAValidIndex) {
  auto cd = json::parse(R"({"status":{"nodes":[
    {"name":"a","ipAddress":"10.0.0.1","cliqueID":"c.1","index":0},
    {"name":"b","ipAddress":"10.0.0.2","cliqueID":"c.1","index":1},
    {"name":"c","ipAddress":"10.0.0.3","cliqueID":"c.2","index":0},
    {"name":"d","ipAddress":"","cliqueID":"c.1","index":2},
    {"name":"e","ipAddress":"10.0.0.5","cliqueID":"c.1","index":18},
    {"name":"f","ipAddress":"10.0.0.6","cliqueID":"c.1","index":-1}]}})");
  ASSERT_TRUE(cd);
  auto peers = clique_peers(*cd, "c.1", 18);
  EXPECT_EQ(peers,
            (std::map<std::string, std::string>{{"compute-domain-daemon-0000", "10.0.0.1"},
                                                {"compute-domain-daemon-0001", "10.0.0.2"}}));
  EXPECT_TRUE(clique_peers(*json::parse("{}"), "c.1", 18).empty());
}

TEST(ImexConfig, HostsKeepTheirOwnLinesAndReplaceOldMappings) {
  const std::string base = "127.0.0.1\tlocalhost\n10.9.9.9\tpod\n";
  const std::string once = rewrite_hosts(base, {{"compute-domain-daemon-0000", "10.0.0.1"}});
  EXPECT_EQ(once,
            base + "# Compute Domain Daemon mappings\n10.0.0.1\tcompute-domain-daemon-0000\n");
  const std::string twice = rewrite_hosts(once, {{"compute-domain-daemon-0001", "10.0.0.2"}});
  EXPECT_EQ(twice,
            base + "# Compute Domain Daemon mappings\n10.0.0.2\tcompute-domain-daemon-0001\n");
  auto table = parse_hosts(twice);
  EXPECT_EQ(table["compute-domain-daemon-0001"], "10.0.0.2");
  EXPECT_EQ(table["localhost"], "127.0.0.1");
  EXPECT_FALSE(table.contains("compute-domain-daemon-0000"));
}

TEST(ImexConfig, ParsesKeyValueLinesAndHostsLeniently) {
  auto kv = parse_config("# c\n A = 1 \nB=2=3\nnot a pair\n\nA=4\r\n");
  EXPECT_EQ(kv, (std::map<std::string, std::string>{{"A", "4"}, {"B", "2=3"}}));
  auto hosts = parse_hosts("# x\n10.0.0.1 a b # c\n10.0.0.2 a\nbad\n");
  EXPECT_EQ(hosts, (std::map<std::string, std::string>{{"a", "10.0.0.1"}, {"b", "10.0.0.1"}}));
}

}  // namespace
}  // namespace nvdra::agent::imex
