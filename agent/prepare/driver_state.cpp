#include "agent/prepare/driver_state.h"

#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "base/log.h"

namespace nvdra::agent {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string device_key(const AllocatedDevice& d) {
  return d.pool + "/" + d.device;
}

std::string main_type(const PreparedClaim& c) {
  return c.devices.empty() ? std::string("unknown") : c.devices.front().type;
}

std::string rollback_pending_message(const std::string& uid, const std::string& why) {
  return fmt::format(
      "claim {} is failed: rolling back its earlier, half-done prepare failed "
      "({}); the agent retries the rollback in the background",
      uid, why);
}

}  // namespace

namespace {
std::string& crash_marker_dir() {
  static std::string dir = ".";
  return dir;
}
}  // namespace

void set_crash_marker_dir(std::string dir) {
  crash_marker_dir() = std::move(dir);
}

void crash_point(std::string_view point) {
  static const char* want = std::getenv("NVDRA_AGENT_CRASH_AT");
  if (!want || point != want) return;
  const std::string marker = fmt::format("{}/.crashed-at-{}", crash_marker_dir(), point);
  if (std::filesystem::exists(marker)) return;
  std::ofstream(marker) << "1\n";
  NVDRA_WARN("crash point {} reached: killing the agent (NVDRA_AGENT_CRASH_AT)", point);
  ::kill(::getpid(), SIGKILL);
}

DriverState::DriverState(DriverStateOptions options, std::unique_ptr<DeviceHandler> handler,
                         ClusterAccess& cluster, CdiWriter cdi, DriverStats stats)
    : opt_(std::move(options)),
      handler_(std::move(handler)),
      cluster_(cluster),
      cdi_(std::move(cdi)),
      stats_(std::move(stats)) {}

DriverState::~DriverState() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  retry_cv_.notify_all();
  if (retry_thread_.joinable()) retry_thread_.join();
}

Status DriverState::save_locked() {
  auto s = save_checkpoint(opt_.checkpoint_path, checkpoint_);
  if (s && stats_.prepared_changed) stats_.prepared_changed(checkpoint_);
  return s;
}

Checkpoint DriverState::snapshot() const {
  std::lock_guard lock(mu_);
  return checkpoint_;
}

Status DriverState::start() {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(opt_.checkpoint_path).parent_path(),
                                      ec);
  auto loaded = load_checkpoint(opt_.checkpoint_path);
  // Removing host state no checkpoint entry references is safe only when the checkpoint was read.
  bool sweep = true;
  if (loaded) {
    checkpoint_ = std::move(*loaded);
  } else if (loaded.error().code == ErrorCode::kInvalidArgument) {
    // Keep the bad file for inspection and start empty. What it recorded cannot be trusted, so
    // nothing on the host is removed as an orphan this time (it may belong to running pods).
    sweep = false;
    const std::string aside = fmt::format("{}.bad-{}", opt_.checkpoint_path,
                                          std::chrono::duration_cast<std::chrono::seconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
    std::filesystem::rename(opt_.checkpoint_path, aside, ec);
    NVDRA_ERROR("{}: {}; moved it to {} and starting with no prepared claims", handler_->driver(),
                loaded.error().message, aside);
    cluster_.warning_event("Node", "", opt_.node_name, "", "CheckpointUnreadable",
                           fmt::format("{} checkpoint unreadable ({}); kept as {}; prepared claims "
                                       "recovered from their CDI specs",
                                       handler_->driver(), loaded.error().message, aside));
    recover_from_cdi_specs();
  } else if (loaded.error().code != ErrorCode::kNotFound) {
    // The file is there but could not be read (permissions, I/O error, out of file descriptors):
    // it may well be intact. Starting empty would sweep every prepared claim's CDI spec, MPS
    // daemon, MIG device and VFIO binding, so the driver does not start; the agent exits and its
    // restart is the retry. Nothing is changed on the host or in the file.
    NVDRA_ERROR("{}: the checkpoint exists but cannot be read: {}; not starting, nothing removed",
                handler_->driver(), loaded.error().message);
    cluster_.warning_event("Node", "", opt_.node_name, "", "CheckpointUnreadable",
                           fmt::format("{} checkpoint cannot be read ({}); the driver does not "
                                       "start until it can be; no prepared state was removed",
                                       handler_->driver(), loaded.error().message));
    return unexpected(
        loaded.error().wrap("the checkpoint exists but cannot be read; not starting "
                            "(no prepared state was removed)"));
  }
  if (!opt_.boot_id.empty() && !checkpoint_.boot_id.empty() &&
      checkpoint_.boot_id != opt_.boot_id) {
    NVDRA_INFO("{}: invalidating checkpoint: boot ID changed ({} → {})", handler_->driver(),
               checkpoint_.boot_id, opt_.boot_id);
    checkpoint_.claims.clear();
  }
  checkpoint_.boot_id = opt_.boot_id;
  // Half-done prepares: undo them; kubelet repeats the call until it gets an answer.
  for (auto it = checkpoint_.claims.begin(); it != checkpoint_.claims.end();) {
    if (it->second.state == ClaimState::kPrepareStarted) {
      NVDRA_INFO("{}: rolling back partially prepared claim {}/{}:{}", handler_->driver(),
                 it->second.namespace_, it->second.name, it->first);
      if (auto s = roll_back(it->first, it->second); !s) {
        // One claim's leftovers must not keep the node from serving the others.
        rollback_failed(it->first, it->second, s.error());
        ++it;
        continue;
      }
      it = checkpoint_.claims.erase(it);
    } else {
      ++it;
    }
  }
  {
    std::lock_guard lock(mu_);
    if (auto s = save_locked(); !s) return s;
    report_rollbacks_locked();
    if (!failed_rollbacks_.empty()) retry_thread_ = std::thread([this] { retry_rollbacks(); });
  }
  for (const auto& uid : cdi_.claim_uids(handler_->cdi_kind())) {
    if (!checkpoint_.claims.contains(uid)) {
      NVDRA_INFO("{}: removing orphaned CDI spec of claim {}", handler_->driver(), uid);
      (void)cdi_.remove(handler_->cdi_kind(), uid);
    }
  }
  if (sweep) {
    handler_->sweep_orphans(checkpoint_);
  } else {
    NVDRA_WARN("{}: no orphan sweep after an unreadable checkpoint", handler_->driver());
  }
  NVDRA_INFO("{}: {} prepared claim(s) in the checkpoint", handler_->driver(),
             checkpoint_.claims.size());
  return ok();
}

Status DriverState::roll_back(const std::string& uid, const PreparedClaim& entry) {
  if (auto s = handler_->unprepare(uid, entry); !s) return s;
  (void)cdi_.remove(handler_->cdi_kind(), uid);
  return ok();
}

void DriverState::rollback_failed(const std::string& uid, const PreparedClaim& entry,
                                  const Error& error) {
  NVDRA_ERROR(
      "{}: rolling back claim {}/{}:{} failed: {}; it stays failed and is retried in the "
      "background",
      handler_->driver(), entry.namespace_, entry.name, uid, error.message);
  cluster_.warning_event("ResourceClaim", entry.namespace_, entry.name, uid, "RollbackFailed",
                         fmt::format("{}: rolling back the half-done prepare failed ({}); the "
                                     "claim cannot be prepared or unprepared until a retry works",
                                     handler_->driver(), error.message));
  std::lock_guard lock(mu_);
  failed_rollbacks_[uid] = error.message;
}

void DriverState::report_rollbacks_locked() {
  if (stats_.rollbacks_pending) stats_.rollbacks_pending(failed_rollbacks_.size());
}

void DriverState::retry_rollbacks() {
  auto delay = opt_.rollback_retry_initial;
  std::unique_lock lock(mu_);
  while (!failed_rollbacks_.empty()) {
    if (retry_cv_.wait_for(lock, delay, [&] { return stopping_; })) return;
    delay = std::min(delay * 2, opt_.rollback_retry_max);
    std::vector<std::string> uids;
    for (const auto& [uid, why] : failed_rollbacks_)
      uids.push_back(uid);
    for (const auto& uid : uids) {
      if (stopping_) return;
      const PreparedClaim entry = checkpoint_.claims.at(uid);
      busy_claims_.insert(uid);
      lock.unlock();
      const Status s = roll_back(uid, entry);
      lock.lock();
      busy_claims_.erase(uid);
      if (s) {
        checkpoint_.claims.erase(uid);
        failed_rollbacks_.erase(uid);
        if (auto saved = save_locked(); !saved)
          NVDRA_ERROR("{}: writing the checkpoint: {}", handler_->driver(), saved.error().message);
        NVDRA_INFO("{}: rolled back claim {}/{}:{} on a retry", handler_->driver(),
                   entry.namespace_, entry.name, uid);
      } else {
        failed_rollbacks_[uid] = s.error().message;
        NVDRA_WARN("{}: rolling back claim {} failed again: {}; next try in {} ms",
                   handler_->driver(), uid, s.error().message, delay.count());
      }
      cv_.notify_all();
    }
    report_rollbacks_locked();
  }
}

void DriverState::release_devices(const std::vector<std::string>& devices) {
  for (const auto& d : devices)
    busy_devices_.erase(d);
}

// Containers get devices only through CDI specs, so a claim with a spec may be in use: it is
// taken as prepared, with what its spec and the host still show. Everything else is swept.
void DriverState::recover_from_cdi_specs() {
  for (const auto& uid : cdi_.claim_uids(handler_->cdi_kind())) {
    PreparedClaim entry;
    entry.state = ClaimState::kPrepareCompleted;
    for (const auto& device : cdi_.claim_devices(handler_->cdi_kind(), uid)) {
      PreparedDevice d;
      d.pool = opt_.node_name;
      d.device = device;
      d.type = std::string(api::device_type_of(device));
      d.cdi_ids = {cdi_device_id(handler_->cdi_kind(), uid + "-" + device)};
      entry.devices.push_back(std::move(d));
    }
    handler_->recover(uid, entry);
    NVDRA_INFO("{}: recovered claim {} ({} device(s)) from its CDI spec", handler_->driver(), uid,
               entry.devices.size());
    checkpoint_.claims[uid] = std::move(entry);
  }
}

PreparedResult DriverState::prepare(const std::string& ns, const std::string& name,
                                    const std::string& uid) {
  const auto t0 = std::chrono::steady_clock::now();
  PreparedResult out;
  auto fail = [&](std::string_view reason, std::string message) {
    NVDRA_WARN("{}: prepare of claim {}/{}:{} failed: {}", handler_->driver(), ns, name, uid,
               message);
    if (stats_.error) stats_.error("prepare", reason);
    out.error = std::move(message);
    return out;
  };
  // The slow API read happens before any lock.
  auto json = cluster_.get_claim(ns, name);
  if (!json) return fail("claim_fetch", "error fetching ResourceClaim: " + json.error().message);
  auto claim = parse_claim(*json, handler_->driver(), uid);
  if (!claim) return fail("claim_invalid", claim.error().message);

  std::vector<std::string> keys;  // the claim's devices and their aliases
  for (const auto& d : claim->devices) {
    keys.push_back(device_key(d));
    for (const auto& a : handler_->aliases(d.device))
      keys.push_back(d.pool + "/" + a);
  }
  PreparedClaim entry;
  std::optional<PreparedClaim> stale;
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] {
      if (busy_claims_.contains(uid)) return false;
      for (const auto& k : keys) {
        if (busy_devices_.contains(k)) return false;
      }
      return true;
    });
    if (auto f = failed_rollbacks_.find(uid); f != failed_rollbacks_.end()) {
      const std::string why = f->second;
      lock.unlock();
      return fail("rollback_pending", rollback_pending_message(uid, why));
    }
    if (auto it = checkpoint_.claims.find(uid);
        it != checkpoint_.claims.end() && it->second.state == ClaimState::kPrepareCompleted) {
      out.devices = it->second.devices;  // idempotent: the same answer, no side effects
      return out;
    }
    for (const auto& d : claim->devices) {
      if (d.admin_access) continue;
      auto same_hardware = handler_->aliases(d.device);
      same_hardware.push_back(d.device);
      for (const auto& [other_uid, other] : checkpoint_.claims) {
        // A claim whose rollback failed may still hold its devices.
        if (other_uid == uid || (other.state != ClaimState::kPrepareCompleted &&
                                 !failed_rollbacks_.contains(other_uid)))
          continue;
        for (const auto& pd : other.devices) {
          if (pd.pool == d.pool && std::find(same_hardware.begin(), same_hardware.end(),
                                             pd.device) != same_hardware.end()) {
            lock.unlock();
            return fail(
                "device_in_use",
                fmt::format("requested device {} is already allocated to different claim {}",
                            d.device, other_uid));
          }
        }
      }
    }
    if (auto it = checkpoint_.claims.find(uid); it != checkpoint_.claims.end()) stale = it->second;
    busy_claims_.insert(uid);
    busy_devices_.insert(keys.begin(), keys.end());
  }
  auto finish = [&] {
    std::lock_guard lock(mu_);
    busy_claims_.erase(uid);
    release_devices(keys);
    cv_.notify_all();
  };
  if (stale && stale->state == ClaimState::kPrepareStarted && handler_->resumable(*stale)) {
    // A retry after "not yet": prepared again over what is there, without undoing it first.
    stale.reset();
  }
  if (stale) {
    if (auto s = handler_->unprepare(uid, *stale); !s) {
      finish();
      return fail("rollback", "rolling back an earlier attempt: " + s.error().message);
    }
  }
  entry.state = ClaimState::kPrepareStarted;
  entry.namespace_ = ns;
  entry.name = name;
  auto save = [&]() -> Status {
    std::lock_guard lock(mu_);
    checkpoint_.claims[uid] = entry;
    return save_locked();
  };
  if (auto s = save(); !s) {
    finish();
    return fail("checkpoint", "writing the checkpoint: " + s.error().message);
  }
  crash_point("prepare-started");
  CdiSpec spec;
  spec.kind = std::string(handler_->cdi_kind());
  Status s = handler_->prepare(*claim, entry, spec, save);
  if (s && !spec.devices.empty()) s = cdi_.write(spec, uid);
  crash_point("prepare-cdi-written");
  if (s) {
    entry.state = ClaimState::kPrepareCompleted;
    s = save();
  }
  if (!s && s.error().code == ErrorCode::kTimeout) {
    finish();  // not yet: the entry stays as it is for the next attempt
    return fail("prepare_devices", "error preparing devices: " + s.error().message);
  }
  if (!s) {
    // Undo what was done; the entry goes only when the undo worked (else start() retries it).
    const Status undo = handler_->unprepare(uid, entry);
    (void)cdi_.remove(handler_->cdi_kind(), uid);
    if (undo) {
      std::lock_guard lock(mu_);
      checkpoint_.claims.erase(uid);
      (void)save_locked();
    } else {
      NVDRA_ERROR("{}: rolling back claim {} failed: {}", handler_->driver(), uid,
                  undo.error().message);
    }
    finish();
    return fail("prepare_devices", "error preparing devices: " + s.error().message);
  }
  finish();
  if (stats_.observe) stats_.observe("prepare", main_type(entry), seconds_since(t0));
  NVDRA_V(1, "{}: prepared claim {}/{}:{} ({} device(s))", handler_->driver(), ns, name, uid,
          entry.devices.size());
  out.devices = entry.devices;
  return out;
}

std::string DriverState::unprepare(const std::string& uid) {
  const auto t0 = std::chrono::steady_clock::now();
  PreparedClaim entry;
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !busy_claims_.contains(uid); });
    auto it = checkpoint_.claims.find(uid);
    if (it == checkpoint_.claims.end()) {
      NVDRA_V(1, "{}: Unprepare noop: claim not found in checkpoint data ({})", handler_->driver(),
              uid);
      return {};
    }
    if (auto f = failed_rollbacks_.find(uid); f != failed_rollbacks_.end()) {
      const std::string message = rollback_pending_message(uid, f->second);
      lock.unlock();
      if (stats_.error) stats_.error("unprepare", "rollback_pending");
      NVDRA_WARN("{}: unprepare of claim {} refused: {}", handler_->driver(), uid, message);
      return message;
    }
    entry = it->second;
    busy_claims_.insert(uid);
  }
  auto finish = [&] {
    std::lock_guard lock(mu_);
    busy_claims_.erase(uid);
    cv_.notify_all();
  };
  if (auto s = handler_->unprepare(uid, entry); !s) {
    finish();
    if (stats_.error) stats_.error("unprepare", "unprepare_devices");
    NVDRA_WARN("{}: unprepare of claim {} failed: {}", handler_->driver(), uid, s.error().message);
    return "error unpreparing devices: " + s.error().message;
  }
  crash_point("unprepare-devices-done");
  if (auto s = cdi_.remove(handler_->cdi_kind(), uid); !s) {
    finish();
    return s.error().message;
  }
  Status saved;
  {
    std::lock_guard lock(mu_);
    checkpoint_.claims.erase(uid);
    saved = save_locked();
  }
  finish();
  if (!saved) {
    if (stats_.error) stats_.error("unprepare", "checkpoint");
    return "writing the checkpoint: " + saved.error().message;
  }
  if (stats_.observe) stats_.observe("unprepare", main_type(entry), seconds_since(t0));
  NVDRA_V(1, "{}: unprepared claim {}/{}:{}", handler_->driver(), entry.namespace_, entry.name,
          uid);
  return {};
}

}  // namespace nvdra::agent
