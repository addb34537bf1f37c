#include "k8sclient/config/config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "base/base64.h"

namespace nvdra::k8s {

std::shared_ptr<TokenSource> TokenSource::fixed(std::string token) {
  auto t = std::shared_ptr<TokenSource>(new TokenSource());
  t->token_ = std::move(token);
  return t;
}

std::shared_ptr<TokenSource> TokenSource::file(std::string path, const Clock& clock,
                                               std::chrono::seconds refresh) {
  auto t = std::shared_ptr<TokenSource>(new TokenSource());
  t->path_ = std::move(path);
  t->clock_ = &clock;
  t->refresh_ = refresh;
  return t;
}

std::string TokenSource::token() {
  std::lock_guard lock(mu_);
  if (path_.empty()) return token_;
  auto now = clock_->now();
  if (!read_at_ || now - *read_at_ >= refresh_) {
    if (auto text = read_file(path_)) {
      std::string t = std::move(*text);
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' '))
        t.pop_back();
      token_ = std::move(t);
      read_at_ = now;
    }
    // On a read error keep the last good token; the next call tries again.
  }
  return token_;
}

namespace {

struct Entry {
  YAML::Node node;
  std::string base_dir;
};

struct Merged {
  std::string current_context;
  std::map<std::string, Entry> clusters, users, contexts;
};

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.front() == '/' || base_dir.empty()) return path;
  return base_dir + "/" + path;
}

std::string scalar(const YAML::Node& n, const char* key) {
  if (!n || !n.IsMap()) return {};
  YAML::Node v = n[key];
  if (!v || !v.IsScalar()) return {};
  return v.as<std::string>();
}

bool boolean(const YAML::Node& n, const char* key) {
  if (!n || !n.IsMap()) return false;
  YAML::Node v = n[key];
  if (!v || !v.IsScalar()) return false;
  const std::string s = v.as<std::string>();
  return s == "true" || s == "True" || s == "TRUE";
}

// Adds one file's named entries; names already present (from earlier files) win.
Status add_named(const YAML::Node& list, const char* section, const char* inner,
                 const std::string& base_dir, std::map<std::string, Entry>& out) {
  if (!list) return ok();
  if (list.IsNull()) return ok();
  if (!list.IsSequence()) {
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("kubeconfig: {} must be a list", section));
  }
  for (const auto& item : list) {
    if (!item.IsMap()) {
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("kubeconfig: {} entries must be maps", section));
    }
    std::string name = scalar(item, "name");
    if (name.empty()) {
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("kubeconfig: a {} entry has no name", section));
    }
    out.try_emplace(name, Entry{item[inner], base_dir});
  }
  return ok();
}

Status merge_one(const std::string& text, const std::string& base_dir, Merged& m) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("kubeconfig: invalid YAML: {}", e.what()));
  }
  if (!root || root.IsNull()) return ok();  // an empty file contributes nothing
  if (!root.IsMap()) return unexpected(ErrorCode::kInvalidArgument, "kubeconfig: not a map");
  try {
    if (m.current_context.empty()) m.current_context = scalar(root, "current-context");
    if (auto s = add_named(root["clusters"], "clusters", "cluster", base_dir, m.clusters); !s)
      return s;
    if (auto s = add_named(root["users"], "users", "user", base_dir, m.users); !s) return s;
    if (auto s = add_named(root["contexts"], "contexts", "context", base_dir, m.contexts); !s)
      return s;
  } catch (const YAML::Exception& e) {
    return unexpected(ErrorCode::kInvalidArgument, fmt::format("kubeconfig: {}", e.what()));
  }
  return ok();
}

// Reads "<key>-data" (base64) or "<key>" (a file path) from `node`.
Result<std::string> file_or_data(const Entry& e, const char* key) {
  std::string data_key = std::string(key) + "-data";
  std::string data = scalar(e.node, data_key.c_str());
  if (!data.empty()) {
    auto decoded = base64_decode(data);
    if (!decoded) {
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("kubeconfig: {} is not valid base64", data_key));
    }
    return *decoded;
  }
  std::string path = scalar(e.node, key);
  if (path.empty()) return std::string();
  auto content = read_file(resolve(e.base_dir, path));
  if (!content) return unexpected(content.error().wrap(fmt::format("kubeconfig: {}", key)));
  return *content;
}

Result<RestConfig> build(const Merged& m, const std::string& context_override) {
  try {
    std::string ctx_name = context_override.empty() ? m.current_context : context_override;
    if (ctx_name.empty()) {
      return unexpected(ErrorCode::kInvalidArgument, "kubeconfig: no current-context is set");
    }
    auto ctx = m.contexts.find(ctx_name);
    if (ctx == m.contexts.end()) {
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("kubeconfig: context \"{}\" not found", ctx_name));
    }
    std::string cluster_name = scalar(ctx->second.node, "cluster");
    std::string user_name = scalar(ctx->second.node, "user");
    auto cluster = m.clusters.find(cluster_name);
    if (cluster == m.clusters.end()) {
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("kubeconfig: cluster \"{}\" not found", cluster_name));
    }
    RestConfig cfg;
    cfg.server = scalar(cluster->second.node, "server");
    if (cfg.server.empty()) {
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("kubeconfig: cluster \"{}\" has no server", cluster_name));
    }
    std::string err;
    if (!parse_server_url(cfg.server, &cfg.endpoint, &err)) {
      return unexpected(ErrorCode::kInvalidArgument, "kubeconfig: " + err);
    }
    auto ca = file_or_data(cluster->second, "certificate-authority");
    if (!ca) return unexpected(ca.error());
    cfg.tls.ca_pem = std::move(*ca);
    cfg.tls.insecure_skip_verify = boolean(cluster->second.node, "insecure-skip-tls-verify");
    cfg.tls.server_name = scalar(cluster->second.node, "tls-server-name");
    std::string ns = scalar(ctx->second.node, "namespace");
    if (!ns.empty()) cfg.namespace_ = ns;

    if (!user_name.empty()) {
      auto user = m.users.find(user_name);
      if (user == m.users.end()) {
        return unexpected(ErrorCode::kInvalidArgument,
                          fmt::format("kubeconfig: user \"{}\" not found", user_name));
      }
      auto cert = file_or_data(user->second, "client-certificate");
      if (!cert) return unexpected(cert.error());
      auto key = file_or_data(user->second, "client-key");
      if (!key) return unexpected(key.error());
      if (cert->empty() != key->empty()) {
        return unexpected(ErrorCode::kInvalidArgument,
                          "kubeconfig: client-certificate and client-key must be set together");
      }
      cfg.tls.client_cert_pem = std::move(*cert);
      cfg.tls.client_key_pem = std::move(*key);
      std::string token = scalar(user->second.node, "token");
      std::string token_file = scalar(user->second.node, "tokenFile");
      if (!token.empty()) {
        cfg.token = TokenSource::fixed(token);
      } else if (!token_file.empty()) {
        cfg.token = TokenSource::file(resolve(user->second.base_dir, token_file));
      }
      if (user->second.node && user->second.node.IsMap() &&
          (user->second.node["exec"] || user->second.node["auth-provider"])) {
        return unexpected(ErrorCode::kInvalidArgument,
                          fmt::format("kubeconfig: user \"{}\" uses exec or auth-provider "
                                      "credentials, which nvdra does not support; use a token, "
                                      "tokenFile or client certificate",
                                      user_name));
      }
    }
    return cfg;
  } catch (const YAML::Exception& e) {
    return unexpected(ErrorCode::kInvalidArgument, fmt::format("kubeconfig: {}", e.what()));
  }
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Result<RestConfig> merge_kubeconfigs(const std::vector<std::string>& texts,
                                     const std::vector<std::string>& base_dirs,
                                     const std::string& context_override) {
  Merged m;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (auto s = merge_one(texts[i], i < base_dirs.size() ? base_dirs[i] : "", m); !s) {
      return unexpected(s.error());
    }
  }
  return build(m, context_override);
}

Result<RestConfig> parse_kubeconfig(std::string_view yaml, const std::string& base_dir,
                                    const std::string& context_override) {
  return merge_kubeconfigs({std::string(yaml)}, {base_dir}, context_override);
}

Result<RestConfig> load_kubeconfig(const std::string& explicit_path,
                                   const std::string& context_override) {
  std::vector<std::string> paths;
  if (!explicit_path.empty()) {
    paths.push_back(explicit_path);
  } else if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
    std::string_view list(env);
    while (!list.empty()) {
      size_t colon = list.find(':');
      std::string_view p = list.substr(0, colon);
      if (!p.empty()) paths.emplace_back(p);
      if (colon == std::string_view::npos) break;
      list.remove_prefix(colon + 1);
    }
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    paths.push_back(std::string(home) + "/.kube/config");
  }
  if (paths.empty()) return unexpected(ErrorCode::kNotFound, "no kubeconfig found");
  std::vector<std::string> texts, dirs;
  for (const auto& p : paths) {
    auto text = read_file(p);
    if (!text) {
      // An explicit path must exist; entries of $KUBECONFIG that are missing are skipped, as
      // kubectl does.
      if (!explicit_path.empty()) return unexpected(text.error());
      continue;
    }
    texts.push_back(std::move(*text));
    dirs.push_back(dir_of(p));
  }
  if (texts.empty()) return unexpected(ErrorCode::kNotFound, "no kubeconfig file could be read");
  return merge_kubeconfigs(texts, dirs, context_override);
}

Result<RestConfig> in_cluster_config(const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port) {
    return unexpected(ErrorCode::kNotFound,
                      "not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set");
  }
  RestConfig cfg;
  std::string h(host);
  cfg.server = h.find(':') != std::string::npos ? fmt::format("https://[{}]:{}", h, port)
                                                : fmt::format("https://{}:{}", h, port);
  std::string err;
  if (!parse_server_url(cfg.server, &cfg.endpoint, &err)) {
    return unexpected(ErrorCode::kInvalidArgument, "in-cluster config: " + err);
  }
  auto ca = read_file(sa_dir + "/ca.crt");
  if (!ca) return unexpected(ca.error().wrap("in-cluster config"));
  cfg.tls.ca_pem = std::move(*ca);
  cfg.token = TokenSource::file(sa_dir + "/token");
  if (cfg.token->token().empty()) {
    return unexpected(ErrorCode::kNotFound,
                      "in-cluster config: the service-account token is missing");
  }
  if (auto ns = read_file(sa_dir + "/namespace")) {
    std::string n = std::move(*ns);
    while (!n.empty() && (n.back() == '\n' || n.back() == ' '))
      n.pop_back();
    if (!n.empty()) cfg.namespace_ = n;
  }
  return cfg;
}

Result<RestConfig> load_rest_config(const std::string& kubeconfig_flag) {
  auto cfg = !kubeconfig_flag.empty()                            ? load_kubeconfig(kubeconfig_flag)
             : std::getenv("KUBERNETES_SERVICE_HOST") != nullptr ? in_cluster_config()
                                                                 : load_kubeconfig("");
  if (const char* allow = std::getenv("NVDRA_ALLOW_INSECURE_TOKEN"); cfg && allow)
    cfg->allow_insecure_token = std::string_view(allow) == "true";
  return cfg;
}

}  // namespace nvdra::k8s
