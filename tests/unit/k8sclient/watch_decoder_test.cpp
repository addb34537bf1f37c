#include "k8sclient/watch/watch_decoder.h"

#include <gtest/gtest.h>

#include "base/json.h"
#include "k8sclient/rest/status.h"

namespace nvdra::k8s {
namespace {

// Events as the API server writes them, with the awkward parts a decoder must survive: braces and
// quotes inside strings, escapes, unicode, nested arrays, a bookmark and an ERROR.
const std::string kStream =
    R"({"type":"ADDED","object":{"kind":"ResourceClaim","apiVersion":"resource.k8s.io/v1","metadata":{"name":"c1","namespace":"ns","resourceVersion":"10","managedFields":[{"manager":"m"}]},"spec":{"x":"}{\"]["}}})"
    "\n"
    R"({"type":"MODIFIED","object":{"kind":"ResourceClaim","apiVersion":"resource.k8s.io/v1","metadata":{"name":"c1","namespace":"ns","resourceVersion":"11","labels":{"a":"\\"}},"status":{"l":[[1,2],[{"b":"\u00e9"}]]}}})"
    "\n"
    R"({"type":"BOOKMARK","object":{"kind":"ResourceClaim","apiVersion":"resource.k8s.io/v1","metadata":{"resourceVersion":"15"}}})"
    "\n"
    R"({"type":"DELETED","object":{"kind":"ResourceClaim","apiVersion":"resource.k8s.io/v1","metadata":{"name":"c1","namespace":"ns","resourceVersion":"16"}}})"
    "\n"
    R"J({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (16)","reason":"Expired","code":410}})J"
    "\n";

struct Seen {
  EventType type;
  std::string rv;
  std::string json;
};

std::vector<Seen> drain(WatchDecoder& d) {
  std::vector<Seen> out;
  while (auto ev = d.next()) {
    EXPECT_TRUE(*ev) << ev->error().message;
    if (!*ev) break;
    out.push_back(
        {(*ev)->type, std::string((*ev)->object->resource_version()), (*ev)->object->json()});
  }
  return out;
}

std::vector<Seen> decode_in_pieces(const std::vector<std::string_view>& pieces) {
  WatchDecoder d;
  std::vector<Seen> out;
  for (auto p : pieces) {
    d.push(p);
    auto got = drain(d);
    out.insert(out.end(), got.begin(), got.end());
  }
  EXPECT_FALSE(d.has_partial_event());
  return out;
}

void expect_same(const std::vector<Seen>& a, const std::vector<Seen>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].type, b[i].type);
    EXPECT_EQ(a[i].rv, b[i].rv);
    EXPECT_EQ(a[i].json, b[i].json);
  }
}

TEST(WatchDecoder, DecodesAllEventTypes) {
  auto events = decode_in_pieces({kStream});
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].type, EventType::kAdded);
  EXPECT_EQ(events[0].rv, "10");
  EXPECT_EQ(events[0].json.find("managedFields"), std::string::npos);
  EXPECT_EQ(events[1].type, EventType::kModified);
  EXPECT_EQ(events[2].type, EventType::kBookmark);
  EXPECT_EQ(events[2].rv, "15");
  EXPECT_EQ(events[3].type, EventType::kDeleted);
  EXPECT_EQ(events[4].type, EventType::kError);
}

TEST(WatchDecoder, ErrorEventCarriesStatus) {
  WatchDecoder d;
  d.push(kStream);
  std::optional<WatchEvent> err;
  while (auto ev = d.next()) {
    ASSERT_TRUE(*ev);
    if ((*ev)->type == EventType::kError) err = **ev;
  }
  ASSERT_TRUE(err);
  EXPECT_EQ(err->error.http_status, 410);
  EXPECT_EQ(err->error.reason, "Expired");
  EXPECT_TRUE(is_gone(err->error));
}

TEST(WatchDecoder, SameEventsWhateverTheSplitPoint) {
  const auto whole = decode_in_pieces({kStream});
  std::string_view s = kStream;
  for (size_t i = 0; i <= s.size(); ++i) {
    SCOPED_TRACE(i);
    expect_same(whole, decode_in_pieces({s.substr(0, i), s.substr(i)}));
  }
}

TEST(WatchDecoder, SameEventsWithThreeWaySplits) {
  const auto whole = decode_in_pieces({kStream});
  std::string_view s = kStream;
  for (size_t i = 0; i <= s.size(); i += 7) {
    for (size_t j = i; j <= s.size(); j += 13) {
      expect_same(whole, decode_in_pieces({s.substr(0, i), s.substr(i, j - i), s.substr(j)}));
    }
  }
}

TEST(WatchDecoder, ByteAtATime) {
  std::vector<std::string_view> bytes;
  std::string_view s = kStream;
  for (size_t i = 0; i < s.size(); ++i)
    bytes.push_back(s.substr(i, 1));
  expect_same(decode_in_pieces({kStream}), decode_in_pieces(bytes));
}

TEST(WatchDecoder, EventsWithoutNewlines) {
  std::string joined;
  for (char c : kStream) {
    if (c != '\n') joined.push_back(c);
  }
  EXPECT_EQ(decode_in_pieces({joined}).size(), 5u);
}

TEST(WatchDecoder, TruncatedStreamLeavesPartialEvent) {
  WatchDecoder d;
  d.push(std::string_view(kStream).substr(0, kStream.size() / 2));
  drain(d);
  EXPECT_TRUE(d.has_partial_event());
}

// A hostile server (or proxy) cannot crash the client with a deeply nested event: it is a
// decode error as soon as it is too deep, whole or in pieces.
TEST(WatchDecoder, DeepNestingFailsTheStreamInsteadOfTheStack) {
  const int n = 1'500'000;
  std::string deep = R"({"type":"ADDED","object":{"kind":"Pod","x":)" + std::string(n, '[') +
                     std::string(n, ']') + "}}";
  WatchDecoder d;
  d.push(deep);
  auto ev = d.next();
  ASSERT_TRUE(ev.has_value());
  ASSERT_FALSE(*ev);
  EXPECT_NE(ev->error().message.find("nested deeper than"), std::string::npos);
  // Just past the limit, decoded as one event: the object decoder refuses it too.
  const std::string limit = R"({"type":"ADDED","object":{"kind":"Pod","x":)" +
                            std::string(json::kMaxDepth, '[') + std::string(json::kMaxDepth, ']') +
                            "}}";
  EXPECT_FALSE(decode_watch_event(limit, {}));
}

TEST(WatchDecoder, GarbageFailsTheStream) {
  for (std::string bad : {"x", "{\"type\":\"ADDED\"}", "{\"type\":\"WHAT\",\"object\":{}}",
                          "{\"type\":\"ADDED\",\"object\":[]}", "{]", "{\"a\":tru}"}) {
    SCOPED_TRACE(bad);
    WatchDecoder d;
    d.push(bad);
    auto ev = d.next();
    ASSERT_TRUE(ev.has_value());
    EXPECT_FALSE(*ev);
    EXPECT_TRUE(d.failed());
    auto again = d.next();
    ASSERT_TRUE(again.has_value());
    EXPECT_FALSE(*again);
  }
}

TEST(WatchDecoder, OversizedEventIsRefused) {
  WatchDecoder d({}, 64);
  d.push(R"({"type":"ADDED","object":{"metadata":{"name":")" + std::string(100, 'a'));
  auto ev = d.next();
  ASSERT_TRUE(ev.has_value());
  EXPECT_FALSE(*ev);
}

}  // namespace
}  // namespace nvdra::k8s
