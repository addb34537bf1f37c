#include "cel/cel.h"

#include <gtest/gtest.h>

#include <chrono>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cel/functions.h"
#include "sim/yaml_json.h"
#include "tests/data/test_data.h"

namespace nvdra::cel {
namespace {

using K = Value::Kind;

// A device as the DRA CEL environment presents it: attributes and capacity per domain.
Value device(std::string driver, Map attrs, Map capacity) {
  Map domains_a, domains_c;
  domains_a.missing_key_is_empty_map = domains_c.missing_key_is_empty_map = true;
  domains_a.entries.emplace(driver, Value(std::move(attrs)));
  domains_c.entries.emplace(driver, Value(std::move(capacity)));
  Map d;
  d.entries.emplace("driver", Value(driver));
  d.entries.emplace("attributes", Value(std::move(domains_a)));
  d.entries.emplace("capacity", Value(std::move(domains_c)));
  return Value(std::move(d));
}

Value a100(int64_t index) {
  Map attrs;
  attrs.entries = {{"type", Value("gpu")},
                   {"index", Value(index)},
                   {"productName", Value("NVIDIA A100-SXM4-40GB")},
                   {"architecture", Value("Ampere")},
                   {"driverVersion", Value(*Semver::parse("550.54.15"))},
                   {"cudaComputeCapability", Value(*Semver::parse("8.0.0"))}};
  Map cap;
  cap.entries = {{"memory", Value(*Quantity::parse("40Gi"))}};
  return device("gpu.nvidia.com", std::move(attrs), std::move(cap));
}

Value mig(std::string profile) {
  Map attrs;
  attrs.entries = {
      {"type", Value("mig")}, {"profile", Value(std::move(profile))}, {"index", Value(0)}};
  Map cap;
  cap.entries = {{"memory", Value(*Quantity::parse("4864Mi"))}};
  return device("gpu.nvidia.com", std::move(attrs), std::move(cap));
}

Value channel(int64_t id) {
  Map attrs;
  attrs.entries = {{"type", Value("channel")}, {"id", Value(id)}};
  return device("compute-domain.nvidia.com", std::move(attrs), Map{});
}

Result<Value> run(std::string_view expr, const Activation& vars = {}) {
  std::vector<std::string> names;
  for (const auto& [k, v] : vars)
    names.push_back(k);
  auto p = Program::compile(expr, names);
  if (!p) return unexpected(p.error());
  return p->evaluate(vars);
}

bool truth(std::string_view expr, const Activation& vars = {}) {
  auto v = run(expr, vars);
  EXPECT_TRUE(v.has_value()) << expr << ": " << (v ? "" : v.error().message);
  EXPECT_TRUE(!v || v->is(K::kBool)) << expr;
  return v && v->is(K::kBool) && v->as_bool();
}

std::string compile_error(std::string_view expr, std::vector<std::string> vars = {"device"}) {
  auto p = Program::compile(expr, vars);
  EXPECT_FALSE(p.has_value()) << expr;
  return p ? "" : p.error().message;
}

std::string eval_error(std::string_view expr, const Activation& vars = {}) {
  auto v = run(expr, vars);
  EXPECT_FALSE(v.has_value()) << expr << " = " << (v ? v->debug_string() : "");
  return v ? "" : v.error().message;
}

TEST(Cel, LiteralsAndOperators) {
  EXPECT_TRUE(truth("1 + 2 * 3 == 7"));
  EXPECT_TRUE(truth("(1 + 2) * 3 == 9"));
  EXPECT_TRUE(truth("-9223372036854775808 < 0 && [-4, 2][0] + 1 == -3"));
  EXPECT_TRUE(truth("7 / 2 == 3 && 7 % 2 == 1 && -7 / 2 == -3"));
  EXPECT_TRUE(truth("2u + 3u == 5u && 1.5 * 2.0 == 3.0"));
  EXPECT_TRUE(truth("1 == 1.0 && 1u == 1 && 2 > 1.5"));  // heterogeneous numeric comparisons
  EXPECT_TRUE(truth("'a' + 'b' == 'ab' && 'abc' < 'abd'"));
  EXPECT_TRUE(truth("\"dq\" == 'dq' && '''tri'ple''' == \"tri'ple\" && r'\\d' == '\\\\d'"));
  EXPECT_TRUE(truth("'\\x41\\u00e9\\n' == 'A\u00e9\\n'"));
  EXPECT_TRUE(truth("0x1F == 31"));
  EXPECT_TRUE(truth("!false && !!true"));
  EXPECT_TRUE(truth("true ? 1 == 1 : 1 / 0 == 1"));
  EXPECT_TRUE(truth("null == null && 1 != 'a' && [1, 2] == [1, 2] && [1] != [2]"));
  EXPECT_TRUE(truth("2 in [1, 2, 3] && !(4 in [1, 2, 3]) && [1] + [2] == [1, 2]"));
  EXPECT_TRUE(truth("// a comment\n true"));
}

TEST(Cel, ErrorsAbsorbedByLogicalOperatorsLikeCel) {
  EXPECT_TRUE(truth("1 / 0 == 1 || true"));
  EXPECT_FALSE(truth("1 / 0 == 1 && false"));
  EXPECT_NE(eval_error("1 / 0 == 1 && true").find("division by zero"), std::string::npos);
  EXPECT_NE(eval_error("false || 1 / 0 == 1").find("division by zero"), std::string::npos);
}

TEST(Cel, RuntimeAndTypeErrors) {
  EXPECT_NE(eval_error("9223372036854775807 + 1 == 0").find("overflow"), std::string::npos);
  EXPECT_NE(
      eval_error("1 + 'a' == 2").find("no matching overload for '+' applied to (int, string)"),
      std::string::npos);
  EXPECT_NE(eval_error("'a' < 1").find("no matching overload for '<'"), std::string::npos);
  EXPECT_NE(eval_error("[1][3] == 1").find("index out of bounds"), std::string::npos);
  EXPECT_NE(eval_error("1.startsWith('a')")
                .find("no matching overload for 'startsWith' applied to (int, string)"),
            std::string::npos);
  EXPECT_NE(eval_error("!1").find("no matching overload for '!'"), std::string::npos);
  EXPECT_NE(eval_error("1 && true").find("'&&'"), std::string::npos);
  auto nonbool = Program::compile("1 + 1", {});
  ASSERT_TRUE(nonbool);
  auto r = nonbool->evaluate_bool({});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("must evaluate to a bool, not int"), std::string::npos);
}

TEST(Cel, CompileErrorsNameWhatIsWrong) {
  EXPECT_NE(compile_error("device.driver = 'x'").find("'=' is not an operator"), std::string::npos);
  EXPECT_NE(compile_error("device.driver == 'x").find("unterminated string"), std::string::npos);
  EXPECT_NE(compile_error("(device.driver == 'x'").find("expected ')'"), std::string::npos);
  EXPECT_NE(compile_error("device.driver == ").find("unexpected end"), std::string::npos);
  EXPECT_NE(
      compile_error("device.driver.split('.') == []").find("function 'split' is not supported"),
      std::string::npos);
  EXPECT_NE(compile_error("size() == 0").find("no overload of 'size'"), std::string::npos);
  EXPECT_NE(compile_error("{'a': 1}.size() == 1").find("map literals are not supported"),
            std::string::npos);
  EXPECT_NE(compile_error("gpu.driver == 'x'").find("undeclared reference to 'gpu'"),
            std::string::npos);
  EXPECT_NE(compile_error("[1].all(x, y > 0)").find("undeclared reference to 'y'"),
            std::string::npos);
  EXPECT_NE(compile_error("9223372036854775808 > 0").find("out of range"), std::string::npos);
  EXPECT_NE(compile_error("'a'.matches('(')").find("invalid regular expression"),
            std::string::npos);
  EXPECT_NE(compile_error("'a'.matches('((a{100}){100})')").find("invalid repetition size"),
            std::string::npos);
  EXPECT_NE(compile_error("'\\q'").find("unknown escape"), std::string::npos);
  EXPECT_NE(compile_error("b'x' == b'x'").find("bytes literals"), std::string::npos);
  EXPECT_NE(
      compile_error(std::string(200, '(') + "1" + std::string(200, ')')).find("nested too deeply"),
      std::string::npos);
  EXPECT_NE(compile_error(std::string(11 * 1024, ' ') + "true").find("longer than"),
            std::string::npos);
}

TEST(Cel, StringFunctions) {
  EXPECT_TRUE(
      truth("'NVIDIA A100'.lowerAscii() == 'nvidia a100' && 'a100'.upperAscii() == 'A100'"));
  EXPECT_TRUE(truth("'gpu-0'.startsWith('gpu') && 'gpu-0'.endsWith('-0') && 'abc'.contains('b')"));
  EXPECT_TRUE(truth("'NVIDIA A100-SXM4'.matches('A100') && !'H100'.matches('^A')"));
  EXPECT_TRUE(truth("matches('H200', '^H[0-9]+$') && 'x'.matches('(?i)X')"));
  EXPECT_TRUE(truth("size('héllo') == 5 && 'abc'.size() == 3 && size([1, 2]) == 2"));
  EXPECT_TRUE(truth("int('42') == 42 && uint(3) == 3u && double(1) == 1.0 && string(7) == '7'"));
  EXPECT_NE(eval_error("int('4x2') == 0").find("cannot convert"), std::string::npos);
  // Longer subjects than the old backtracking matcher's 16 KiB cap (from a variable: expressions
  // are capped at 10 KiB).
  EXPECT_TRUE(truth("s.matches('a')", {{"s", Value(std::string(20000, 'a'))}}));
}

// Kubernetes' CEL matches() is RE2: linear in the subject, whatever the pattern. A backtracking
// matcher took 8.4 s on this 29-character subject (and stalled the API server's thread).
TEST(Cel, MatchesIsLinearTimeWithRe2Semantics) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(truth("!'aaaaaaaaaaaaaaaaaaaaaaaaaaaaa!'.matches('^(a+)+$')"));
  EXPECT_TRUE(truth("!matches('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!', '^(a|aa)*$')"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  // RE2 syntax that ECMAScript lacks, and the other way round.
  EXPECT_TRUE(truth("'gpu-0'.matches(r'\\Agpu-[[:digit:]]\\z') && 'x'.matches('(?P<n>x)')"));
  EXPECT_NE(compile_error("'a'.matches('(?=a)')").find("invalid regular expression"),
            std::string::npos);
  // A pattern computed at run time: compiled (and cached) then, an invalid one is a CEL error.
  EXPECT_TRUE(truth("'H100'.matches('^' + 'H' + '[0-9]+$')"));
  EXPECT_TRUE(truth("'H100'.matches('^' + 'H' + '[0-9]+$')"));
  EXPECT_NE(eval_error("'a'.matches('(' + '')").find("invalid regular expression"),
            std::string::npos);
}

TEST(Cel, MatchesCostsSubjectTimesPatternLength) {
  // cel-go: ceil((1 + 99999) * 0.1) * ceil(100 * 0.25) = 10000 * 25 = 250000.
  EXPECT_EQ(matches_cost(99999, 100), 250000u);
  const Activation vars{{"s", Value(std::string(400000, 'a'))}};
  const std::string pattern = "'" + std::string(100, 'a') + "'";
  auto over = run("s.matches(" + pattern + ")", vars);
  ASSERT_FALSE(over);
  EXPECT_NE(over.error().message.find("cost limit exceeded"), std::string::npos);
  EXPECT_TRUE(truth("s.matches('a')", vars));
}

TEST(Cel, QuantityAndSemverLibraries) {
  EXPECT_TRUE(truth("quantity('40Gi').compareTo(quantity('40960Mi')) == 0"));
  EXPECT_TRUE(
      truth("quantity('1G').isLessThan(quantity('1Gi')) && "
            "quantity('2').isGreaterThan(quantity('1500m'))"));
  EXPECT_TRUE(
      truth("quantity('2Ki').asInteger() == 2048 && quantity('500m').asApproximateFloat() == 0.5"));
  EXPECT_TRUE(truth("!quantity('500m').isInteger() && quantity('-1').sign() == -1"));
  EXPECT_TRUE(truth("isQuantity('1Gi') && !isQuantity('1 Gi')"));
  EXPECT_TRUE(truth("semver('550.54.15').compareTo(semver('550.0.0')) > 0"));
  EXPECT_TRUE(truth("semver('1.0.0-alpha').isLessThan(semver('1.0.0'))"));
  EXPECT_TRUE(truth("semver('1.0.0-2').compareTo(semver('1.0.0-10')) < 0"));
  EXPECT_TRUE(truth("semver('1.2.3+build').compareTo(semver('1.2.3')) == 0"));
  EXPECT_TRUE(
      truth("semver('12.4.0').major() == 12 && semver('12.4.0').minor() == 4 && "
            "semver('1.2.3').patch() == 3"));
  EXPECT_TRUE(truth("isSemver('1.2.3') && !isSemver('1.2') && !isSemver('01.2.3')"));
  EXPECT_NE(eval_error("quantity('lots') == quantity('1')").find("quantities must match"),
            std::string::npos);
  EXPECT_NE(eval_error("semver('1.2').major() == 1").find("invalid semver"), std::string::npos);
  EXPECT_NE(eval_error("quantity('1').compareTo(semver('1.0.0')) == 0")
                .find("no matching overload for 'compareTo'"),
            std::string::npos);
}

TEST(Cel, DeviceSelectors) {
  const Activation gpu{{"device", a100(2)}};
  EXPECT_TRUE(truth(
      "device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type == 'gpu'",
      gpu));
  EXPECT_TRUE(
      truth("device.capacity['gpu.nvidia.com'].memory.compareTo(quantity('40Gi')) >= 0", gpu));
  EXPECT_TRUE(truth(
      "device.attributes['gpu.nvidia.com'].driverVersion.compareTo(semver('550.0.0')) >= 0", gpu));
  EXPECT_TRUE(truth("device.attributes['gpu.nvidia.com'].architecture == 'Ampere'", gpu));
  // An unknown domain reads as an empty map; an unknown attribute in it is an error.
  EXPECT_FALSE(truth("has(device.attributes['example.com'].x)", gpu));
  EXPECT_TRUE(truth("'type' in device.attributes['gpu.nvidia.com']", gpu));
  EXPECT_NE(
      eval_error("device.attributes['gpu.nvidia.com'].nope == 1", gpu).find("no such key: nope"),
      std::string::npos);
  EXPECT_NE(eval_error("device.attributes['example.com'].x == 1", gpu).find("no such key: x"),
            std::string::npos);
}

TEST(Cel, MacrosOverListsAndMaps) {
  const Activation self{
      {"self", Value::from_json(
                   *json::parse(R"({"spec":{"numNodes":2,"items":[1,2,3],"labels":{"a":"x"}}})"))}};
  EXPECT_TRUE(truth("self.spec.items.all(i, i > 0) && self.spec.items.exists(i, i == 2)", self));
  EXPECT_TRUE(
      truth("self.spec.items.exists_one(i, i > 2) && !self.spec.items.exists_one(i, i > 1)", self));
  EXPECT_TRUE(truth("self.spec.items.map(i, i * 2) == [2, 4, 6]", self));
  EXPECT_TRUE(truth("self.spec.items.map(i, i > 1, i * 10) == [20, 30]", self));
  EXPECT_TRUE(truth("self.spec.items.filter(i, i != 2) == [1, 3]", self));
  EXPECT_TRUE(truth(
      "self.spec.labels.all(k, k == 'a') && has(self.spec.numNodes) && !has(self.status)", self));
  EXPECT_TRUE(truth("[0, 1].exists(i, 1 / i == 1)"));  // the error at i=0 is absorbed
  EXPECT_NE(eval_error("[0].all(i, 1 / i == 1)").find("division by zero"), std::string::npos);
}

TEST(Cel, CostLimitStopsRunawayExpressions) {
  auto p = Program::compile(
      "[1,2,3,4,5,6,7,8].all(a, [1,2,3,4,5,6,7,8].all(b, [1,2,3,4,5,6,7,8].all(c, "
      "[1,2,3,4,5,6,7,8].all(d, [1,2,3,4,5,6,7,8].all(e, a + b + c + d + e > 0)))))",
      {});
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->evaluate({}).has_value());
  auto limited = p->evaluate({}, 1000);
  ASSERT_FALSE(limited);
  EXPECT_NE(limited.error().message.find("cost limit"), std::string::npos);
}

TEST(Cel, TransitionRulesKnowWhetherTheyReadOldSelf) {
  auto p = Program::compile("self == oldSelf", {"self", "oldSelf"});
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->references("oldSelf"));
  auto q = Program::compile("self.x > 0", {"self", "oldSelf"});
  ASSERT_TRUE(q);
  EXPECT_FALSE(q->references("oldSelf"));
}

// Every selector NVIDIA's demo manifests and our DeviceClasses use compiles and picks the
// devices it is meant to pick.
void collect_expressions(const json::Value& v, std::vector<std::string>& out) {
  if (v.IsObject()) {
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
      if (std::string_view(m->name.GetString()) == "expression" && m->value.IsString())
        out.emplace_back(m->value.GetString());
      collect_expressions(m->value, out);
    }
  } else if (v.IsArray()) {
    for (const auto& e : v.GetArray())
      collect_expressions(e, out);
  }
}

// The CEL expressions in one YAML file, or in every YAML file under a folder.
std::vector<std::string> expressions_in(const std::filesystem::path& root) {
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_regular_file(root)) files.push_back(root);
  if (std::filesystem::is_directory(root))
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root))
      if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  std::vector<std::string> out;
  for (const auto& path : files) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    auto docs = sim::parse_yaml_documents(ss.str());
    EXPECT_TRUE(docs.has_value()) << path;
    if (!docs) continue;
    for (const auto& d : *docs)
      collect_expressions(d, out);
  }
  return out;
}

TEST(Cel, CompatCorpusSelectors) {
  NVDRA_DATA_DIR(compat, testdata::kCompat);
  auto all = expressions_in(compat);
  ASSERT_GE(all.size(), 5u);
  for (const auto& e : all)
    ASSERT_TRUE(Program::compile(e, {"device"})) << e;
  // The quickstart manifests come in both resource.k8s.io versions; each set picks the same.
  for (const char* version : {"v1", "v1beta1"}) {
    int matched_mig = 0, matched_a100 = 0;
    for (const auto& e : expressions_in(compat / "quickstart" / version)) {
      auto p = Program::compile(e, {"device"});
      ASSERT_TRUE(p) << e << ": " << p.error().message;
      for (const auto& d :
           {a100(0), a100(2), a100(1), mig("1g.5gb"), mig("2g.10gb"), mig("3g.20gb")}) {
        auto r = p->evaluate_bool({{"device", d}});
        // MIG devices have no productName: a GPU selector on them is the error the real
        // scheduler reports too, so only GPU/MIG-consistent outcomes are counted.
        if (r && *r) (e.find("profile") != std::string::npos ? matched_mig : matched_a100)++;
      }
    }
    // gpu-test4: 1g.5gb twice, 2g.10gb, 3g.20gb, each matching its own device.
    EXPECT_EQ(matched_mig, 4) << version;
    // gpu-test6: even indices 0 and 2 of the A100s offered.
    EXPECT_EQ(matched_a100, 2) << version;
  }
}

TEST(Cel, OurDeviceClassSelectors) {
  // The DeviceClasses' selectors; the admission policies' CEL runs in kube-apiserver, not here.
  auto exprs =
      expressions_in(std::filesystem::path(NVDRA_MANIFESTS_DIR) / "base/deviceclasses.yaml");
  ASSERT_EQ(exprs.size(), 5u);
  std::map<std::string, int> hits;
  for (const auto& e : exprs) {
    auto p = Program::compile(e, {"device"});
    ASSERT_TRUE(p) << e;
    for (const auto& [name, d] :
         std::vector<std::pair<std::string, Value>>{{"gpu", a100(0)},
                                                    {"mig", mig("1g.5gb")},
                                                    {"channel0", channel(0)},
                                                    {"channel5", channel(5)}}) {
      auto r = p->evaluate_bool({{"device", d}});
      ASSERT_TRUE(r) << e << " on " << name << ": " << r.error().message;
      if (*r) hits[name]++;
    }
  }
  EXPECT_EQ(hits["gpu"], 1);
  EXPECT_EQ(hits["mig"], 1);
  EXPECT_EQ(hits["channel0"], 1);  // only the default-channel class
  EXPECT_EQ(hits["channel5"], 0);
}

}  // namespace
}  // namespace nvdra::cel
