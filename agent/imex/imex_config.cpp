#include "agent/imex/imex_config.h"

#include <fmt/format.h>

#include <sstream>

namespace nvdra::agent::imex {
namespace {

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

std::string peer_name(int index) {
  return fmt::format("compute-domain-daemon-{:04d}", index);
}

std::string render_config(std::string_view tmpl, std::string_view bind_ip,
                          std::string_view node_config_file) {
  std::string out = replace_all(std::string(tmpl), "{{IMEX_CMD_BIND_INTERFACE_IP}}", bind_ip);
  return replace_all(std::move(out), "{{IMEX_NODE_CONFIG_FILE}}", node_config_file);
}

std::string node_list(int max_nodes) {
  std::string out;
  for (int i = 0; i < max_nodes; ++i)
    out += peer_name(i) + "\n";
  return out;
}

std::map<std::string, std::string> clique_peers(const json::Value& cd, std::string_view clique,
                                                int max_nodes) {
  std::map<std::string, std::string> out;
  const json::Value* nodes = json::find_path(cd, {"status", "nodes"});
  if (!nodes || !nodes->IsArray()) return out;
  for (const auto& n : nodes->GetArray()) {
    if (!n.IsObject() || json::string_or(n, "cliqueID") != clique) continue;
    const std::string_view ip = json::string_or(n, "ipAddress");
    const auto index = json::get_int(n, "index");
    if (ip.empty() || !index || *index < 0 || *index >= max_nodes) continue;
    out[peer_name(static_cast<int>(*index))] = std::string(ip);
  }
  return out;
}

std::string rewrite_hosts(std::string_view hosts, const std::map<std::string, std::string>& peers) {
  std::string out;
  std::istringstream in{std::string(hosts)};
  for (std::string line; std::getline(in, line);) {
    if (line.find("compute-domain-daemon-") != std::string::npos || line == kHostsMarker) continue;
    out += line + "\n";
  }
  out += std::string(kHostsMarker) + "\n";
  for (const auto& [name, ip] : peers)
    out += ip + "\t" + name + "\n";
  return out;
}

std::map<std::string, std::string> parse_config(std::string_view text) {
  std::map<std::string, std::string> out;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    const std::string_view l = trim(line);
    if (l.empty() || l.front() == '#') continue;
    const auto eq = l.find('=');
    if (eq == std::string_view::npos) continue;
    out[std::string(trim(l.substr(0, eq)))] = std::string(trim(l.substr(eq + 1)));
  }
  return out;
}

std::map<std::string, std::string> parse_hosts(std::string_view text) {
  std::map<std::string, std::string> out;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream fields(line);
    std::string ip, name;
    if (!(fields >> ip)) continue;
    while (fields >> name)
      out.emplace(name, ip);  // the first address of a name wins, as the resolver's
  }
  return out;
}

}  // namespace nvdra::agent::imex
