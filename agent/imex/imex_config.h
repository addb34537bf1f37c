// What the compute-domain daemon writes for the IMEX daemon, as pure functions: the daemon config
// rendered from the template the agent left in the domain folder, the static node list of DNS
// mode (compute-domain-daemon-0000 …), the peer names → IPs of its clique from the domain status
// the controller wrote, and /etc/hosts with those names (anchor §5.2, §5.4).
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "base/json.h"

namespace nvdra::agent::imex {

inline constexpr std::string_view kHostsMarker = "# Compute Domain Daemon mappings";

// compute-domain-daemon-%04d
std::string peer_name(int index);

// The template with {{IMEX_CMD_BIND_INTERFACE_IP}} and {{IMEX_NODE_CONFIG_FILE}} filled in.
std::string render_config(std::string_view tmpl, std::string_view bind_ip,
                          std::string_view node_config_file);

// nodes.cfg of DNS mode: one name per possible member, 0 … max-1.
std::string node_list(int max_nodes);

// The peers of `clique` in the ComputeDomain's status.nodes: name of the row's index → its IP.
// Rows of other cliques, without an IP or with an index outside 0 … max-1 are left out.
std::map<std::string, std::string> clique_peers(const json::Value& compute_domain,
                                                std::string_view clique, int max_nodes);

// `hosts` without earlier mappings of peer names, then the marker and one "<ip>\t<name>" line
// per peer.
std::string rewrite_hosts(std::string_view hosts, const std::map<std::string, std::string>& peers);

// Reads "key=value" lines (the IMEX config format); later keys win, comments and blanks skipped.
std::map<std::string, std::string> parse_config(std::string_view text);

// Reads an /etc/hosts file: name → first address.
std::map<std::string, std::string> parse_hosts(std::string_view text);

}  // namespace nvdra::agent::imex
