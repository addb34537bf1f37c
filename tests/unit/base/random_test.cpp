#include "base/random.h"

#include <gtest/gtest.h>

#include <set>

namespace nvdra {
namespace {

TEST(Random, UuidIsAVersion4UuidAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string u = random_uuid();
    ASSERT_EQ(u.size(), 36u) << u;
    for (size_t p : {8u, 13u, 18u, 23u})
      EXPECT_EQ(u[p], '-') << u;
    EXPECT_EQ(u[14], '4') << u;
    EXPECT_NE(std::string("89ab").find(u[19]), std::string::npos) << u;
    EXPECT_TRUE(seen.insert(u).second) << "repeated " << u;
  }
}

}  // namespace
}  // namespace nvdra
