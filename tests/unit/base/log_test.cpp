#include "base/log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

#include "base/json.h"

namespace nvdra {
namespace {

struct Captured {
  std::ostringstream out;
  explicit Captured(log::Options o) {
    log::init(o, std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  }
  ~Captured() { log::init({}); }
};

TEST(Log, KlogTextLayout) {
  Captured c({log::Format::kText, 0});
  NVDRA_INFO("hello {}", 42);
  NVDRA_WARN("careful");
  std::string s = c.out.str();
  EXPECT_EQ(s[0], 'I');
  EXPECT_NE(s.find("log_test.cpp:"), std::string::npos);
  EXPECT_NE(s.find("] hello 42\n"), std::string::npos);
  EXPECT_NE(s.find("\nW"), std::string::npos);
}

TEST(Log, VerbosityGatesVLines) {
  Captured c({log::Format::kText, 2});
  NVDRA_V(2, "shown");
  NVDRA_V(3, "hidden");
  EXPECT_NE(c.out.str().find("shown"), std::string::npos);
  EXPECT_EQ(c.out.str().find("hidden"), std::string::npos);
}

TEST(Log, JsonLinesAreValidJson) {
  Captured c({log::Format::kJson, 0});
  NVDRA_ERROR("quote \" backslash \\ newline \n tab \t ctl \x01 done");
  std::string line = c.out.str();
  ASSERT_FALSE(line.empty());
  ASSERT_EQ(line.back(), '\n');
  auto doc = json::parse(line);
  ASSERT_TRUE(doc) << line;
  EXPECT_EQ(json::string_or(*doc, "level"), "error");
  EXPECT_EQ(json::string_or(*doc, "msg"), "quote \" backslash \\ newline \n tab \t ctl \x01 done");
  EXPECT_NE(json::string_or(*doc, "caller").find("log_test.cpp:"), std::string::npos);
}

TEST(Log, SecretsAreRedacted) {
  EXPECT_EQ(log::redact("abc"), "<redacted>");
  EXPECT_EQ(log::redact_header("Authorization", "Bearer eyJhbGciOi.secret"), "Bearer <redacted>");
  EXPECT_EQ(log::redact_header("authorization", "s3cr3t"), "<redacted>");
  EXPECT_EQ(log::redact_header("Accept", "application/json"), "application/json");
}

TEST(Log, ParseFormat) {
  log::Format f;
  EXPECT_TRUE(log::parse_format("json", &f));
  EXPECT_EQ(f, log::Format::kJson);
  EXPECT_FALSE(log::parse_format("xml", &f));
}

}  // namespace
}  // namespace nvdra
