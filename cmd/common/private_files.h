// Files that hold credentials (kubeconfigs, tokens, keys): written 0600 from their creation, in
// folders only their owner may enter.
#pragma once

#include <string>

#include "base/result.h"

namespace nvdra {

// Writes `content` to `path` atomically, readable only by its owner from the moment it exists
// (a chmod after writing leaves a moment in which others can read it).
Status write_private(const std::string& path, const std::string& content);

// A folder only its owner may enter: created 0700, or an existing one that is this user's, a real
// folder (not a link) and closed to others. In a shared temp folder another user could otherwise
// plant the folder (or a link to one of theirs) and read or swap what is written there.
Status private_dir(const std::string& dir);

}  // namespace nvdra
