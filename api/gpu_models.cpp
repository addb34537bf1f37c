#include "api/gpu_models.h"

#include <algorithm>

namespace nvdra::api {
namespace {

// The MIG geometry shared by A100/H100/H200/GB200: 7 compute and 8 memory slices. Profiles are
// given by their names for the slots 1g, 1g with double memory, 2g, 3g, 4g and 7g ("" = absent).
std::vector<MigProfile> geometry(int64_t total_mib, std::string_view g1, std::string_view g1x2,
                                 std::string_view g2, std::string_view g3, std::string_view g4,
                                 std::string_view g7) {
  const int64_t slice = total_mib / 8;
  std::vector<MigProfile> out;
  auto add = [&](std::string_view name, int id, int compute, int memory,
                 std::vector<int> placements) {
    if (name.empty()) return;
    out.push_back(MigProfile{std::string(name), id, compute, memory, slice * memory,
                             std::move(placements), std::nullopt});
  };
  add(g1, 19, 1, 1, {0, 1, 2, 3, 4, 5, 6});
  add(g1x2, 15, 1, 2, {0, 2, 4, 6});
  add(g2, 14, 2, 2, {0, 2, 4});
  add(g3, 9, 3, 4, {0, 4});
  add(g4, 5, 4, 4, {0});
  add(g7, 0, 7, 8, {0});
  return out;
}

// An H200's GPU-instance profiles as NVML reported them with MIG disabled (driver 580.159.04,
// 2026-11-26): memory is a multiple of the 2 GiB granule, not an eighth of the GPU, and the
// engines do not scale evenly with the compute slices (1g.35gb has 26 SMs).
std::vector<MigProfile> h200_measured() {
  auto p = [](const char* name, int id, int compute, int memory, int64_t mib,
              std::vector<int> placements, MigEngines e) {
    return MigProfile{name, id, compute, memory, mib, std::move(placements), e};
  };
  return {p("1g.18gb", 19, 1, 1, 16384, {0, 1, 2, 3, 4, 5, 6}, {16, 1, 1, 0, 1, 0}),
          p("1g.35gb", 15, 1, 2, 33280, {0, 2, 4, 6}, {26, 1, 1, 0, 1, 0}),
          p("2g.35gb", 14, 2, 2, 33280, {0, 2, 4}, {32, 2, 2, 0, 2, 0}),
          p("3g.71gb", 9, 3, 4, 71424, {0, 4}, {60, 3, 3, 0, 3, 0}),
          p("4g.71gb", 5, 4, 4, 71424, {0}, {64, 4, 4, 0, 4, 0}),
          p("7g.141gb", 0, 7, 8, 143360, {0}, {132, 8, 7, 0, 7, 1})};
}

const std::vector<GpuModel>& models() {
  static const std::vector<GpuModel> kModels = [] {
    std::vector<GpuModel> m;
    m.push_back({"A100-40GB", "NVIDIA A100-SXM4-40GB", "Ampere", "Nvidia", "8.0", 40960, 108,
                 geometry(40960, "1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb")});
    m.push_back(
        {"A100-80GB", "NVIDIA A100-SXM4-80GB", "Ampere", "Nvidia", "8.0", 81920, 108,
         geometry(81920, "1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb")});
    m.push_back({"H100-80GB", "NVIDIA H100 80GB HBM3", "Hopper", "Nvidia", "9.0", 81559, 132,
                 geometry(81559, "1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "", "7g.80gb")});
    m.push_back(
        {"H200-141GB", "NVIDIA H200", "Hopper", "Nvidia", "9.0", 143771, 132, h200_measured()});
    m.push_back(
        {"GB200", "NVIDIA GB200", "Blackwell", "Nvidia", "10.0", 189471, 152,
         geometry(189471, "1g.23gb", "1g.47gb", "2g.47gb", "3g.93gb", "4g.93gb", "7g.186gb")});
    // PCI device IDs of the SXM parts (the H200's as read off one, docs/hardware.md).
    const std::pair<const char*, int> kPciIds[] = {{"A100-40GB", 0x20b0},
                                                   {"A100-80GB", 0x20b2},
                                                   {"H100-80GB", 0x2330},
                                                   {"H200-141GB", 0x2335},
                                                   {"GB200", 0x2941}};
    for (auto& model : m) {
      for (const auto& [id, pci] : kPciIds) {
        if (model.id == id) model.pci_device_id = pci;
      }
    }
    return m;
  }();
  return kModels;
}

}  // namespace

const GpuModel* find_gpu_model(std::string_view id) {
  for (const auto& m : models()) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

std::vector<std::string> gpu_model_ids() {
  std::vector<std::string> out;
  for (const auto& m : models())
    out.push_back(m.id);
  return out;
}

std::string profile_token(std::string_view profile) {
  std::string s(profile);
  s.erase(std::remove(s.begin(), s.end(), '.'), s.end());
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace nvdra::api
