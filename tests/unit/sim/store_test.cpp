#include "sim/store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/json_patch.h"
#include "k8sclient/object.h"
#include "sim/yaml_json.h"

namespace nvdra::sim {
namespace {

struct Fixture : ::testing::Test {
  ResourceRegistry reg;
  FakeClock clock;
  Store store{clock, 1000};
  std::shared_ptr<const ResourceType> ns = reg.find("", "v1", "namespaces");
  std::shared_ptr<const ResourceType> cm = reg.find("", "v1", "configmaps");
  std::shared_ptr<const ResourceType> pods = reg.find("", "v1", "pods");
  std::shared_ptr<const ResourceType> claims = reg.find("resource.k8s.io", "v1", "resourceclaims");

  Fixture() { EXPECT_TRUE(store.create(*ns, "", doc(R"({"metadata":{"name":"default"}})"))); }

  static json::Document doc(std::string_view s) {
    auto d = json::parse(s);
    EXPECT_TRUE(d) << s;
    return std::move(*d);
  }
  static k8s::ObjectPtr obj(const Result<std::string>& r) {
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? *k8s::Object::parse(*r) : nullptr;
  }
};

TEST_F(Fixture, CreateSetsServerFields) {
  auto o = obj(store.create(*cm, "default", doc(R"({"metadata":{"name":"a"},"data":{"k":"v"}})")));
  EXPECT_EQ(o->kind(), "ConfigMap");
  EXPECT_EQ(o->api_version(), "v1");
  EXPECT_EQ(o->namespace_(), "default");
  EXPECT_EQ(o->uid().size(), 36u);
  EXPECT_EQ(o->generation(), 1);
  EXPECT_FALSE(o->resource_version().empty());
  auto again = store.create(*cm, "default", doc(R"({"metadata":{"name":"a"}})"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().http_status, 409);
  EXPECT_EQ(again.error().reason, "AlreadyExists");
}

TEST_F(Fixture, GenerateNameAndInvalidNames) {
  auto o = obj(store.create(*cm, "default", doc(R"({"metadata":{"generateName":"pod-gpu-"}})")));
  EXPECT_EQ(o->name().substr(0, 8), "pod-gpu-");
  EXPECT_EQ(o->name().size(), 13u);
  auto bad = store.create(*cm, "default", doc(R"({"metadata":{"name":"Bad_Name"}})"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().http_status, 422);
  ASSERT_EQ(bad.error().causes.size(), 1u);
  EXPECT_EQ(bad.error().causes[0].field, "metadata.name");
  auto no_ns = store.create(*cm, "missing", doc(R"({"metadata":{"name":"x"}})"));
  ASSERT_FALSE(no_ns);
  EXPECT_EQ(no_ns.error().http_status, 404);
}

TEST_F(Fixture, StaleResourceVersionConflicts) {
  auto o = obj(store.create(*cm, "default", doc(R"({"metadata":{"name":"a"},"data":{"k":"1"}})")));
  std::string rv(o->resource_version());
  auto u1 = obj(store.update(
      *cm, "default", "a",
      doc(R"({"metadata":{"name":"a","resourceVersion":")" + rv + R"("},"data":{"k":"2"}})"),
      false));
  EXPECT_GT(std::stoll(std::string(u1->resource_version())), std::stoll(rv));
  auto stale = store.update(
      *cm, "default", "a",
      doc(R"({"metadata":{"name":"a","resourceVersion":")" + rv + R"("},"data":{"k":"3"}})"),
      false);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().http_status, 409);
  EXPECT_EQ(stale.error().reason, "Conflict");
}

TEST_F(Fixture, GenerationCountsSpecChangesOnlyAndStatusIsIsolated) {
  auto o =
      obj(store.create(*claims, "default",
                       doc(R"({"metadata":{"name":"c"},"spec":{"devices":{}},"status":{"x":1}})")));
  auto d = *o->doc();
  EXPECT_EQ(json::find(d, "status"), nullptr);  // status is not set on create
  // Status through /status: generation unchanged.
  auto s = obj(store.update(
      *claims, "default", "c",
      doc(R"({"metadata":{"name":"c"},"spec":{"ignored":true},"status":{"allocation":{}}})"),
      true));
  EXPECT_EQ(s->generation(), 1);
  auto sd = *s->doc();
  EXPECT_NE(json::find(sd, "status"), nullptr);
  EXPECT_EQ(json::find_path(sd, {"spec", "ignored"}), nullptr);  // spec untouched via /status
  // Spec through the main resource: status kept, generation bumped.
  auto m = obj(store.update(
      *claims, "default", "c",
      doc(R"({"metadata":{"name":"c","labels":{"a":"b"}},"spec":{"devices":{"requests":[]}},"status":{}})"),
      false));
  EXPECT_EQ(m->generation(), 2);
  EXPECT_NE(json::find_path(*m->doc(), {"status", "allocation"}), nullptr);
  // Metadata-only change: no bump.
  auto l =
      obj(store.modify(*claims, "default", "c", false, false, false, [](json::Document& x, bool) {
        return json::merge_patch(x, *json::parse(R"({"metadata":{"labels":{"c":"d"}}})"));
      }));
  EXPECT_EQ(l->generation(), 2);
}

TEST_F(Fixture, NoOpUpdateKeepsTheResourceVersion) {
  auto o = obj(store.create(*cm, "default", doc(R"({"metadata":{"name":"a"},"data":{"k":"1"}})")));
  auto u = obj(store.update(*cm, "default", "a", doc(o->json()), false));
  EXPECT_EQ(u->resource_version(), o->resource_version());
}

TEST_F(Fixture, FinalizersHoldDeletion) {
  obj(store.create(*cm, "default",
                   doc(R"({"metadata":{"name":"a","finalizers":["nvdra.nvidia.com/x"]}})")));
  auto d = obj(store.remove(*cm, "default", "a", {}));
  EXPECT_TRUE(d->being_deleted());
  EXPECT_TRUE(store.get(*cm, "default", "a"));
  auto add = store.modify(*cm, "default", "a", false, false, false, [](json::Document& x, bool) {
    return json::merge_patch(
        x, *json::parse(R"({"metadata":{"finalizers":["nvdra.nvidia.com/x","y/z"]}})"));
  });
  ASSERT_FALSE(add);
  EXPECT_EQ(add.error().http_status, 422);
  auto rm = store.modify(*cm, "default", "a", false, false, false, [](json::Document& x, bool) {
    return json::merge_patch(x, *json::parse(R"({"metadata":{"finalizers":null}})"));
  });
  ASSERT_TRUE(rm);
  auto gone = store.get(*cm, "default", "a");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().http_status, 404);
}

TEST_F(Fixture, GarbageCollectionFollowsOwnerReferences) {
  auto owner = obj(store.create(*pods, "default", doc(R"({"metadata":{"name":"p"}})")));
  std::string uid(owner->uid());
  auto dep = [&](const char* name) {
    return doc(std::string(R"({"metadata":{"name":")") + name +
               R"(","ownerReferences":[{"apiVersion":"v1","kind":"Pod","name":"p","uid":")" + uid +
               R"("}]}})");
  };
  obj(store.create(*claims, "default", dep("c1")));
  obj(store.create(*cm, "default", dep("cm1")));
  ASSERT_TRUE(store.remove(*pods, "default", "p", {}));
  EXPECT_FALSE(store.get(*claims, "default", "c1"));
  EXPECT_FALSE(store.get(*cm, "default", "cm1"));
  // Orphan keeps dependents and drops the reference.
  auto owner2 = obj(store.create(*pods, "default", doc(R"({"metadata":{"name":"p"}})")));
  uid = owner2->uid();
  obj(store.create(*cm, "default", dep("cm2")));
  DeleteRequest orphan;
  orphan.propagation = "Orphan";
  ASSERT_TRUE(store.remove(*pods, "default", "p", orphan));
  auto kept = obj(store.get(*cm, "default", "cm2"));
  EXPECT_EQ(kept->json().find("ownerReferences\":[{"), std::string::npos);
}

TEST_F(Fixture, PodsOnANodeTerminateUntilTheirKubeletReleasesThem) {
  store.set_graceful_pod_deletion(true);
  obj(store.create(*pods, "default",
                   doc(R"({"metadata":{"name":"bound"},"spec":{"nodeName":"n1"}})")));
  obj(store.create(*pods, "default", doc(R"({"metadata":{"name":"pending"},"spec":{}})")));
  auto marked = obj(store.remove(*pods, "default", "bound", {}));
  EXPECT_TRUE(store.get(*pods, "default", "bound"));  // terminating, not gone
  EXPECT_NE(store.get(*pods, "default", "bound")->find("deletionTimestamp"), std::string::npos);
  ASSERT_TRUE(store.remove(*pods, "default", "pending", {}));  // nothing to release: gone at once
  EXPECT_FALSE(store.get(*pods, "default", "pending"));
  DeleteRequest now;
  now.grace_period_seconds = 0;  // the kubelet confirms
  ASSERT_TRUE(store.remove(*pods, "default", "bound", now));
  EXPECT_FALSE(store.get(*pods, "default", "bound"));
}

TEST_F(Fixture, DeletePreconditions) {
  auto o = obj(store.create(*cm, "default", doc(R"({"metadata":{"name":"a"}})")));
  DeleteRequest d;
  d.precondition_uid = "wrong";
  auto r = store.remove(*cm, "default", "a", d);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status, 409);
  d.precondition_uid = std::string(o->uid());
  EXPECT_TRUE(store.remove(*cm, "default", "a", d));
}

TEST_F(Fixture, NamespaceDeletionTakesItsContent) {
  obj(store.create(*ns, "", doc(R"({"metadata":{"name":"team"}})")));
  obj(store.create(*cm, "team", doc(R"({"metadata":{"name":"a"}})")));
  obj(store.create(*cm, "team", doc(R"({"metadata":{"name":"held","finalizers":["x.io/y"]}})")));
  ASSERT_TRUE(store.remove(*ns, "", "team", {}));
  EXPECT_FALSE(store.get(*cm, "team", "a"));
  auto t = obj(store.get(*ns, "", "team"));  // waits for the held object
  EXPECT_TRUE(t->being_deleted());
  auto refused = store.create(*cm, "team", doc(R"({"metadata":{"name":"new"}})"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().http_status, 403);
  ASSERT_TRUE(store.modify(*cm, "team", "held", false, false, false, [](json::Document& x, bool) {
    return json::merge_patch(x, *json::parse(R"({"metadata":{"finalizers":null}})"));
  }));
  EXPECT_FALSE(store.get(*ns, "", "team"));
  // A namespace whose content goes at once answers the delete with its last state.
  obj(store.create(*ns, "", doc(R"({"metadata":{"name":"quick"}})")));
  obj(store.create(*cm, "quick", doc(R"({"metadata":{"name":"a"}})")));
  auto gone = obj(store.remove(*ns, "", "quick", {}));
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->name(), "quick");
  EXPECT_FALSE(store.get(*ns, "", "quick"));
}

TEST_F(Fixture, SelectorsAndPagination) {
  for (int i = 0; i < 7; ++i) {
    obj(store.create(*pods, "default",
                     doc(R"({"metadata":{"name":"p)" + std::to_string(i) +
                         R"(","labels":{"tier":")" + (i % 2 ? "odd" : "even") +
                         R"("}},"spec":{"nodeName":"n)" + std::to_string(i % 3) + "\"}}")));
  }
  ListQuery q;
  q.label_selector = "tier=odd";
  EXPECT_EQ(store.list(*pods, "default", q)->items.size(), 3u);
  q.label_selector = "tier in (odd,even),tier!=odd";
  EXPECT_EQ(store.list(*pods, "default", q)->items.size(), 4u);
  q = {};
  q.field_selector = "spec.nodeName=n1";
  EXPECT_EQ(store.list(*pods, "", q)->items.size(), 2u);
  q.field_selector = "spec.unknown=x";
  auto bad = store.list(*pods, "", q);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().http_status, 400);
  q = {};
  q.label_selector = "tier in (";
  EXPECT_FALSE(store.list(*pods, "", q));
  q = {};
  q.limit = 3;
  std::vector<std::string> names;
  for (int page = 0; page < 5; ++page) {
    auto r = store.list(*pods, "default", q);
    ASSERT_TRUE(r);
    for (const auto& item : r->items)
      names.emplace_back((*k8s::Object::parse(item))->name());
    if (r->continue_token.empty()) break;
    q.continue_token = r->continue_token;
  }
  EXPECT_EQ(names.size(), 7u);
  // remainingItemCount only for an unfiltered list, as kube-apiserver.
  q = {};
  q.limit = 3;
  auto first = store.list(*pods, "default", q);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->remaining, std::optional<int64_t>(4));
  q.field_selector = "metadata.namespace=default";
  auto selected = store.list(*pods, "default", q);
  ASSERT_TRUE(selected);
  EXPECT_FALSE(selected->continue_token.empty());
  EXPECT_FALSE(selected->remaining.has_value());
}

TEST_F(Fixture, EventsAfterAndGone) {
  int64_t start = store.current_rv();
  obj(store.create(*cm, "default", doc(R"({"metadata":{"name":"a"}})")));
  obj(store.create(*pods, "default", doc(R"({"metadata":{"name":"p"}})")));
  ASSERT_TRUE(store.remove(*cm, "default", "a", {}));
  auto ev = store.events_after(start, cm->storage_key(), "");
  ASSERT_TRUE(ev);
  ASSERT_EQ(ev->size(), 2u);
  EXPECT_EQ((*ev)[0].type, "ADDED");
  EXPECT_EQ((*ev)[1].type, "DELETED");
  auto all = store.events_after(start, "", "");  // every kind, in resourceVersion order
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[1].storage_key, pods->storage_key());
  auto later = store.events_after((*all)[1].rv, "", "");
  ASSERT_TRUE(later);
  ASSERT_EQ(later->size(), 1u);
  EXPECT_EQ((*later)[0].type, "DELETED");
  store.compact_history();
  auto gone = store.events_after(start, cm->storage_key(), "");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().http_status, 410);
  EXPECT_EQ(gone.error().reason, "Expired");
}

TEST(StoreHistory, IsBoundedInBytes) {
  ResourceRegistry reg;
  FakeClock clock;
  Store store{clock, 1000, 20'000};  // many events allowed, but few bytes
  auto ns = reg.find("", "v1", "namespaces");
  auto cm = reg.find("", "v1", "configmaps");
  ASSERT_TRUE(store.create(*ns, "", *json::parse(R"({"metadata":{"name":"default"}})")));
  const int64_t start = store.current_rv();
  const std::string big(5'000, 'x');
  for (int i = 0; i < 10; ++i) {
    auto d = json::parse(R"({"metadata":{"name":"c)" + std::to_string(i) + R"("},"data":{"v":")" +
                         big + "\"}}");
    ASSERT_TRUE(store.create(*cm, "default", std::move(*d)));
  }
  // 10 events of 5 kB do not fit in 20 kB: the oldest are gone, the newest are kept.
  auto old = store.events_after(start, cm->storage_key(), "");
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().http_status, 410);
  auto recent = store.events_after(store.current_rv() - 2, cm->storage_key(), "");
  ASSERT_TRUE(recent) << recent.error().message;
  EXPECT_EQ(recent->size(), 2u);
  // One event larger than the whole budget is still kept: a current watch never gets 410.
  auto huge = json::parse(R"({"metadata":{"name":"huge"},"data":{"v":")" +
                          std::string(50'000, 'y') + "\"}}");
  ASSERT_TRUE(store.create(*cm, "default", std::move(*huge)));
  auto last = store.events_after(store.current_rv() - 1, cm->storage_key(), "");
  ASSERT_TRUE(last) << last.error().message;
  EXPECT_EQ(last->size(), 1u);
}

TEST(StorePersistence, SurvivesARestartAndATornLogTail) {
  char tmpl[] = "/tmp/nvdra-sim-data-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  ResourceRegistry reg;
  auto ns = reg.find("", "v1", "namespaces");
  auto cm = reg.find("", "v1", "configmaps");
  std::string uid;
  int64_t rv_before = 0;
  {
    Store store;
    ASSERT_TRUE(store.open_data_dir(dir));
    ASSERT_TRUE(store.create(*ns, "", *json::parse(R"({"metadata":{"name":"default"}})")));
    auto a =
        store.create(*cm, "default", *json::parse(R"({"metadata":{"name":"a"},"data":{"k":"v"}})"));
    ASSERT_TRUE(a);
    uid = (*k8s::Object::parse(*a))->uid();
    ASSERT_TRUE(store.create(*cm, "default", *json::parse(R"({"metadata":{"name":"b"}})")));
    ASSERT_TRUE(store.remove(*cm, "default", "b", {}));
    rv_before = store.current_rv();
  }
  // A crash in the middle of a write leaves half a line behind.
  {
    std::ofstream(dir + "/wal.jsonl", std::ios::app)
        << R"({"op":"put","rv":999,"k":"/configmaps","key":"default/c","obj":{"meta)";
  }
  Store again;
  ASSERT_TRUE(again.open_data_dir(dir));
  auto a = again.get(*cm, "default", "a");
  ASSERT_TRUE(a);
  EXPECT_EQ((*k8s::Object::parse(*a))->uid(), uid);
  EXPECT_FALSE(again.get(*cm, "default", "b"));
  EXPECT_FALSE(again.get(*cm, "default", "c"));
  EXPECT_EQ(again.current_rv(), rv_before);
  auto next = again.create(*cm, "default", *json::parse(R"({"metadata":{"name":"d"}})"));
  ASSERT_TRUE(next);
  EXPECT_GT(std::stoll(std::string((*k8s::Object::parse(*next))->resource_version())), rv_before);
  // A watch from before the restart cannot resume exactly.
  EXPECT_FALSE(again.events_after(rv_before - 1, cm->storage_key(), ""));
  std::filesystem::remove_all(dir);
}

TEST(YamlJson, TypesAndDocuments) {
  auto d = parse_json_or_yaml("a: 1\nb: true\nc: '1'\nd: ~\ne: 1.5\nf: [x, 2]\ng: hello\n");
  ASSERT_TRUE(d);
  EXPECT_EQ(json::write(*d),
            R"({"a":1,"b":true,"c":"1","d":null,"e":1.5,"f":["x",2],"g":"hello"})");
  auto docs = parse_yaml_documents("a: 1\n---\n---\nb: 2\n");
  ASSERT_TRUE(docs);
  EXPECT_EQ(docs->size(), 2u);
  EXPECT_FALSE(parse_json_or_yaml("a: [\n"));
}

}  // namespace
}  // namespace nvdra::sim
