// Cancellation: a flag plus the actions that make blocked I/O return (closing a socket, cancelling
// a timer). Asio 1.18 has no per-operation cancellation slots, so stopping a read means closing
// what it reads from. Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace nvdra {

class Cancellation {
 public:
  using Closer = std::function<void()>;

  void cancel() {
    std::vector<std::pair<int, Closer>> closers;
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return;
      cancelled_ = true;
      closers.swap(closers_);
    }
    for (auto& [id, c] : closers)
      c();
  }
  bool cancelled() const {
    std::lock_guard lock(mu_);
    return cancelled_;
  }
  // Registers an action run on cancel() (at once if already cancelled). Returns an id for remove().
  int on_cancel(Closer c) {
    std::unique_lock lock(mu_);
    if (cancelled_) {
      lock.unlock();
      c();
      return -1;
    }
    closers_.emplace_back(++next_id_, std::move(c));
    return next_id_;
  }
  void remove(int id) {
    std::lock_guard lock(mu_);
    std::erase_if(closers_, [id](const auto& p) { return p.first == id; });
  }

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;                       // guarded by mu_
  int next_id_ = 0;                              // guarded by mu_
  std::vector<std::pair<int, Closer>> closers_;  // guarded by mu_
};

using CancellationPtr = std::shared_ptr<Cancellation>;

// Registers a closer for the lifetime of a scope.
class CancelScope {
 public:
  CancelScope(Cancellation* c, Cancellation::Closer closer) : c_(c) {
    if (c_) id_ = c_->on_cancel(std::move(closer));
  }
  ~CancelScope() {
    if (c_ && id_ >= 0) c_->remove(id_);
  }
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  Cancellation* c_;
  int id_ = -1;
};

}  // namespace nvdra
