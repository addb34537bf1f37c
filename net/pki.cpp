#include "net/pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace nvdra::pki {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

Error ssl_error(const char* what) {
  return Error(ErrorCode::kTls, std::string("pki: ") + what);
}

PKey new_key() {
  return PKey(EVP_EC_gen("P-256"));
}

std::string bio_string(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> key_pem(EVP_PKEY* k) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!b || !PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr)) {
    return unexpected(ssl_error("cannot encode key"));
  }
  return bio_string(b.get());
}

Result<std::string> cert_pem(X509* c) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!b || !PEM_write_bio_X509(b.get(), c)) return unexpected(ssl_error("cannot encode cert"));
  return bio_string(b.get());
}

bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

Cert new_cert(const std::string& cn, const std::vector<std::string>& orgs, int days) {
  Cert c(X509_new());
  if (!c) return c;
  X509_set_version(c.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);  // tolerate small clock skew
  X509_gmtime_adj(X509_getm_notAfter(c.get()), static_cast<long>(days) * 86400);
  X509_NAME* name = X509_get_subject_name(c.get());
  for (const auto& o : orgs) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return c;
}

Result<std::pair<Cert, PKey>> load(const KeyPair& kp) {
  Bio cb(BIO_new_mem_buf(kp.cert_pem.data(), static_cast<int>(kp.cert_pem.size())));
  Cert c(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  Bio kb(BIO_new_mem_buf(kp.key_pem.data(), static_cast<int>(kp.key_pem.size())));
  PKey k(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!c || !k) return unexpected(ssl_error("cannot load CA"));
  return std::make_pair(std::move(c), std::move(k));
}

}  // namespace

Result<KeyPair> make_ca(const std::string& common_name, int days) {
  PKey key = new_key();
  Cert cert = new_cert(common_name, {}, days);
  if (!key || !cert) return unexpected(ssl_error("cannot create CA"));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  X509_set_pubkey(cert.get(), key.get());
  if (!add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !add_ext(cert.get(), cert.get(), NID_key_usage,
               "critical,keyCertSign,cRLSign,digitalSignature") ||
      !add_ext(cert.get(), cert.get(), NID_subject_key_identifier, "hash")) {
    return unexpected(ssl_error("cannot add CA extensions"));
  }
  if (!X509_sign(cert.get(), key.get(), EVP_sha256()))
    return unexpected(ssl_error("cannot sign CA"));
  auto c = cert_pem(cert.get());
  auto k = key_pem(key.get());
  if (!c || !k) return unexpected(ssl_error("cannot encode CA"));
  return KeyPair{*c, *k};
}

Result<KeyPair> issue(const KeyPair& ca, const CertRequest& req) {
  auto loaded = load(ca);
  if (!loaded) return unexpected(loaded.error());
  auto& [ca_cert, ca_key] = *loaded;
  PKey key = new_key();
  Cert cert = new_cert(req.common_name, req.organizations, req.days);
  if (!key || !cert) return unexpected(ssl_error("cannot create certificate"));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  X509_set_pubkey(cert.get(), key.get());
  std::string san;
  for (const auto& d : req.dns_names)
    san += (san.empty() ? "" : ",") + ("DNS:" + d);
  for (const auto& ip : req.ip_addresses)
    san += (san.empty() ? "" : ",") + ("IP:" + ip);
  bool ok = add_ext(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE") &&
            add_ext(cert.get(), ca_cert.get(), NID_key_usage,
                    "critical,digitalSignature,keyEncipherment") &&
            add_ext(cert.get(), ca_cert.get(), NID_ext_key_usage,
                    req.server ? "serverAuth" : "clientAuth") &&
            add_ext(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");
  if (ok && !san.empty()) ok = add_ext(cert.get(), ca_cert.get(), NID_subject_alt_name, san);
  if (!ok) return unexpected(ssl_error("cannot add certificate extensions"));
  if (!X509_sign(cert.get(), ca_key.get(), EVP_sha256())) {
    return unexpected(ssl_error("cannot sign certificate"));
  }
  auto c = cert_pem(cert.get());
  auto k = key_pem(key.get());
  if (!c || !k) return unexpected(ssl_error("cannot encode certificate"));
  return KeyPair{*c, *k};
}

}  // namespace nvdra::pki
