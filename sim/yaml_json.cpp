#include "sim/yaml_json.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <regex>

namespace nvdra::sim {
namespace {

using json::Value;
using Alloc = json::Document::AllocatorType;

Value scalar(const YAML::Node& n, Alloc& a) {
  const std::string& s = n.Scalar();
  if (n.Tag() != "!") {  // plain scalar: resolve its type
    if (s == "true" || s == "True" || s == "TRUE") return Value(true);
    if (s == "false" || s == "False" || s == "FALSE") return Value(false);
    if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return Value();
    int64_t i = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
    if (ec == std::errc() && p == s.data() + s.size()) return Value(i);
    static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
    if (std::regex_match(s, kFloat)) return Value(std::stod(s));
  }
  return Value(s.c_str(), static_cast<rapidjson::SizeType>(s.size()), a);
}

// YAML aliases can make a small document expand exponentially ("billion laughs"); requests are
// limited in size, so a budget of converted nodes refuses such documents.
constexpr size_t kMaxNodes = 1'000'000;

Value convert(const YAML::Node& n, Alloc& a, int depth, size_t& budget) {
  if (depth > 100) throw YAML::Exception(YAML::Mark::null_mark(), "nesting too deep");
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

}  // namespace

Result<std::vector<json::Document>> parse_yaml_documents(std::string_view text) {
  std::vector<json::Document> out;
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
