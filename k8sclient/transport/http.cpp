#include "k8sclient/transport/http.h"

#include <cctype>
#include <charconv>

namespace nvdra::k8s {

bool parse_server_url(std::string_view url, Endpoint* out, std::string* error) {
  Endpoint ep;
  if (url.starts_with("https://")) {
    ep.tls = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    ep.tls = false;
    url.remove_prefix(7);
  } else {
    *error = "server URL must start with https:// or http://";
    return false;
  }
  size_t slash = url.find('/');
  std::string_view hostport = url.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : url.substr(slash);
  while (!path.empty() && path.back() == '/')
    path.remove_suffix(1);
  ep.path_prefix = std::string(path);
  if (hostport.empty()) {
    *error = "server URL has no host";
    return false;
  }
  if (hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) {
      *error = "server URL has an unterminated IPv6 address";
      return false;
    }
    ep.host = std::string(hostport.substr(1, close - 1));
    std::string_view rest = hostport.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        *error = "server URL has junk after the IPv6 address";
        return false;
      }
      ep.port = std::string(rest.substr(1));
    }
  } else {
    size_t colon = hostport.rfind(':');
    if (colon != std::string_view::npos) {
      ep.host = std::string(hostport.substr(0, colon));
      ep.port = std::string(hostport.substr(colon + 1));
    } else {
      ep.host = std::string(hostport);
    }
  }
  if (ep.port.empty()) ep.port = ep.tls ? "443" : "80";
  int port = 0;
  auto [p, ec] = std::from_chars(ep.port.data(), ep.port.data() + ep.port.size(), port);
  if (ec != std::errc() || p != ep.port.data() + ep.port.size() || port <= 0 || port > 65535) {
    *error = "server URL has an invalid port";
    return false;
  }
  if (ep.host.empty()) {
    *error = "server URL has no host";
    return false;
  }
  *out = std::move(ep);
  return true;
}

}  // namespace nvdra::k8s
