// CEL: any text compiles or is refused with an error; a compiled program evaluates against a
// device (and self/oldSelf) without crashing, within a small cost budget. Quantity and semver
// parsers are reached through quantity()/semver() calls in the input.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cel/cel.h"

namespace {

nvdra::cel::Activation activation() {
  using nvdra::cel::Map;
  using nvdra::cel::Value;
  Map attrs;
  attrs.entries = {{"type", Value("gpu")},
                   {"index", Value(3)},
                   {"productName", Value("NVIDIA H100 80GB HBM3")},
                   {"driverVersion", Value(*nvdra::cel::Semver::parse("550.54.15"))}};
  Map cap;
  cap.entries = {{"memory", Value(*nvdra::Quantity::parse("80Gi"))}};
  Map a, c;
  a.missing_key_is_empty_map = c.missing_key_is_empty_map = true;
  a.entries.emplace("gpu.nvidia.com", Value(std::move(attrs)));
  c.entries.emplace("gpu.nvidia.com", Value(std::move(cap)));
  Map d;
  d.entries = {{"driver", Value("gpu.nvidia.com")},
               {"attributes", Value(std::move(a))},
               {"capacity", Value(std::move(c))}};
  Value self = Value::from_json(*nvdra::json::parse(R"({"spec":{"numNodes":2,"l":[1,"a",true]}})"));
  return {{"device", Value(std::move(d))}, {"self", self}, {"oldSelf", self}};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nvdra::cel::Activation vars = activation();
  if (size > 4096) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto p = nvdra::cel::Program::compile(text, {"device", "self", "oldSelf"});
  if (p) (void)p->evaluate(vars, 10'000);
  if (auto q = nvdra::Quantity::parse(text)) (void)q->to_string();
  return 0;
}
