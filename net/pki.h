// A minimal PKI on OpenSSL: a self-signed CA and certificates it issues (serving certificates with
// DNS/IP SANs, client certificates with a CN and organizations). Used by nvdra-sim for its API
// server and by tests that need real TLS.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace nvdra::pki {

struct KeyPair {
  std::string cert_pem;
  std::string key_pem;
};

// A new CA (EC P-256 key, self-signed, valid `days`).
Result<KeyPair> make_ca(const std::string& common_name, int days = 3650);

struct CertRequest {
  std::string common_name;
  std::vector<std::string> organizations;  // O= entries (Kubernetes groups for client certs)
  std::vector<std::string> dns_names;      // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;   // subjectAltName IP entries
  bool server = true;                      // serverAuth, else clientAuth
  int days = 365;
};

Result<KeyPair> issue(const KeyPair& ca, const CertRequest& request);

}  // namespace nvdra::pki
