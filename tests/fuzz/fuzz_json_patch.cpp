// JSON patch and merge patch: the input's first half is a document, the second a patch. Either
// applies or is refused; a refused JSON patch leaves the document unchanged.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/json.h"
#include "base/json_patch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  size_t cut = s.find('\n');
  if (cut == std::string_view::npos) return 0;
  auto doc = nvdra::json::parse(s.substr(0, cut));
  auto patch = nvdra::json::parse(s.substr(cut + 1));
  if (!doc || !patch) return 0;
  const std::string before = nvdra::json::write(*doc);
  if (!nvdra::json::json_patch(*doc, *patch) && nvdra::json::write(*doc) != before)
    __builtin_trap();
  auto doc2 = nvdra::json::parse(s.substr(0, cut));
  (void)nvdra::json::merge_patch(*doc2, *patch);
  return 0;
}
