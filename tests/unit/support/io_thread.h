// Runs an io_context on a background thread so tests can run coroutines to completion.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <thread>

#include "base/asio.h"

namespace nvdra::testing {

class IoThread {
 public:
  IoThread() : guard_(net::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~IoThread() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  net::io_context& io() { return io_; }
  net::any_io_executor executor() { return io_.get_executor(); }

  template <class T>
  T run(awaitable<T> a) {
    return net::co_spawn(io_, std::move(a), net::use_future).get();
  }
  void run(awaitable<void> a) { net::co_spawn(io_, std::move(a), net::use_future).get(); }

  // Starts a coroutine and returns a future for its end.
  std::future<void> spawn(awaitable<void> a) {
    return net::co_spawn(io_, std::move(a), net::use_future);
  }

 private:
  net::io_context io_;
  net::executor_work_guard<net::io_context::executor_type> guard_;
  std::thread thread_;
};

}  // namespace nvdra::testing
