#include "agent/state/checkpoint.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace nvdra::agent {
namespace {

Checkpoint sample() {
  Checkpoint c;
  c.boot_id = "b1";
  PreparedClaim done;
  done.state = ClaimState::kPrepareCompleted;
  done.namespace_ = "ns";
  done.name = "claim-a";
  PreparedDevice d{{"gpu"},
                   "node-1",
                   "gpu-1-mig-1g10gb-19-0",
                   {"k8s.gpu.nvidia.com/claim=u1-gpu-1"},
                   "mig",
                   "MIG-1",
                   CreatedMig{1, "1g.10gb", 0, 2, "MIG-1"}};
  done.devices.push_back(d);
  done.mps_id = "u1-abcde";
  done.time_sliced_uuids = {"GPU-1"};
  c.claims["u1"] = done;
  PreparedClaim started;
  started.namespace_ = "ns";
  started.name = "quote\"and\\slash";
  started.compute_domain = "cd-uid";
  c.claims["u2"] = started;
  return c;
}

TEST(Checkpoint, RoundTripsEveryField) {
  const Checkpoint c = sample();
  auto back = decode_checkpoint(encode_checkpoint(c));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, c);
}

TEST(Checkpoint, DetectsCorruption) {
  std::string text = encode_checkpoint(sample());
  const size_t pos = text.find("claim-a");
  text[pos] = 'C';
  auto r = decode_checkpoint(text);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("checksum mismatch"), std::string::npos) << r.error().message;
}

TEST(Checkpoint, DetectsTornWrites) {
  const std::string text = encode_checkpoint(sample());
  for (size_t cut : {size_t{0}, size_t{10}, text.find('\n'), text.size() / 2, text.size() - 3}) {
    auto r = decode_checkpoint(text.substr(0, cut));
    EXPECT_FALSE(r) << "cut at " << cut;
  }
}

TEST(Checkpoint, RefusesOtherVersionsAndFormats) {
  std::string text = encode_checkpoint(sample());
  text.replace(text.find("\"version\":1"), 11, "\"version\":7");
  auto r = decode_checkpoint(text);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "checkpoint version 7 is not supported (this agent reads version 1)");
  // NVIDIA's checkpoint.json is a different format: a clear error, not a crash.
  EXPECT_FALSE(decode_checkpoint(R"({"checksum":123,"v2":{"preparedClaims":{}}})"));
}

TEST(Checkpoint, SavesAtomicallyWithOwnerOnlyMode) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("nvdra-cp-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "cp.json").string();
  EXPECT_EQ(load_checkpoint(path).error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(save_checkpoint(path, sample()));
  ASSERT_TRUE(save_checkpoint(path, sample()));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(*load_checkpoint(path), sample());
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir))
    ++files;
  EXPECT_EQ(files, 1);  // no temporary left behind
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nvdra::agent
