// Feeds arbitrary bytes to the watch decoder in pieces whose boundaries come from the input, and
// checks that decoding is the same as feeding it all at once.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "k8sclient/watch/watch_decoder.h"

namespace {
std::vector<std::string> decode(std::string_view data, size_t step) {
  nvdra::k8s::WatchDecoder d({}, 1 << 20);
  std::vector<std::string> out;
  for (size_t i = 0; i < data.size(); i += step) {
    d.push(data.substr(i, step));
    while (auto ev = d.next()) {
      if (!*ev) return out;
      out.push_back((*ev)->object->json());
    }
  }
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 61;
  std::string_view s(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto whole = decode(s, s.size() + 1);
  auto pieces = decode(s, step);
  if (whole != pieces) __builtin_trap();
  return 0;
}
