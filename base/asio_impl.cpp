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

awaitable<bool> sleep_for(std::chrono::steady_clock::duration d, Cancellation* cancel) {
  if (cancel == nullptr) co_return co_await sleep_for(d);
  if (cancel->cancelled()) co_return false;
  auto ex = co_await net::this_coro::executor;
  auto timer = std::make_shared<net::steady_timer>(ex);
  timer->expires_after(d);
  CancelScope scope(cancel, [ex, timer] { net::post(ex, [timer] { timer->cancel(); }); });
  boost::system::error_code ec;
  co_await timer->async_wait(net::redirect_error(net::use_awaitable, ec));
  co_return !ec && !cancel->cancelled();
}
}  // namespace nvdra
