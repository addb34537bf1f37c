// Label and field selector parsing: any text is parsed or refused, and matching never crashes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "k8sclient/selectors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  nvdra::k8s::Labels labels{{"app", "demo"}, {"tier", "gold"}};
  if (auto l = nvdra::k8s::LabelSelector::parse(s)) (void)l->matches(labels);
  if (auto f = nvdra::k8s::FieldSelector::parse(s)) {
    (void)f->matches([](const std::string& field) -> std::optional<std::string> {
      if (field == "metadata.name") return "x";
      return std::nullopt;
    });
  }
  return 0;
}
