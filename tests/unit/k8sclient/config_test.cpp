#include "k8sclient/config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "base/base64.h"

namespace nvdra::k8s {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/nvdra-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& content) const {
    std::string p = path_ + "/" + name;
    fs::create_directories(fs::path(p).parent_path());
    std::ofstream(p) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const char* kBasic = R"(
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c1
  cluster:
    server: https://10.0.0.1:6443/prefix
    certificate-authority-data: Q0EtUEVN
    tls-server-name: kubernetes.default
- name: c2
  cluster:
    server: http://127.0.0.1:8080
    insecure-skip-tls-verify: true
users:
- name: u1
  user:
    token: abc
- name: u2
  user:
    client-certificate: certs/client.crt
    client-key: certs/client.key
contexts:
- name: dev
  context: {cluster: c1, user: u1, namespace: team-a}
- name: other
  context: {cluster: c2, user: u2}
)";

TEST(Kubeconfig, DeepNestingIsAnErrorNotAStackOverflow) {
  for (const std::string& deep :
       {"clusters: " + std::string(1'500'000, '['), "clusters: " + std::string(1'500'000, '{'), [] {
          std::string s = "clusters:\n";
          for (int i = 1; i < 3000; ++i)
            s += std::string(i, ' ') + "- \n";
          return s;
        }()}) {
    auto cfg = parse_kubeconfig(deep, "/nonexistent");
    EXPECT_FALSE(cfg);
  }
}

TEST(Kubeconfig, CurrentContext) {
  auto cfg = parse_kubeconfig(kBasic, "/nonexistent");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->server, "https://10.0.0.1:6443/prefix");
  EXPECT_EQ(cfg->endpoint.host, "10.0.0.1");
  EXPECT_EQ(cfg->endpoint.path_prefix, "/prefix");
  EXPECT_EQ(cfg->tls.ca_pem, "CA-PEM");
  EXPECT_EQ(cfg->tls.server_name, "kubernetes.default");
  EXPECT_FALSE(cfg->tls.insecure_skip_verify);
  ASSERT_TRUE(cfg->token);
  EXPECT_EQ(cfg->token->token(), "abc");
  EXPECT_EQ(cfg->namespace_, "team-a");
}

TEST(Kubeconfig, ContextOverrideAndRelativeFiles) {
  TempDir dir;
  dir.write("certs/client.crt", "CERT");
  dir.write("certs/client.key", "KEY");
  auto cfg = parse_kubeconfig(kBasic, dir.path(), "other");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_FALSE(cfg->endpoint.tls);
  EXPECT_TRUE(cfg->tls.insecure_skip_verify);
  EXPECT_EQ(cfg->tls.client_cert_pem, "CERT");
  EXPECT_EQ(cfg->tls.client_key_pem, "KEY");
  EXPECT_EQ(cfg->token, nullptr);
  EXPECT_EQ(cfg->namespace_, "default");
}

TEST(Kubeconfig, MissingFilesAndNamesAreClearErrors) {
  auto cfg = parse_kubeconfig(kBasic, "/nonexistent", "other");
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().message.find("client-certificate"), std::string::npos);
  cfg = parse_kubeconfig(kBasic, "/", "nope");
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().message.find("context \"nope\" not found"), std::string::npos);
  for (const char* bad :
       {"[", "- a\n- b", "clusters: 5\ncurrent-context: x", "current-context: x",
        "current-context: x\ncontexts:\n- name: x\n  context: {cluster: y}",
        "current-context: x\ncontexts:\n- context: {}",
        "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\nclusters:\n- name: c\n "
        " cluster: {server: 'ftp://x'}",
        "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\nclusters:\n- name: c\n "
        " cluster: {server: 'https://x', certificate-authority-data: '!!notbase64'}"}) {
    SCOPED_TRACE(bad);
    auto r = parse_kubeconfig(bad, "/");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(Kubeconfig, ExecCredentialsAreRefusedClearly) {
  auto r = parse_kubeconfig(R"(
current-context: x
contexts: [{name: x, context: {cluster: c, user: u}}]
clusters: [{name: c, cluster: {server: 'https://h'}}]
users: [{name: u, user: {exec: {command: aws}}}]
)",
                            "/");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("exec"), std::string::npos);
}

TEST(Kubeconfig, MergeFirstFileWins) {
  const char* a = R"(
current-context: a
clusters: [{name: c, cluster: {server: 'https://first'}}]
contexts: [{name: a, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: t1}}]
)";
  const char* b = R"(
current-context: b
clusters: [{name: c, cluster: {server: 'https://second'}}, {name: d, cluster: {server: 'https://d'}}]
contexts: [{name: b, context: {cluster: d, user: u}}]
users: [{name: u, user: {token: t2}}]
)";
  auto cfg = merge_kubeconfigs({a, b}, {"/", "/"});
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->server, "https://first");
  EXPECT_EQ(cfg->token->token(), "t1");
  auto cfg2 = merge_kubeconfigs({a, b}, {"/", "/"}, "b");
  ASSERT_TRUE(cfg2);
  EXPECT_EQ(cfg2->server, "https://d");  // context from the second file, user from the first
  EXPECT_EQ(cfg2->token->token(), "t1");
}

TEST(Kubeconfig, KubeconfigEnvironmentListAndFlag) {
  TempDir dir;
  std::string first = dir.write("one.yaml", "current-context: a\n");
  std::string second = dir.write("two.yaml", R"(
clusters: [{name: c, cluster: {server: 'https://two'}}]
contexts: [{name: a, context: {cluster: c}}]
)");
  std::string env = first + ":" + dir.path() + "/missing.yaml:" + second;
  setenv("KUBECONFIG", env.c_str(), 1);
  auto cfg = load_kubeconfig("");
  unsetenv("KUBECONFIG");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->server, "https://two");
  EXPECT_FALSE(load_kubeconfig(dir.path() + "/missing.yaml"));  // an explicit path must exist
  EXPECT_TRUE(load_kubeconfig(second, "a"));
}

TEST(TokenSource, FileIsReReadAfterTheRefreshPeriod) {
  TempDir dir;
  std::string path = dir.write("token", "first\n");
  FakeClock clock;
  auto src = TokenSource::file(path, clock, std::chrono::seconds(60));
  EXPECT_EQ(src->token(), "first");
  dir.write("token", "second");
  clock.advance(std::chrono::seconds(30));
  EXPECT_EQ(src->token(), "first");  // cached
  clock.advance(std::chrono::seconds(31));
  EXPECT_EQ(src->token(), "second");  // rotated
  fs::remove(path);
  clock.advance(std::chrono::seconds(61));
  EXPECT_EQ(src->token(), "second");  // a failed read keeps the last good token
}

TEST(InCluster, ReadsServiceAccountFiles) {
  TempDir dir;
  dir.write("token", "sa-token\n");
  dir.write("ca.crt", "CA");
  dir.write("namespace", "nvdra-system");
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto cfg = in_cluster_config(dir.path());
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->server, "https://[fd00::1]:443");
  EXPECT_EQ(cfg->endpoint.host, "fd00::1");
  EXPECT_EQ(cfg->tls.ca_pem, "CA");
  EXPECT_EQ(cfg->token->token(), "sa-token");
  EXPECT_TRUE(cfg->token->from_file());
  EXPECT_EQ(cfg->namespace_, "nvdra-system");
  EXPECT_FALSE(in_cluster_config(dir.path()));  // variables unset: not in a cluster
}

TEST(Base64, RoundTripAndRejects) {
  for (std::string s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(base64_decode(base64_encode(s)), s);
  }
  EXPECT_EQ(base64_decode("Q0Et\nUEVN"), "CA-PEM");
  EXPECT_FALSE(base64_decode("Q0E*"));
  EXPECT_FALSE(base64_decode("Q=Q"));
  EXPECT_FALSE(base64_decode("Q"));
}

}  // namespace
}  // namespace nvdra::k8s
