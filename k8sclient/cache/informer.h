// Informer: a Reflector feeding a Store, with add/update/delete handlers (client-go's shared
// informer, one consumer list per informer). Handlers run on the reflector's coroutine and must
// be quick: the usual handler only enqueues a key on a WorkQueue.
//
// A relist is turned into the events it implies: objects that vanished get a delete, new ones an
// add, changed ones (different resourceVersion) an update; unchanged objects produce nothing.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "k8sclient/cache/store.h"
#include "k8sclient/watch/reflector.h"

namespace nvdra::k8s {

struct EventHandlers {
  std::function<void(const ObjectPtr&)> on_add;
  std::function<void(const ObjectPtr& old_obj, const ObjectPtr& new_obj)> on_update;
  std::function<void(const ObjectPtr&)> on_delete;
};

class Informer final : public ReflectorSink {
 public:
  Informer(std::shared_ptr<ListerWatcher> lw, ReflectorOptions options = {},
           const Clock& clock = SystemClock::instance());

  // Register before run().
  void add_handlers(EventHandlers handlers);
  void add_indexer(const std::string& name, IndexFunc f) { store_.add_indexer(name, std::move(f)); }

  awaitable<void> run(Cancellation* cancel) { co_await reflector_.run(cancel); }
  // True once the first complete state has been delivered.
  bool has_synced() const { return synced_.load(); }

  const Store& store() const { return store_; }
  const Reflector& reflector() const { return reflector_; }

  // ReflectorSink
  void replace(std::vector<ObjectPtr> objects, const std::string& resource_version) override;
  void added(ObjectPtr obj) override;
  void modified(ObjectPtr obj) override;
  void deleted(ObjectPtr obj) override;

 private:
  void notify_upsert(const ObjectPtr& old_obj, const ObjectPtr& obj);

  Store store_;
  std::vector<EventHandlers> handlers_;
  std::atomic<bool> synced_{false};
  Reflector reflector_;
};

// Runs `informer` until `cancel` fires, holding it alive meanwhile: what to co_spawn. (A coroutine
// with parameters, not a capturing lambda: g++ 12 frees a coroutine lambda's captures with the
// closure, before the coroutine ends.)
awaitable<void> run_informer(std::shared_ptr<Informer> informer, Cancellation* cancel);

}  // namespace nvdra::k8s
