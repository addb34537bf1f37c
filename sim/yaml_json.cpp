#include "sim/yaml_json.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <charconv>

namespace nvdra::sim {
namespace {

using json::Value;
using Alloc = json::Document::AllocatorType;

// Whether `s` is a YAML 1.2 core-schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
// Hand-written: std::regex_match recurses per character and overflowed the stack on a
// 100,000-digit scalar.
bool looks_like_float(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9')
      ++i;
    return i - start;
  };
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  } else {
    if (digits() == 0) return false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      digits();
    }
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

Value scalar(const YAML::Node& n, Alloc& a) {
  const std::string& s = n.Scalar();
  if (n.Tag() != "!") {  // plain scalar: resolve its type
    if (s == "true" || s == "True" || s == "TRUE") return Value(true);
    if (s == "false" || s == "False" || s == "FALSE") return Value(false);
    if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return Value();
    int64_t i = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
    if (ec == std::errc() && p == s.data() + s.size()) return Value(i);
    if (looks_like_float(s)) {
      // from_chars takes no '+'. A float out of double's range ("1e999") stays a string, as
      // in kube-apiserver's YAML decoding (go-yaml keeps a scalar ParseFloat rejects); JSON
      // has no infinity to give it.
      std::string_view num = s[0] == '+' ? std::string_view(s).substr(1) : std::string_view(s);
      double d = 0;
      auto [q, fec] = std::from_chars(num.data(), num.data() + num.size(), d);
      if (fec == std::errc() && q == num.data() + num.size()) return Value(d);
    }
  }
  return Value(s.c_str(), static_cast<rapidjson::SizeType>(s.size()), a);
}

// YAML aliases can make a small document expand exponentially ("billion laughs"); requests are
// limited in size, so a budget of converted nodes refuses such documents.
constexpr size_t kMaxNodes = 1'000'000;

Value convert(const YAML::Node& n, Alloc& a, int depth, size_t& budget) {
  // The same bound as JSON's (yaml-cpp's own parser stops at 2000 levels).
  if (depth > json::kMaxDepth) throw YAML::Exception(YAML::Mark::null_mark(), "nesting too deep");
  if (budget == 0) throw YAML::Exception(YAML::Mark::null_mark(), "document expands too much");
  --budget;
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return Value();
    case YAML::NodeType::Scalar:
      return scalar(n, a);
    case YAML::NodeType::Sequence: {
      Value arr(rapidjson::kArrayType);
      for (const auto& item : n)
        arr.PushBack(convert(item, a, depth + 1, budget), a);
      return arr;
    }
    case YAML::NodeType::Map: {
      Value obj(rapidjson::kObjectType);
      for (const auto& kv : n) {
        if (!kv.first.IsScalar())
          throw YAML::Exception(kv.first.Mark(), "map keys must be scalars");
        const std::string& k = kv.first.Scalar();
        Value key(k.c_str(), static_cast<rapidjson::SizeType>(k.size()), a);
        obj.AddMember(key, convert(kv.second, a, depth + 1, budget), a);
      }
      return obj;
    }
  }
  return Value();
}

// Whether a line or a document begins with ',': yaml-cpp 0.7 (Debian bookworm) can loop forever
// on that (found by fuzz_yaml_json: ",f", "!f,", "x # c\n,"); ',' cannot start a scalar, and tags
// and anchors cannot contain it.
bool a_document_starts_with_comma(std::string_view text) {
  bool at_start = true;  // of the stream or of a document after "---"
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    const size_t first = line.find_first_not_of(" \t\r");
    std::string_view rest = first == std::string_view::npos ? "" : line.substr(first);
    if (rest.starts_with("---") || rest.starts_with("...")) {
      at_start = true;
      rest.remove_prefix(3);
      const size_t next = rest.find_first_not_of(" \t\r");
      rest = next == std::string_view::npos ? "" : rest.substr(next);
    }
    // Any line that begins with ',' (after a plain scalar and a comment, say): legal only inside
    // a flow collection written across lines, which no Kubernetes client sends.
    if (!rest.empty() && rest.front() == ',') return true;
    if (!at_start || rest.empty() || rest.front() == '#' || rest.front() == '%') continue;
    // Tags and anchors before the content: neither may contain ',' ("!f," loops as well).
    while (!rest.empty() && (rest.front() == '!' || rest.front() == '&')) {
      const size_t end = rest.find_first_of(" \t\r");
      const std::string_view property = rest.substr(0, end);
      if (property.find(',') != std::string_view::npos) return true;
      const size_t next =
          end == std::string_view::npos ? end : rest.find_first_not_of(" \t\r", end);
      rest = next == std::string_view::npos ? "" : rest.substr(next);
    }
    if (rest.empty()) continue;  // the content follows on a later line
    if (rest.front() == ',') return true;
    at_start = false;
  }
  return false;
}

}  // namespace

Result<std::vector<json::Document>> parse_yaml_documents(std::string_view text) {
  std::vector<json::Document> out;
  if (a_document_starts_with_comma(text))
    return unexpected(ErrorCode::kInvalidArgument,
                      "invalid YAML: a document cannot begin with ','");
  try {
    for (const auto& node : YAML::LoadAll(std::string(text))) {
      if (!node || node.IsNull()) continue;
      json::Document d;
      size_t budget = kMaxNodes;
      Value v = convert(node, d.GetAllocator(), 0, budget);
      static_cast<Value&>(d) = std::move(v);
      out.push_back(std::move(d));
    }
  } catch (const YAML::Exception& e) {
    return unexpected(ErrorCode::kInvalidArgument, fmt::format("invalid YAML: {}", e.what()));
  }
  return out;
}

Result<json::Document> parse_json_or_yaml(std::string_view text) {
  auto j = json::parse(text);
  if (j) return std::move(*j);
  auto docs = parse_yaml_documents(text);
  if (!docs) return unexpected(docs.error());
  if (docs->size() != 1) {
    return unexpected(ErrorCode::kInvalidArgument, "expected exactly one JSON or YAML document");
  }
  return std::move((*docs)[0]);
}

}  // namespace nvdra::sim
