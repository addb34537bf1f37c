#include "cel/parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "cel/functions.h"

namespace nvdra::cel {
namespace {

enum class Tok { kEnd, kIdent, kInt, kUint, kDouble, kString, kPunct };

struct Token {
  Tok kind = Tok::kEnd;
  size_t pos = 0;
  std::string text;  // identifier, punctuation, or the decoded string literal
  uint64_t u = 0;
  double d = 0;
};

bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

class Parser {
 public:
  explicit Parser(std::string_view src) : src_(src) {}

  Result<std::unique_ptr<Node>> run() {
    if (src_.size() > kMaxExpressionBytes)
      return fail(0, fmt::format("expression is longer than {} bytes", kMaxExpressionBytes));
    if (!advance()) return unexpected(error_);
    auto e = expr();
    if (!e) return e;
    if (tok_.kind != Tok::kEnd) return fail(tok_.pos, "unexpected '" + tok_.text + "'");
    return e;
  }

 private:
  using NodeP = std::unique_ptr<Node>;
  using R = Result<NodeP>;

  Unexpected<Error> fail(size_t pos, const std::string& msg) {
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("syntax error at offset {}: {}", pos, msg));
  }

  // ---- lexer ----
  bool lex_error(size_t pos, const std::string& msg) {
    error_ = fail(pos, msg).error;
    return false;
  }

  bool advance() {
    size_t i = next_;
    while (i < src_.size()) {
      const char c = src_[i];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
        ++i;
      } else if (c == '/' && i + 1 < src_.size() && src_[i + 1] == '/') {
        while (i < src_.size() && src_[i] != '\n')
          ++i;
      } else {
        break;
      }
    }
    tok_ = Token{};
    tok_.pos = i;
    if (i >= src_.size()) {
      next_ = i;
      return true;
    }
    const char c = src_[i];
    if ((c == 'r' || c == 'R') && i + 1 < src_.size() &&
        (src_[i + 1] == '\'' || src_[i + 1] == '"'))
      return lex_string(i + 1, true);
    if (c == 'b' && i + 1 < src_.size() && (src_[i + 1] == '\'' || src_[i + 1] == '"'))
      return lex_error(i, "bytes literals are not supported");
    if (is_ident_start(c)) {
      size_t j = i;
      while (j < src_.size() && (is_ident_start(src_[j]) || is_digit(src_[j])))
        ++j;
      tok_.kind = Tok::kIdent;
      tok_.text = std::string(src_.substr(i, j - i));
      next_ = j;
      return true;
    }
    if (is_digit(c) || (c == '.' && i + 1 < src_.size() && is_digit(src_[i + 1])))
      return lex_number(i);
    if (c == '\'' || c == '"') return lex_string(i, false);
    static constexpr std::string_view kTwo[] = {"==", "!=", "<=", ">=", "&&", "||"};
    for (auto op : kTwo) {
      if (src_.substr(i, 2) == op) {
        tok_.kind = Tok::kPunct;
        tok_.text = std::string(op);
        next_ = i + 2;
        return true;
      }
    }
    if (std::string_view("<>!+-*/%?:.,()[]{}").find(c) != std::string_view::npos) {
      tok_.kind = Tok::kPunct;
      tok_.text = std::string(1, c);
      next_ = i + 1;
      return true;
    }
    if (c == '=') return lex_error(i, "'=' is not an operator; use '=='");
    return lex_error(i, fmt::format("unexpected character '{}'", c));
  }

  bool lex_number(size_t i) {
    size_t j = i;
    bool is_float = false;
    if (src_.substr(j, 2) == "0x" || src_.substr(j, 2) == "0X") {
      j += 2;
      size_t start = j;
      uint64_t v = 0;
      while (j < src_.size() && std::isxdigit(static_cast<unsigned char>(src_[j]))) {
        if (v > (std::numeric_limits<uint64_t>::max() >> 4))
          return lex_error(i, "integer literal out of range");
        const char h = src_[j];
        v = v * 16 + static_cast<uint64_t>(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
        ++j;
      }
      if (j == start) return lex_error(i, "bad hexadecimal literal");
      tok_.u = v;
    } else {
      while (j < src_.size() && is_digit(src_[j]))
        ++j;
      if (j < src_.size() && src_[j] == '.' && j + 1 < src_.size() && is_digit(src_[j + 1])) {
        is_float = true;
        ++j;
        while (j < src_.size() && is_digit(src_[j]))
          ++j;
      }
      if (j < src_.size() && (src_[j] == 'e' || src_[j] == 'E')) {
        size_t k = j + 1;
        if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
        if (k < src_.size() && is_digit(src_[k])) {
          is_float = true;
          j = k;
          while (j < src_.size() && is_digit(src_[j]))
            ++j;
        }
      }
      const std::string text(src_.substr(i, j - i));
      if (is_float) {
        tok_.d = std::strtod(text.c_str(), nullptr);
      } else {
        uint64_t v = 0;
        for (char d : text) {
          if (v > (std::numeric_limits<uint64_t>::max() - 9) / 10)
            return lex_error(i, "integer literal out of range");
          v = v * 10 + static_cast<uint64_t>(d - '0');
        }
        tok_.u = v;
      }
    }
    tok_.kind = is_float ? Tok::kDouble : Tok::kInt;
    if (!is_float && j < src_.size() && (src_[j] == 'u' || src_[j] == 'U')) {
      tok_.kind = Tok::kUint;
      ++j;
    }
    if (j < src_.size() && (is_ident_start(src_[j]) || is_digit(src_[j])))
      return lex_error(j, "malformed number");
    tok_.text = std::string(src_.substr(i, j - i));
    next_ = j;
    return true;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool lex_string(size_t i, bool raw) {
    const size_t start = raw ? i - 1 : i;
    const char q = src_[i];
    const bool triple = src_.substr(i, 3) == std::string(3, q);
    size_t j = i + (triple ? 3 : 1);
    std::string out;
    for (;;) {
      if (j >= src_.size()) return lex_error(start, "unterminated string literal");
      const char c = src_[j];
      if (triple ? src_.substr(j, 3) == std::string(3, q) : c == q) {
        j += triple ? 3 : 1;
        break;
      }
      if (!triple && (c == '\n' || c == '\r')) return lex_error(j, "newline in string literal");
      if (c != '\\' || raw) {
        out.push_back(c);
        ++j;
        continue;
      }
      if (++j >= src_.size()) return lex_error(start, "unterminated string literal");
      const char e = src_[j++];
      switch (e) {
        case 'n':
          out.push_back('\n');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case '\\':
        case '\'':
        case '"':
        case '`':
        case '?':
          out.push_back(e);
          break;
        case 'x':
        case 'X':
        case 'u':
        case 'U': {
          const size_t n = (e == 'x' || e == 'X') ? 2 : e == 'u' ? 4 : 8;
          if (j + n > src_.size()) return lex_error(j, "short escape sequence");
          uint32_t cp = 0;
          for (size_t k = 0; k < n; ++k) {
            const char h = src_[j + k];
            if (!std::isxdigit(static_cast<unsigned char>(h)))
              return lex_error(j, "bad escape sequence");
            cp = cp * 16 + static_cast<uint32_t>(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
          }
          j += n;
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return lex_error(j, "invalid code point in escape");
          append_utf8(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '3' && j + 1 < src_.size() && src_[j] >= '0' && src_[j] <= '7' &&
              src_[j + 1] >= '0' && src_[j + 1] <= '7') {
            out.push_back(
                static_cast<char>((e - '0') * 64 + (src_[j] - '0') * 8 + (src_[j + 1] - '0')));
            j += 2;
            break;
          }
          return lex_error(j - 1, fmt::format("unknown escape sequence '\\{}'", e));
      }
    }
    tok_.kind = Tok::kString;
    tok_.text = std::move(out);
    next_ = j;
    return true;
  }

  // ---- parser ----
  bool is_punct(std::string_view p) const { return tok_.kind == Tok::kPunct && tok_.text == p; }

  Result<void> expect(std::string_view p) {
    if (!is_punct(p))
      return fail(tok_.pos, fmt::format("expected '{}' but found '{}'", p,
                                        tok_.kind == Tok::kEnd ? "end of expression" : tok_.text));
    if (!advance()) return unexpected(error_);
    return {};
  }

  NodeP make(Node::Type t, size_t pos) {
    auto n = std::make_unique<Node>();
    n->type = t;
    n->pos = pos;
    return n;
  }

  struct Depth {
    int& d;
    explicit Depth(int& x) : d(x) { ++d; }
    ~Depth() { --d; }
  };

  R expr() {
    Depth guard(depth_);
    if (depth_ > kMaxNesting) return fail(tok_.pos, "expression nested too deeply");
    auto cond = logical(true);
    if (!cond || !is_punct("?")) return cond;
    auto n = make(Node::Type::kTernary, tok_.pos);
    if (!advance()) return unexpected(error_);
    auto a = logical(true);
    if (!a) return a;
    if (auto e = expect(":"); !e) return unexpected(e.error());
    auto b = expr();
    if (!b) return b;
    n->args.push_back(std::move(*cond));
    n->args.push_back(std::move(*a));
    n->args.push_back(std::move(*b));
    return n;
  }

  // || when `is_or`, else &&.
  R logical(bool is_or) {
    auto left = is_or ? logical(false) : relation();
    if (!left) return left;
    const char* op = is_or ? "||" : "&&";
    NodeP l = std::move(*left);
    while (is_punct(op)) {
      auto n = make(is_or ? Node::Type::kOr : Node::Type::kAnd, tok_.pos);
      if (!advance()) return unexpected(error_);
      auto right = is_or ? logical(false) : relation();
      if (!right) return right;
      n->args.push_back(std::move(l));
      n->args.push_back(std::move(*right));
      l = std::move(n);
    }
    return l;
  }

  R binary_chain(R (Parser::*next)(), std::initializer_list<std::string_view> ops) {
    auto left = (this->*next)();
    if (!left) return left;
    NodeP l = std::move(*left);
    for (;;) {
      std::string op;
      for (auto o : ops) {
        if (is_punct(o) || (o == "in" && tok_.kind == Tok::kIdent && tok_.text == "in"))
          op = std::string(o);
      }
      if (op.empty()) return l;
      auto n = make(Node::Type::kBinary, tok_.pos);
      n->name = op;
      if (!advance()) return unexpected(error_);
      auto right = (this->*next)();
      if (!right) return right;
      n->args.push_back(std::move(l));
      n->args.push_back(std::move(*right));
      l = std::move(n);
    }
  }

  R relation() { return binary_chain(&Parser::addition, {"==", "!=", "<", "<=", ">", ">=", "in"}); }
  R addition() { return binary_chain(&Parser::multiplication, {"+", "-"}); }
  R multiplication() { return binary_chain(&Parser::unary, {"*", "/", "%"}); }

  R unary() {
    Depth guard(depth_);
    if (depth_ > kMaxNesting) return fail(tok_.pos, "expression nested too deeply");
    if (is_punct("!") || is_punct("-")) {
      const bool is_not = tok_.text == "!";
      const size_t pos = tok_.pos;
      if (!advance()) return unexpected(error_);
      // A negative integer literal is folded so that the int64 minimum can be written.
      if (!is_not && (tok_.kind == Tok::kInt || tok_.kind == Tok::kDouble)) {
        auto lit = member();
        if (!lit) return lit;
        Node& l = **lit;
        if (l.type == Node::Type::kLiteral) {
          if (l.literal.is(Value::Kind::kUint)) {  // an int literal, held unsigned until here
            const uint64_t u = l.literal.as_uint();
            if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1)
              return fail(pos, "integer literal out of range");
            l.literal = Value(static_cast<int64_t>(0 - u));
            l.name.clear();  // now a finished int
            return lit;
          }
          if (l.literal.is(Value::Kind::kDouble)) {
            l.literal = Value(-l.literal.as_double());
            return lit;
          }
        }
        auto n = make(Node::Type::kNegate, pos);
        n->args.push_back(finish_int(std::move(*lit)));
        return n;
      }
      auto operand = unary();
      if (!operand) return operand;
      auto n = make(is_not ? Node::Type::kNot : Node::Type::kNegate, pos);
      n->args.push_back(std::move(*operand));
      return n;
    }
    auto m = member();
    if (!m) return m;
    return finish_int(std::move(*m));
  }

  // Int literals travel as uint until unary minus had its chance; then they must fit int64.
  NodeP finish_int(NodeP n) {
    if (n->type == Node::Type::kLiteral && n->name == "int") {
      n->name.clear();
      const uint64_t u = n->literal.as_uint();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        pending_error_ = fail(n->pos, "integer literal out of range").error;
      } else {
        n->literal = Value(static_cast<int64_t>(u));
      }
    }
    return n;
  }

  R member() {
    auto p = primary();
    if (!p) return p;
    NodeP n = std::move(*p);
    for (;;) {
      if (is_punct(".")) {
        const size_t pos = tok_.pos;
        if (!advance()) return unexpected(error_);
        if (tok_.kind != Tok::kIdent)
          return fail(tok_.pos, "expected a field or method name after '.'");
        std::string name = tok_.text;
        if (!advance()) return unexpected(error_);
        if (is_punct("(")) {
          auto call = call_or_macro(std::move(name), pos, std::move(n));
          if (!call) return call;
          n = std::move(*call);
        } else {
          auto s = make(Node::Type::kSelect, pos);
          s->name = std::move(name);
          s->target = finish_int(std::move(n));
          n = std::move(s);
        }
      } else if (is_punct("[")) {
        auto ix = make(Node::Type::kIndex, tok_.pos);
        if (!advance()) return unexpected(error_);
        auto key = expr();
        if (!key) return key;
        if (auto e = expect("]"); !e) return unexpected(e.error());
        ix->target = finish_int(std::move(n));
        ix->args.push_back(std::move(*key));
        n = std::move(ix);
      } else {
        return n;
      }
    }
  }

  Result<std::vector<NodeP>> arguments(std::string_view close) {
    std::vector<NodeP> args;
    if (!advance()) return unexpected(error_);  // past '(' or '['
    while (!is_punct(close)) {
      auto a = expr();
      if (!a) return unexpected(a.error());
      args.push_back(std::move(*a));
      if (is_punct(",")) {
        if (!advance()) return unexpected(error_);
        continue;
      }
      if (!is_punct(close))
        return fail(tok_.pos,
                    fmt::format("expected ',' or '{}' but found '{}'", close,
                                tok_.kind == Tok::kEnd ? "end of expression" : tok_.text));
    }
    if (!advance()) return unexpected(error_);
    return args;
  }

  static constexpr std::string_view kMacros[] = {"all", "exists", "exists_one", "map", "filter"};

  R call_or_macro(std::string name, size_t pos, NodeP target) {
    auto args = arguments(")");
    if (!args) return unexpected(args.error());
    if (target && std::find(std::begin(kMacros), std::end(kMacros), name) != std::end(kMacros)) {
      const size_t want_min = 2, want_max = name == "map" ? 3 : 2;
      if (args->size() < want_min || args->size() > want_max)
        return fail(pos, fmt::format("macro '{}' takes {} arguments", name,
                                     name == "map" ? "2 or 3" : "2"));
      if ((*args)[0]->type != Node::Type::kIdent)
        return fail((*args)[0]->pos,
                    fmt::format("the first argument of '{}' must be a variable name", name));
      auto c = make(Node::Type::kComprehension, pos);
      c->name = std::move(name);
      c->var = (*args)[0]->name;
      c->target = finish_int(std::move(target));
      for (size_t i = 1; i < args->size(); ++i)
        c->args.push_back(std::move((*args)[i]));
      return c;
    }
    if (!target && name == "has") {
      if (args->size() != 1 || (*args)[0]->type != Node::Type::kSelect)
        return fail(pos, "has() takes one field selection, e.g. has(self.spec)");
      auto h = make(Node::Type::kHas, pos);
      h->name = (*args)[0]->name;
      h->target = std::move((*args)[0]->target);
      return h;
    }
    auto fn = resolve_function(name, target != nullptr, args->size());
    if (!fn) return fail(pos, fn.error().message);
    auto c = make(Node::Type::kCall, pos);
    c->name = std::move(name);
    c->fn = *fn;
    if (target) c->target = finish_int(std::move(target));
    for (auto& a : *args)
      c->args.push_back(finish_int(std::move(a)));
    if (c->fn == Fn::kMatches) {
      const Node& pattern = *c->args.back();
      if (pattern.type == Node::Type::kLiteral && pattern.literal.is(Value::Kind::kString)) {
        auto re = compile_regex(pattern.literal.as_string());
        if (!re) return fail(pattern.pos, re.error().message);
        c->regex = std::move(*re);
      }
    }
    return c;
  }

  R primary() {
    const size_t pos = tok_.pos;
    switch (tok_.kind) {
      case Tok::kEnd:
        return fail(pos, "unexpected end of expression");
      case Tok::kInt:
      case Tok::kUint:
      case Tok::kDouble:
      case Tok::kString: {
        auto n = make(Node::Type::kLiteral, pos);
        if (tok_.kind == Tok::kInt) {
          n->literal = Value(tok_.u);
          n->name = "int";  // see finish_int
        } else if (tok_.kind == Tok::kUint) {
          n->literal = Value(tok_.u);
        } else if (tok_.kind == Tok::kDouble) {
          n->literal = Value(tok_.d);
        } else {
          n->literal = Value(tok_.text);
        }
        if (!advance()) return unexpected(error_);
        return n;
      }
      case Tok::kIdent: {
        std::string name = tok_.text;
        if (!advance()) return unexpected(error_);
        if (name == "true" || name == "false" || name == "null") {
          auto n = make(Node::Type::kLiteral, pos);
          if (name != "null") n->literal = Value(name == "true");
          return n;
        }
        if (is_punct("(")) return call_or_macro(std::move(name), pos, nullptr);
        if (name == "in") return fail(pos, "unexpected 'in'");
        auto n = make(Node::Type::kIdent, pos);
        n->name = std::move(name);
        return n;
      }
      case Tok::kPunct:
        break;
    }
    if (is_punct("(")) {
      if (!advance()) return unexpected(error_);
      auto e = expr();
      if (!e) return e;
      if (auto x = expect(")"); !x) return unexpected(x.error());
      return e;
    }
    if (is_punct("[")) {
      auto items = arguments("]");
      if (!items) return unexpected(items.error());
      auto n = make(Node::Type::kList, pos);
      for (auto& i : *items)
        n->args.push_back(finish_int(std::move(i)));
      return n;
    }
    if (is_punct("{")) return fail(pos, "map literals are not supported by nvdra's CEL subset");
    return fail(pos, "unexpected '" + tok_.text + "'");
  }

  std::string_view src_;
  size_t next_ = 0;
  Token tok_;
  Error error_;
  int depth_ = 0;

 public:
  std::optional<Error> pending_error_;
};

// Identifiers are resolved after parsing: a macro's loop variable is only known to be one once
// the macro call is complete. Every identifier must be a declared variable or a loop variable in
// scope.
Result<void> check_scopes(const Node& n, const std::vector<std::string>& vars,
                          std::vector<std::string>& locals) {
  if (n.type == Node::Type::kIdent) {
    if (std::find(vars.begin(), vars.end(), n.name) == vars.end() &&
        std::find(locals.begin(), locals.end(), n.name) == locals.end())
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("undeclared reference to '{}' at offset {}", n.name, n.pos));
    return {};
  }
  if (n.target) {
    if (auto r = check_scopes(*n.target, vars, locals); !r) return r;
  }
  if (n.type == Node::Type::kComprehension) locals.push_back(n.var);
  for (const auto& a : n.args) {
    if (auto r = check_scopes(*a, vars, locals); !r) return r;
  }
  if (n.type == Node::Type::kComprehension) locals.pop_back();
  return {};
}

}  // namespace

Result<std::unique_ptr<Node>> parse(std::string_view source,
                                    const std::vector<std::string>& variables) {
  Parser p(source);
  auto root = p.run();
  if (!root) return root;
  if (p.pending_error_) return unexpected(*p.pending_error_);
  std::vector<std::string> locals;
  if (auto r = check_scopes(**root, variables, locals); !r) return unexpected(r.error());
  return root;
}

}  // namespace nvdra::cel
