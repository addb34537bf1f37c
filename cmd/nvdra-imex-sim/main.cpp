// nvdra-imex-sim: the simulator's stand-in for nvidia-imex and nvidia-imex-ctl, so that the
// compute-domain daemon runs unchanged in nvdra-sim and a wrong peer list fails.
//
//   nvdra-imex-sim -c CONFIG       the IMEX daemon: reads the config the daemon rendered
//                                  (BIND_INTERFACE_IP, SERVER_PORT, IMEX_CMD_PORT,
//                                  IMEX_NODE_CONFIG_FILE), resolves the node names through
//                                  $NVDRA_ROOT/etc/hosts (again on SIGUSR1, like IMEX in DNS
//                                  mode), and handshakes with every resolved peer over TCP;
//   nvdra-imex-sim -c CONFIG -q    nvidia-imex-ctl -q: prints READY once every resolved peer,
//                                  this node included, answered for the same domain.
// Pod IPs of the simulator (10.b.c.d) are served on loopback addresses (127.b.c.d), which Linux
// routes without configuration, so every daemon of a domain listens on its own address; the
// simulator asks for that with NVDRA_IMEX_SIM_LOOPBACK=1. In a real cluster's pods (no such
// variable) the pod IPs are used as they are.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "agent/imex/imex_config.h"
#include "base/atomic_file.h"

namespace {

using nvdra::agent::imex::parse_config;
using nvdra::agent::imex::parse_hosts;

std::atomic<bool> g_reload{false}, g_stop{false};

std::string loopback(const std::string& ip) {
  static const bool simulated = [] {
    const char* v = std::getenv("NVDRA_IMEX_SIM_LOOPBACK");
    return v && std::string(v) == "1";
  }();
  if (!simulated || ip.rfind("127.", 0) == 0) return ip;
  const auto dot = ip.find('.');
  return dot == std::string::npos ? "127.0.0.1" : "127" + ip.substr(dot);
}

// A TCP socket connected to ip:port within `timeout_ms`, or -1.
int connect_to(const std::string& ip, int port, int timeout_ms) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) return -1;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string read_line(int fd) {
  std::string line;
  char c;
  while (line.size() < 512 && ::read(fd, &c, 1) == 1 && c != '\n')
    line += c;
  return line;
}

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

int listen_on(const std::string& ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) return -1;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 64) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Answers one line per connection with `answer(line)` until stopped.
template <class F>
void serve(int fd, F answer) {
  while (!g_stop) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    timeval tv{1, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    write_all(c, answer(read_line(c)) + "\n");
    ::close(c);
  }
}

struct Config {
  std::string bind_ip, node_file;
  int port = 50000, cmd_port = 50005;
};

bool load_config(const std::string& path, Config* c) {
  auto text = nvdra::read_file(path);
  if (!text) {
    std::cerr << "nvdra-imex-sim: " << text.error().message << "\n";
    return false;
  }
  auto kv = parse_config(*text);
  c->bind_ip = kv["BIND_INTERFACE_IP"];
  c->node_file = kv["IMEX_NODE_CONFIG_FILE"];
  try {
    if (!kv["SERVER_PORT"].empty()) c->port = std::stoi(kv["SERVER_PORT"]);
    if (!kv["IMEX_CMD_PORT"].empty()) c->cmd_port = std::stoi(kv["IMEX_CMD_PORT"]);
  } catch (const std::exception&) {
    std::cerr << "nvdra-imex-sim: bad port in " << path << "\n";
    return false;
  }
  if (c->bind_ip.empty() || c->node_file.empty()) {
    std::cerr << "nvdra-imex-sim: " << path
              << " lacks BIND_INTERFACE_IP or IMEX_NODE_CONFIG_FILE\n";
    return false;
  }
  return true;
}

int query(const Config& c) {
  const int fd = connect_to(loopback(c.bind_ip), c.cmd_port, 2000);
  if (fd < 0) {
    std::cout << "cannot reach the IMEX daemon on " << c.bind_ip << ":" << c.cmd_port << "\n";
    return 1;
  }
  write_all(fd, "STATUS\n");
  std::cout << read_line(fd) << "\n";
  ::close(fd);
  return 0;
}

int daemon(const Config& c) {
  const char* root = std::getenv("NVDRA_ROOT");
  const char* uuid = std::getenv("COMPUTE_DOMAIN_UUID");
  const std::string hosts_file = std::string(root ? root : "") + "/etc/hosts";
  const std::string domain = uuid ? uuid : "";
  const std::string me = loopback(c.bind_ip);
  const int peer_fd = listen_on(me, c.port), cmd_fd = listen_on(me, c.cmd_port);
  if (peer_fd < 0 || cmd_fd < 0) {
    std::cerr << "nvdra-imex-sim: cannot listen on " << me << ":" << c.port << "/" << c.cmd_port
              << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  std::cerr << "nvdra-imex-sim: IMEX daemon of domain " << domain << " on " << c.bind_ip
            << " (served on " << me << ")\n";
  std::mutex mu;
  std::string state = "NOT_READY starting";  // guarded by mu
  std::thread peers_thread([&] {
    serve(peer_fd, [&](const std::string& line) {
      std::istringstream in(line);
      std::string verb, their_domain;
      in >> verb >> their_domain;
      if (verb != "HELLO" || their_domain != domain) return std::string("ERR wrong domain");
      return "OK " + domain + " " + c.bind_ip;
    });
  });
  std::thread cmd_thread([&] {
    serve(cmd_fd, [&](const std::string&) {
      std::lock_guard lock(mu);
      return state;
    });
  });
  std::map<std::string, std::string> resolved;  // name → ip
  std::set<std::string> connected;              // names whose handshake succeeded
  auto reload = [&] {
    auto names = nvdra::read_file(c.node_file);
    auto hosts = nvdra::read_file(hosts_file);
    auto table = parse_hosts(hosts ? *hosts : "");
    std::map<std::string, std::string> next;
    std::istringstream in(names ? *names : "");
    for (std::string name; std::getline(in, name);)
      if (auto it = table.find(name); it != table.end()) next[name] = it->second;
    for (const auto& [name, ip] : next)
      if (resolved.contains(name) && resolved[name] != ip) connected.erase(name);
    for (const auto& [name, ip] : resolved)
      if (!next.contains(name)) connected.erase(name);
    resolved = std::move(next);
    std::cerr << "nvdra-imex-sim: " << resolved.size() << " peers resolved\n";
  };
  reload();
  std::string last;
  auto last_verify = std::chrono::steady_clock::now();
  while (!g_stop) {
    if (g_reload.exchange(false)) reload();
    // Peers already connected are verified again every 2 s: a vanished peer turns us NotReady.
    const bool verify = std::chrono::steady_clock::now() - last_verify > std::chrono::seconds(2);
    if (verify) last_verify = std::chrono::steady_clock::now();
    bool self = false;
    for (const auto& [name, ip] : resolved) {
      self = self || ip == c.bind_ip;
      if (connected.contains(name) && !verify) continue;
      bool ok = false;
      const int fd = connect_to(loopback(ip), c.port, 500);
      if (fd >= 0) {
        write_all(fd, "HELLO " + domain + " " + c.bind_ip + "\n");
        ok = read_line(fd) == "OK " + domain + " " + ip;
        ::close(fd);
      }
      if (ok) {
        connected.insert(name);
      } else {
        connected.erase(name);
      }
    }
    std::string now;
    if (!self) {
      now = "NOT_READY this node (" + c.bind_ip + ") is not among the resolved peers";
    } else if (connected.size() < resolved.size()) {
      now = "NOT_READY " + std::to_string(connected.size()) + "/" +
            std::to_string(resolved.size()) + " peers connected";
    } else {
      now = "READY";
    }
    if (now != last) std::cerr << "nvdra-imex-sim: " << now << "\n";
    last = now;
    {
      std::lock_guard lock(mu);
      state = now;
    }
    for (int i = 0; i < 3 && !g_stop && !g_reload; ++i)
      ::usleep(100 * 1000);
  }
  peers_thread.join();
  cmd_thread.join();
  ::close(peer_fd);
  ::close(cmd_fd);
  std::cerr << "nvdra-imex-sim: stopped\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config;
  bool q = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-c" && i + 1 < argc) {
      config = argv[++i];
    } else if (a == "-q") {
      q = true;
    } else {
      std::cerr << "usage: nvdra-imex-sim -c CONFIG [-q]\n";
      return 2;
    }
  }
  if (config.empty()) {
    std::cerr << "usage: nvdra-imex-sim -c CONFIG [-q]\n";
    return 2;
  }
  Config c;
  if (!load_config(config, &c)) return 1;
  if (q) return query(c);
  struct sigaction sa {};
  sa.sa_handler = [](int sig) { (sig == SIGUSR1 ? g_reload : g_stop) = true; };
  ::sigaction(SIGUSR1, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return daemon(c);
}
