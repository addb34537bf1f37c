#!/usr/bin/env bash
# nvdra's image without a container engine: the root filesystem of scripts/image-rootfs.sh (the
# one the Dockerfile builds) as an image archive that `ctr images import`, `docker load` and
# registries' tools accept.
#   build-image.sh NVDRA_BIN WRITER WORK OUT TAG [--test]
# WRITER is nvdra-k8s (make k8s-build), which writes the archive; WORK holds the root filesystem
# and the downloaded packages.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1 writer=$2 work=$3 out=$4 tag=$5 variant=${6:-}
mkdir -p "$work" "$(dirname "$out")"
"$here/image-rootfs.sh" "$work/rootfs" "$work/debs" "$bin" $variant
cat >"$work/image.json" <<JSON
{"rootfs": "$work/rootfs", "out": "$out",
 "images": [{"tags": ["$tag"], "cmd": ["nvdra-controller", "--help"], "user": "65532:65532"}]}
JSON
"$writer" image --spec "$work/image.json"
