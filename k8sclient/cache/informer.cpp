#include "k8sclient/cache/informer.h"

namespace nvdra::k8s {

Informer::Informer(std::shared_ptr<ListerWatcher> lw, ReflectorOptions options, const Clock& clock)
    : reflector_(std::move(lw), *this, std::move(options), clock) {}

void Informer::add_handlers(EventHandlers handlers) {
  handlers_.push_back(std::move(handlers));
}

void Informer::notify_upsert(const ObjectPtr& old_obj, const ObjectPtr& obj) {
  for (const auto& h : handlers_) {
    if (!old_obj) {
      if (h.on_add) h.on_add(obj);
    } else if (h.on_update) {
      h.on_update(old_obj, obj);
    }
  }
}

void Informer::replace(std::vector<ObjectPtr> objects, const std::string&) {
  // Work out the events before swapping the content, so handlers see a consistent store after.
  std::vector<std::pair<ObjectPtr, ObjectPtr>> changes;  // (old or null, new)
  for (const auto& o : objects) {
    ObjectPtr old = store_.get(o->key());
    if (!old || old->resource_version() != o->resource_version()) changes.emplace_back(old, o);
  }
  std::vector<ObjectPtr> dropped = store_.replace(std::move(objects));
  for (const auto& d : dropped) {
    for (const auto& h : handlers_) {
      if (h.on_delete) h.on_delete(d);
    }
  }
  for (const auto& [old, obj] : changes)
    notify_upsert(old, obj);
  synced_.store(true);
}

void Informer::added(ObjectPtr obj) {
  ObjectPtr old = store_.get(obj->key());
  // A resumed watch never repeats an event; this guards against a server that does.
  if (old && old->resource_version() == obj->resource_version()) return;
  store_.upsert(obj);
  notify_upsert(old, obj);
}

void Informer::modified(ObjectPtr obj) {
  added(std::move(obj));
}

void Informer::deleted(ObjectPtr obj) {
  ObjectPtr old = store_.remove(obj->key());
  if (!old) return;  // already gone: no second delete
  for (const auto& h : handlers_) {
    if (h.on_delete) h.on_delete(obj);
  }
}

awaitable<void> run_informer(std::shared_ptr<Informer> informer, Cancellation* cancel) {
  co_await informer->run(cancel);
}

}  // namespace nvdra::k8s
