// The agent's record of prepared claims, one file per driver (<plugins>/<driver>/
// nvdra-checkpoint.json). Two lines: a header {"kind","version","checksum"} and the payload, so
// the checksum covers the exact payload bytes. Written with write_file_atomic (fsync'd) before
// any reply to kubelet. Boost-free: fuzzed on its own.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace nvdra::agent {

inline constexpr int kCheckpointVersion = 1;

enum class ClaimState { kPrepareStarted, kPrepareCompleted };

struct CreatedMig {  // a MIG device this claim created (dynamic MIG), destroyed on unprepare
  int parent_minor = 0;
  std::string profile;
  int placement = 0;
  int gi = 0;
  std::string uuid;
  bool operator==(const CreatedMig&) const = default;
};

struct PreparedDevice {
  std::vector<std::string> requests;
  std::string pool, device;
  std::vector<std::string> cdi_ids;
  std::string type;  // gpu | mig | vfio | channel | daemon
  std::string uuid;  // GPU or MIG UUID ("" for channel/daemon)
  std::optional<CreatedMig> created_mig;
  std::string pci_bus_id;  // vfio: the GPU bound to vfio-pci, given back to nvidia on unprepare
  bool operator==(const PreparedDevice&) const = default;
};

struct PreparedClaim {
  ClaimState state = ClaimState::kPrepareStarted;
  std::string namespace_, name;
  std::vector<PreparedDevice> devices;
  std::string mps_id;                          // MPS control daemon of this claim, or ""
  std::vector<std::string> time_sliced_uuids;  // GPUs whose time slice this claim set
  std::string compute_domain;                  // channel claims: the ComputeDomain UID
  bool operator==(const PreparedClaim&) const = default;
};

struct Checkpoint {
  std::string boot_id;  // a reboot invalidates prepared state (devices, daemons are gone)
  std::map<std::string, PreparedClaim> claims;  // by claim UID
  bool operator==(const Checkpoint&) const = default;
};

std::string encode_checkpoint(const Checkpoint& c);
// kNotFound never; kInvalidArgument for a torn, corrupt or unknown-version file (the message
// says which).
Result<Checkpoint> decode_checkpoint(std::string_view text);

// kNotFound when there is no file yet.
Result<Checkpoint> load_checkpoint(const std::string& path);
Status save_checkpoint(const std::string& path, const Checkpoint& c);

const char* to_string(ClaimState s);

}  // namespace nvdra::agent
