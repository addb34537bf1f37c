// The IMEX files the compute-domain daemon and nvdra-imex-sim read (key=value configs, hosts
// files) and the domain status it maps to peers: any bytes parse or are skipped, never a crash;
// a hosts file rewritten with the peers it yields lists each of them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/imex/imex_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nvdra::agent::imex;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parse_config(text);
  (void)parse_hosts(text);
  std::map<std::string, std::string> peers;
  if (auto cd = nvdra::json::parse(text)) peers = clique_peers(*cd, "c.1", 18);
  auto table = parse_hosts(rewrite_hosts(text, peers));
  for (const auto& [name, ip] : peers) {
    // An IP with whitespace cannot round-trip through a hosts line; every other must.
    if (ip.find_first_of(" \t\r\n#") != std::string::npos) continue;
    if (table[name] != ip) std::abort();
  }
  return 0;
}
