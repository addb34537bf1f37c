// HTTP request/response values shared by the transport, the REST layer and test servers.
// Boost-free.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/headers.h"
#include "base/url.h"

namespace nvdra::k8s {

using nvdra::find_header;
using nvdra::Headers;

struct HttpRequest {
  std::string method = "GET";
  std::string target;  // path and query, e.g. /api/v1/namespaces?limit=500
  Headers headers;
  std::string body;
};

struct HttpResponse {
  int status = 0;
  Headers headers;
  std::string body;
  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

struct TlsConfig {
  std::string ca_pem;  // trusted CA certificates; empty = the system's roots
  std::string client_cert_pem;
  std::string client_key_pem;
  bool insecure_skip_verify = false;
  std::string server_name;  // overrides the name verified and sent as SNI (tls-server-name)
};

// Server URL split into what a connection needs.
struct Endpoint {
  bool tls = true;
  std::string host;  // without brackets for IPv6
  std::string port;
  std::string path_prefix;  // e.g. "/k8s/clusters/c1" (no trailing slash), usually empty
};

// Parses "https://host:port/prefix". Default ports 443/80.
bool parse_server_url(std::string_view url, Endpoint* out, std::string* error);

using nvdra::url_decode;
using nvdra::url_encode;

}  // namespace nvdra::k8s
