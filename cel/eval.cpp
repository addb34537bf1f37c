// The interpreter: a tree walk with CEL's error semantics (&& and || absorb an error when the
// other side decides the result) and a cost budget that bounds every evaluation.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "cel/cel.h"
#include "cel/functions.h"
#include "cel/parser.h"

namespace nvdra::cel {
namespace {

using K = Value::Kind;
using T = Node::Type;

Unexpected<Error> eval_error(std::string msg) {
  return unexpected(ErrorCode::kInvalidArgument, std::move(msg));
}

class Evaluator {
 public:
  Evaluator(const Activation& vars, uint64_t budget) : vars_(vars), budget_(budget) {}

  Result<Value> eval(const Node& n) {
    if (budget_ == 0) return eval_error("operation cancelled: actual cost limit exceeded");
    --budget_;
    switch (n.type) {
      case T::kLiteral:
        return n.literal;
      case T::kIdent:
        return lookup(n.name);
      case T::kSelect: {
        auto target = eval(*n.target);
        if (!target) return target;
        return select(*target, n.name);
      }
      case T::kIndex:
        return index(n);
      case T::kHas: {
        auto target = eval(*n.target);
        if (!target) return target;
        if (!target->is(K::kMap))
          return eval_error(
              fmt::format("has(): cannot test field '{}' of a {}", n.name, target->kind_name()));
        return Value(target->as_map().entries.contains(n.name));
      }
      case T::kCall:
        return call(n);
      case T::kList: {
        List items;
        items.reserve(n.args.size());
        for (const auto& a : n.args) {
          auto v = eval(*a);
          if (!v) return v;
          items.push_back(std::move(*v));
        }
        return Value(std::move(items));
      }
      case T::kNot: {
        auto v = eval(*n.args[0]);
        if (!v) return v;
        if (!v->is(K::kBool)) return no_overload("!", {*v});
        return Value(!v->as_bool());
      }
      case T::kNegate:
        return negate(n);
      case T::kAnd:
      case T::kOr:
        return logical(n, n.type == T::kOr);
      case T::kTernary: {
        auto c = eval(*n.args[0]);
        if (!c) return c;
        if (!c->is(K::kBool)) return eval_error("the condition of ?: must be a bool");
        return eval(*n.args[c->as_bool() ? 1 : 2]);
      }
      case T::kBinary:
        return binary(n);
      case T::kComprehension:
        return comprehension(n);
    }
    return eval_error("unknown expression");
  }

 private:
  Result<Value> lookup(const std::string& name) {
    for (auto it = locals_.rbegin(); it != locals_.rend(); ++it) {
      if (it->first == name) return it->second;
    }
    auto it = vars_.find(name);
    if (it == vars_.end()) return eval_error(fmt::format("no value bound to '{}'", name));
    return it->second;
  }

  static Result<Value> select(const Value& target, const std::string& name) {
    if (!target.is(K::kMap))
      return eval_error(
          fmt::format("cannot select field '{}' from a {}", name, target.kind_name()));
    const Map& m = target.as_map();
    auto it = m.entries.find(name);
    if (it != m.entries.end()) return it->second;
    if (m.missing_key_is_empty_map) return Value(Map{});
    return eval_error(fmt::format("no such key: {}", name));
  }

  Result<Value> index(const Node& n) {
    auto target = eval(*n.target);
    if (!target) return target;
    auto key = eval(*n.args[0]);
    if (!key) return key;
    if (target->is(K::kMap)) {
      if (!key->is(K::kString))
        return eval_error(fmt::format("map keys are strings, not {}", key->kind_name()));
      return select(*target, key->as_string());
    }
    if (target->is(K::kList)) {
      const List& l = target->as_list();
      int64_t i = 0;
      if (key->is(K::kInt)) {
        i = key->as_int();
      } else if (key->is(K::kUint) && key->as_uint() <= static_cast<uint64_t>(l.size())) {
        i = static_cast<int64_t>(key->as_uint());
      } else {
        return eval_error(fmt::format("list index must be an int, not {}", key->kind_name()));
      }
      if (i < 0 || static_cast<uint64_t>(i) >= l.size())
        return eval_error(fmt::format("index out of bounds: {}", i));
      return l[static_cast<size_t>(i)];
    }
    return eval_error(fmt::format("cannot index a {}", target->kind_name()));
  }

  Result<Value> call(const Node& n) {
    std::optional<Value> target;
    if (n.target) {
      auto t = eval(*n.target);
      if (!t) return t;
      target = std::move(*t);
    }
    std::vector<Value> args;
    args.reserve(n.args.size());
    for (const auto& a : n.args) {
      auto v = eval(*a);
      if (!v) return v;
      args.push_back(std::move(*v));
    }
    // String work costs in proportion to its length, as CEL's runtime cost does; a regular
    // expression match in proportion to both lengths.
    const Value& subject = target ? *target : args.front();
    if (subject.is(K::kString)) {
      const bool regex = n.fn == Fn::kMatches && args.back().is(K::kString);
      const uint64_t cost =
          regex ? matches_cost(subject.as_string().size(), args.back().as_string().size())
                : subject.as_string().size() / 16;
      if (cost >= budget_) return eval_error("operation cancelled: actual cost limit exceeded");
      budget_ -= cost;
    }
    return call_function(n, target ? &*target : nullptr, args);
  }

  Result<Value> negate(const Node& n) {
    auto v = eval(*n.args[0]);
    if (!v) return v;
    if (v->is(K::kInt)) {
      if (v->as_int() == std::numeric_limits<int64_t>::min()) return eval_error("integer overflow");
      return Value(-v->as_int());
    }
    if (v->is(K::kDouble)) return Value(-v->as_double());
    return no_overload("-", {*v});
  }

  // CEL's commutative && and ||: false && error is false, error || true is true.
  Result<Value> logical(const Node& n, bool is_or) {
    auto side = [&](const Node& x) -> Result<Value> {
      auto v = eval(x);
      if (v && !v->is(K::kBool))
        return eval_error(fmt::format("no matching overload for '{}' applied to {}",
                                      is_or ? "||" : "&&", v->kind_name()));
      return v;
    };
    auto left = side(*n.args[0]);
    if (left && left->as_bool() == is_or) return left;
    auto right = side(*n.args[1]);
    if (right && right->as_bool() == is_or) return right;
    if (!left) return left;
    return right;
  }

  Result<Value> binary(const Node& n) {
    auto a = eval(*n.args[0]);
    if (!a) return a;
    auto b = eval(*n.args[1]);
    if (!b) return b;
    const std::string& op = n.name;
    if (op == "==") return Value(*a == *b);
    if (op == "!=") return Value(!(*a == *b));
    if (op == "in") return contains(*a, *b);
    if (op == "<" || op == "<=" || op == ">" || op == ">=") {
      auto c = order(op, *a, *b);
      if (!c) return unexpected(c.error());
      if (!*c) return Value(false);  // NaN
      const int x = **c;
      return Value(op == "<" ? x < 0 : op == "<=" ? x <= 0 : op == ">" ? x > 0 : x >= 0);
    }
    return arithmetic(op, *a, *b);
  }

  Result<Value> contains(const Value& item, const Value& container) {
    if (container.is(K::kList)) {
      for (const auto& e : container.as_list()) {
        if (budget_ == 0) return eval_error("operation cancelled: actual cost limit exceeded");
        --budget_;
        if (e == item) return Value(true);
      }
      return Value(false);
    }
    if (container.is(K::kMap)) {
      if (!item.is(K::kString)) return Value(false);
      return Value(container.as_map().entries.contains(item.as_string()));
    }
    return no_overload("in", {item, container});
  }

  static Result<std::optional<int>> order(const std::string& op, const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) return compare_numbers(a, b);
    if (a.kind() == b.kind()) {
      switch (a.kind()) {
        case K::kString: {
          const int c = a.as_string().compare(b.as_string());
          return std::optional<int>(c < 0 ? -1 : c > 0 ? 1 : 0);
        }
        case K::kBool:
          return std::optional<int>(a.as_bool() == b.as_bool() ? 0 : a.as_bool() ? 1 : -1);
        default:
          break;
      }
    }
    return no_overload(op, {a, b});
  }

  static Result<Value> arithmetic(const std::string& op, const Value& a, const Value& b) {
    if (op == "+" && a.is(K::kString) && b.is(K::kString))
      return Value(a.as_string() + b.as_string());
    if (op == "+" && a.is(K::kList) && b.is(K::kList)) {
      List l = a.as_list();
      l.insert(l.end(), b.as_list().begin(), b.as_list().end());
      return Value(std::move(l));
    }
    if (a.is(K::kInt) && b.is(K::kInt)) return integer(op, a.as_int(), b.as_int());
    if (a.is(K::kUint) && b.is(K::kUint)) return integer(op, a.as_uint(), b.as_uint());
    if (a.is(K::kDouble) && b.is(K::kDouble) && op != "%") {
      const double x = a.as_double(), y = b.as_double();
      return Value(op == "+" ? x + y : op == "-" ? x - y : op == "*" ? x * y : x / y);
    }
    return no_overload(op, {a, b});
  }

  // + - * / % on int64 or uint64, with CEL's overflow and division errors.
  template <class I>
  static Result<Value> integer(const std::string& op, I x, I y) {
    I r = 0;
    bool overflow = false;
    if (op == "+") {
      overflow = __builtin_add_overflow(x, y, &r);
    } else if (op == "-") {
      overflow = __builtin_sub_overflow(x, y, &r);
    } else if (op == "*") {
      overflow = __builtin_mul_overflow(x, y, &r);
    } else {
      if (y == 0) return eval_error(op == "/" ? "division by zero" : "modulus by zero");
      if constexpr (std::is_signed_v<I>) {
        if (x == std::numeric_limits<I>::min() && y == -1) return eval_error("integer overflow");
      }
      r = op == "/" ? x / y : x % y;
    }
    if (overflow)
      return eval_error(std::is_signed_v<I> ? "integer overflow" : "unsigned integer overflow");
    return Value(r);
  }

  Result<Value> comprehension(const Node& n) {
    auto range = eval(*n.target);
    if (!range) return range;
    std::vector<Value> items;
    if (range->is(K::kList)) {
      items = range->as_list();
    } else if (range->is(K::kMap)) {
      for (const auto& [k, v] : range->as_map().entries)
        items.emplace_back(k);
    } else {
      return eval_error(
          fmt::format("{}() needs a list or a map, not a {}", n.name, range->kind_name()));
    }
    const std::string& macro = n.name;
    List out;
    int64_t matches = 0;
    std::optional<Error> deferred;  // all/exists absorb errors when another element decides
    for (const auto& item : items) {
      locals_.emplace_back(n.var, item);
      auto v = eval(*n.args[0]);
      Result<Value> mapped;
      const bool map_with_filter = macro == "map" && n.args.size() == 2;
      if (map_with_filter && v && v->is(K::kBool) && v->as_bool()) mapped = eval(*n.args[1]);
      locals_.pop_back();
      if (!v) {
        if ((macro == "all" || macro == "exists") &&
            !v.error().message.starts_with("operation cancelled")) {
          deferred = v.error();
          continue;
        }
        return v;
      }
      if (macro == "map") {
        if (!map_with_filter) {
          out.push_back(std::move(*v));
          continue;
        }
        if (!v->is(K::kBool)) return eval_error("map(): the filter must be a bool");
        if (v->as_bool()) {
          if (!mapped) return mapped;
          out.push_back(std::move(*mapped));
        }
        continue;
      }
      if (!v->is(K::kBool))
        return eval_error(
            fmt::format("{}(): the predicate must be a bool, not {}", macro, v->kind_name()));
      const bool b = v->as_bool();
      if (macro == "all" && !b) return Value(false);
      if (macro == "exists" && b) return Value(true);
      if (macro == "exists_one" && b) ++matches;
      if (macro == "filter" && b) out.push_back(item);
    }
    if (deferred) return unexpected(*deferred);
    if (macro == "all") return Value(true);
    if (macro == "exists") return Value(false);
    if (macro == "exists_one") return Value(matches == 1);
    return Value(std::move(out));
  }

  static Unexpected<Error> no_overload(std::string_view op, std::initializer_list<Value> args) {
    std::string types;
    for (const auto& a : args)
      types += (types.empty() ? "" : ", ") + std::string(a.kind_name());
    return eval_error(fmt::format("no matching overload for '{}' applied to ({})", op, types));
  }

  const Activation& vars_;
  uint64_t budget_;
  std::vector<std::pair<std::string, Value>> locals_;
};

bool mentions(const Node& n, std::string_view name) {
  if (n.type == T::kIdent && n.name == name) return true;
  if (n.target && mentions(*n.target, name)) return true;
  for (const auto& a : n.args) {
    if (mentions(*a, name)) return true;
  }
  return false;
}

}  // namespace

Result<Program> Program::compile(std::string_view source,
                                 const std::vector<std::string>& variables) {
  auto root = parse(source, variables);
  if (!root) return unexpected(root.error());
  Program p;
  p.source_ = std::string(source);
  p.root_ = std::shared_ptr<const Node>(std::move(*root));
  return p;
}

Result<Value> Program::evaluate(const Activation& vars, uint64_t cost_limit) const {
  if (!root_) return eval_error("empty program");
  Evaluator e(vars, cost_limit);
  return e.eval(*root_);
}

Result<bool> Program::evaluate_bool(const Activation& vars) const {
  auto v = evaluate(vars);
  if (!v) return unexpected(v.error());
  if (!v->is(K::kBool))
    return eval_error(
        fmt::format("the expression must evaluate to a bool, not {}", v->kind_name()));
  return v->as_bool();
}

bool Program::references(std::string_view name) const {
  return root_ && mentions(*root_, name);
}

}  // namespace nvdra::cel
