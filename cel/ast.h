// The parsed form of a CEL expression: a tree of Nodes, immutable once compiled.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cel/value.h"

namespace re2 {
class RE2;  // kept out of the headers: only functions.cpp compiles and runs patterns
}

namespace nvdra::cel {

enum class Fn {
  kSize,
  kQuantity,
  kIsQuantity,
  kSemver,
  kIsSemver,
  kInt,
  kUint,
  kDouble,
  kString,
  kMatches,
  kStartsWith,
  kEndsWith,
  kContains,
  kLowerAscii,
  kUpperAscii,
  kCompareTo,
  kIsGreaterThan,
  kIsLessThan,
  kAsInteger,
  kAsApproximateFloat,
  kIsInteger,
  kSign,
  kMajor,
  kMinor,
  kPatch,
};

struct Node {
  enum class Type {
    kLiteral,        // literal
    kIdent,          // name
    kSelect,         // target.name
    kIndex,          // target[args[0]]
    kCall,           // [target.]name(args...), resolved to fn
    kList,           // [args...]
    kNot,            // !args[0]
    kNegate,         // -args[0]
    kBinary,         // args[0] name args[1]: == != < <= > >= in + - * / %
    kAnd,            // args[0] && args[1]
    kOr,             // args[0] || args[1]
    kTernary,        // args[0] ? args[1] : args[2]
    kHas,            // has(target.name)
    kComprehension,  // target.name(var, args...): all, exists, exists_one, map, filter
  };

  Type type = Type::kLiteral;
  size_t pos = 0;    // byte offset in the source, for messages
  std::string name;  // identifier, field, function, operator or macro
  std::string var;   // a comprehension's loop variable
  Value literal;
  Fn fn = Fn::kSize;
  std::unique_ptr<Node> target;
  std::vector<std::unique_ptr<Node>> args;
  std::shared_ptr<const re2::RE2> regex;  // matches() with a literal pattern, compiled once
};

}  // namespace nvdra::cel
