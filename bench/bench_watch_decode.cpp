// Watch decode throughput: nvdra's WatchDecoder (framing, validation, metadata extraction,
// managedFields removal, one Object per event) beside a bare RapidJSON DOM parse of the same
// event bytes - the ceiling. Goal: at least half the ceiling.
#include <rapidjson/document.h>

#include <cstdio>

#include "bench_support.h"
#include "k8sclient/watch/watch_decoder.h"

namespace {

struct Stream {
  std::string bytes;
  std::vector<std::pair<size_t, size_t>> events;  // offset, length
};

const Stream& stream() {
  static const Stream s = [] {
    Stream out;
    const char* kinds[] = {"resource.k8s.io.v1.ResourceClaim.json",
                           "resource.k8s.io.v1.ResourceSlice.json",
                           "core.v1.Pod.json",
                           "core.v1.Node.json",
                           "coordination.k8s.io.v1.Lease.json",
                           "resource.k8s.io.v1.DeviceClass.json"};
    std::vector<std::string> objects;
    for (const char* k : kinds)
      objects.push_back(nvdra::bench::compact_fixture(k));
    const char* types[] = {"ADDED", "MODIFIED", "MODIFIED", "DELETED"};
    while (out.bytes.size() < (8u << 20)) {
      for (size_t i = 0; i < objects.size(); ++i) {
        std::string ev = std::string("{\"type\":\"") + types[out.events.size() % 4] +
                         "\",\"object\":" + objects[i] + "}\n";
        out.events.emplace_back(out.bytes.size(), ev.size());
        out.bytes += ev;
      }
    }
    return out;
  }();
  return s;
}

void BM_RapidJsonDomParse(benchmark::State& state) {
  const Stream& s = stream();
  for (auto _ : state) {
    for (auto [off, len] : s.events) {
      rapidjson::Document d;
      d.Parse(s.bytes.data() + off, len);
      benchmark::DoNotOptimize(d.IsObject());
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * s.bytes.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * s.events.size()));
}
BENCHMARK(BM_RapidJsonDomParse)->Unit(benchmark::kMillisecond);

void BM_WatchDecoder(benchmark::State& state) {
  const Stream& s = stream();
  const size_t chunk = static_cast<size_t>(state.range(0));
  size_t events = 0;
  for (auto _ : state) {
    nvdra::k8s::WatchDecoder d;
    for (size_t off = 0; off < s.bytes.size(); off += chunk) {
      d.push(std::string_view(s.bytes).substr(off, chunk));
      while (auto ev = d.next()) {
        if (!*ev) state.SkipWithError("decode failed");
        benchmark::DoNotOptimize((*ev)->object);
        ++events;
      }
    }
  }
  if (events != state.iterations() * s.events.size()) state.SkipWithError("lost events");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * s.bytes.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * s.events.size()));
}
BENCHMARK(BM_WatchDecoder)->Arg(4096)->Arg(65536)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  nvdra::bench::fixtures_dir();  // before any output: without the fixtures there is nothing to run
  benchmark::Initialize(&argc, argv);
  nvdra::bench::KeepingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto& f = reporter.figures;
  auto ceiling = f.find("BM_RapidJsonDomParse");
  if (ceiling == f.end() || ceiling->second.bytes_per_second <= 0) return 0;
  std::printf("\nstream: %.1f MB, %zu events (mean %.0f bytes)\n", stream().bytes.size() / 1e6,
              stream().events.size(), double(stream().bytes.size()) / stream().events.size());
  for (const auto& [name, fig] : f) {
    if (name == ceiling->first) continue;
    std::printf(
        "%-28s %8.1f MB/s %10.0f events/s  = %.2f x the RapidJSON DOM ceiling (goal >= 0.50)\n",
        name.c_str(), fig.bytes_per_second / 1e6, fig.items_per_second,
        fig.bytes_per_second / ceiling->second.bytes_per_second);
  }
  std::printf("%-28s %8.1f MB/s %10.0f events/s  (ceiling)\n", ceiling->first.c_str(),
              ceiling->second.bytes_per_second / 1e6, ceiling->second.items_per_second);
  return 0;
}
