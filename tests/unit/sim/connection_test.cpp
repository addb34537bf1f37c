// nvdra-sim's API server at the connection level (issue 17): bodies of requests that will not
// authenticate are not read, and open connections are capped. Plain HTTP on loopback with a
// blocking socket, so that the test controls exactly which bytes are sent.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "sim/api_server.h"
#include "support/test_server.h"

namespace nvdra::sim {
namespace {

using tcp = boost::asio::ip::tcp;

struct PlainSim {
  testing::IoThread io;
  ResourceRegistry registry;
  Store store;
  std::unique_ptr<ApiServer> api;
  std::unique_ptr<testing::TestServer> server;
  explicit PlainSim(size_t max_connections = 1024) {
    api = std::make_unique<ApiServer>(store, registry, ApiServerOptions{.admin_token = "admin"});
    server = std::make_unique<testing::TestServer>(
        io, [this](const httpd::Request& r, httpd::ResponseWriter& w) { return api->handle(r, w); },
        httpd::ServerOptions{.screen = [this](const httpd::Request& h) { return api->screen(h); },
                             .max_connections = max_connections});
  }
};

struct Client {
  boost::asio::io_context ctx;
  tcp::socket sock{ctx};
  explicit Client(uint16_t port) {
    sock.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  }
  void send(const std::string& data) { boost::asio::write(sock, boost::asio::buffer(data)); }
  // What arrives within `wait` (empty when nothing does).
  std::string receive(std::chrono::milliseconds wait) {
    timeval tv{static_cast<time_t>(wait.count() / 1000),
               static_cast<suseconds_t>((wait.count() % 1000) * 1000)};
    ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    const ssize_t n = ::recv(sock.native_handle(), buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
};

TEST(SimConnections, ABodyIsNotReadBeforeItsSenderIsAuthenticated) {
  PlainSim sim;
  Client c(sim.server->port());
  // Announces 2 MB and sends none of it: the answer must not wait for the body.
  c.send(
      "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
      "Authorization: Bearer wrong\r\nContent-Type: application/json\r\n"
      "Content-Length: 2000000\r\n\r\n");
  const std::string answer = c.receive(std::chrono::seconds(5));
  EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 401") << answer;
  // Health checks need no token.
  Client h(sim.server->port());
  h.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(h.receive(std::chrono::seconds(5)).substr(0, 12), "HTTP/1.1 200");
}

TEST(SimConnections, OpenConnectionsAreCapped) {
  PlainSim sim(2);
  auto first = std::make_unique<Client>(sim.server->port());
  Client second(sim.server->port());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // both accepted
  Client third(sim.server->port());                             // waits in the backlog
  third.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(third.receive(std::chrono::milliseconds(300)), "");
  first.reset();  // a slot frees: the third is accepted and answered
  EXPECT_EQ(third.receive(std::chrono::seconds(5)).substr(0, 12), "HTTP/1.1 200");
}

// Out of file descriptors, accept fails at once for as long as a connection waits: retried
// without a pause, that spun the server's only thread. Run in a child process (its descriptor
// table is used up on purpose).
void accept_backs_off_when_out_of_descriptors() {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = std::min<rlim_t>(limit.rlim_cur, 512);  // quick to use up
  ::setrlimit(RLIMIT_NOFILE, &limit);
  net::io_context io;
  httpd::HttpServer server(io.get_executor(), httpd::ServerOptions{},
                           [](const httpd::Request&, httpd::ResponseWriter& w) -> awaitable<void> {
                             co_await w.respond(200, {}, "ok");
                           });
  auto port = server.start();
  if (!port) std::_Exit(2);
  Client c(*port);  // connected: waits in the listen backlog until accepted
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  std::vector<int> fds;
  for (int fd; (fd = ::open("/dev/null", O_RDONLY)) >= 0;)
    fds.push_back(fd);
  auto cpu = [] {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return std::chrono::seconds(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           std::chrono::microseconds(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  };
  const auto before = cpu();
  io.run_for(std::chrono::seconds(1));
  const auto spent = cpu() - before;
  for (int fd : fds)
    ::close(fd);
  io.restart();
  io.run_for(std::chrono::milliseconds(1500));  // descriptors again: accepted and answered
  const bool answered = c.receive(std::chrono::milliseconds(500)).starts_with("HTTP/1.1 200");
  std::fprintf(
      stderr, "cpu %lld ms, answered %d\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(spent).count()),
      answered);
  std::_Exit(spent < std::chrono::milliseconds(100) && answered ? 0 : 1);
}

TEST(SimConnections, AcceptBacksOffWhenOutOfDescriptors) {
#if defined(__SANITIZE_ADDRESS__)
  // Under ASan+UBSan the child, out of descriptors, stops in UBSan's vptr check inside Asio's
  // handler_work (an object whose vptr UBSan cannot verify then). Not yet understood; the
  // regular build runs this test.
  GTEST_SKIP() << "runs in the regular build only (UBSan vptr report when out of descriptors)";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(accept_backs_off_when_out_of_descriptors(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace nvdra::sim
