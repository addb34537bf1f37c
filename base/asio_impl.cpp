// Separate compilation of Asio and Beast: their implementation is built here once.
#include <utility>

#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>

#include "base/asio.h"

namespace nvdra {
awaitable<bool> sleep_for(std::chrono::steady_clock::duration d) {
  net::steady_timer timer(co_await net::this_coro::executor);
  timer.expires_after(d);
  boost::system::error_code ec;
  co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
  co_return !ec;
}
}  // namespace nvdra
