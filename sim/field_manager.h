// metadata.managedFields, as kube-apiserver keeps them: which field manager set which field, so
// that server-side apply can detect conflicts and remove the fields an applier stops applying.
//
// Field sets use the FieldsV1 format: "f:<name>" for object fields, "k:{<key>}" for elements of
// lists merged by key, "v:<value>" for elements of set lists. Lists are read as strategic merge
// patch reads them (sim/strategic_merge.h); other lists are atomic.
#pragma once

#include <string>

#include "base/json.h"
#include "base/result.h"

namespace nvdra::sim {

struct FieldManagerRequest {
  std::string manager;                       // fieldManager, or the client's User-Agent before '/'
  std::string api_version;                   // the version the client wrote
  std::string time;                          // RFC 3339
  bool status_write = false;                 // the status subresource
  bool type_has_status_subresource = false;  // then main-resource writes leave .status alone
};

// An ordinary write (create, update, patch): `manager` (operation Update) takes every field that
// `next` sets to a value different from `old` (nullptr on create); fields that disappeared are
// dropped from every manager. Writes next.metadata.managedFields from old's.
void track_update(json::Document& next, const json::Value* old, const FieldManagerRequest& req);

// Server-side apply of `config` onto `live` (an object with only managedFields, or none, when
// creating). A field that `config` sets to a value other than the live one and that another
// manager owns is a conflict: a 409 Conflict Status with one FieldManagerConflict cause per
// field, unless `force`, which takes the field over. Fields this manager applied last time and
// no longer applies are removed unless another manager owns them.
Status server_side_apply(json::Document& live, const json::Value& config, bool force,
                         const FieldManagerRequest& req);

}  // namespace nvdra::sim
