// The one way nvdra includes Asio. Boost 1.74's awaitable.hpp uses std::exchange without including
// <utility>, which g++ 12 rejects; including it first fixes that.
#pragma once

#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace nvdra {
namespace net = boost::asio;
template <class T>
using awaitable = boost::asio::awaitable<T>;

// Sleeps on the current executor; returns false when the timer was cancelled.
awaitable<bool> sleep_for(std::chrono::steady_clock::duration d);
}  // namespace nvdra

#include "base/cancel.h"

namespace nvdra {
// Sleeps on the current executor until `d` passes or `cancel` fires; returns false if cancelled.
awaitable<bool> sleep_for(std::chrono::steady_clock::duration d, Cancellation* cancel);
}  // namespace nvdra
