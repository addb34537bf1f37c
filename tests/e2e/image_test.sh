#!/usr/bin/env bash
# nvdra's image holds the same files however it is built. Both ways use scripts/image-rootfs.sh
# alone: the Dockerfile's final stage is FROM scratch with the root filesystem its rootfs stage
# made by running the script on nvdra-agent and nvdra-controller (checked here from the
# Dockerfile, as no container engine runs on this machine), and `make image` writes the same
# script's output as an archive (checked here file by file). The archive also keeps owners,
# modes and links, and every program starts inside the root filesystem (the script checks).
# Usage: image_test.sh BUILD_BIN K8S_BIN
set -uo pipefail
BIN=$1
K8S_BIN=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/lib.sh"

echo "== the Dockerfile builds the image from the script alone"
stages=$(grep -E '^FROM ' "$root/Dockerfile" | awk '{print $2, $4}' | xargs)
check "stages" "debian:bookworm build debian:bookworm rootfs scratch" "$stages"
final=$(sed -n '/^FROM scratch/,$p' "$root/Dockerfile" | grep -E '^(COPY|ADD|RUN)')
check "the final stage only copies the root filesystem" "COPY --from=rootfs /rootfs /" "$final"
rootfs_stage=$(sed -n '/AS rootfs$/,/^FROM /p' "$root/Dockerfile")
check "the rootfs stage copies the two programs" "COPY --from=build /build/bin/nvdra-agent /build/bin/nvdra-controller /nvdra-bin/" \
  "$(grep '^COPY --from=build' <<<"$rootfs_stage")"
check "and runs the script on them" "RUN /usr/local/share/nvdra/image-rootfs.sh /rootfs /var/cache/nvdra-debs /nvdra-bin" \
  "$(grep '^RUN .*image-rootfs' <<<"$rootfs_stage")"

echo "== make image writes exactly the script's files"
"$root/scripts/build-image.sh" "$BIN" "$K8S_BIN/nvdra-k8s" "$work/image" "$work/nvdra.tar" nvdra:latest >"$work/build.log" 2>&1
check "the image builds" 0 $?
python3 - "$work/nvdra.tar" >"$work/archive.txt" <<'PY'
import io, json, sys, tarfile
outer = tarfile.open(sys.argv[1])
manifest = json.load(outer.extractfile("manifest.json"))
assert len(manifest) == 1 and manifest[0]["RepoTags"] == ["nvdra:latest"], manifest
layers = manifest[0]["Layers"]
assert len(layers) == 1, layers
layer = tarfile.open(fileobj=io.BytesIO(outer.extractfile(layers[0]).read()))
for m in layer.getmembers():
    kind = "l" if m.issym() else "d" if m.isdir() else "f"
    print(f"/{m.name.rstrip('/')} {kind} {m.mode & 0o7777:o} {m.uid}:{m.gid} {m.linkname}".rstrip())
PY
(cd "$work/image/rootfs" && find . -mindepth 1 | sort | while read -r p; do
  kind=f; [ -L "$p" ] && kind=l || { [ -d "$p" ] && kind=d; }
  echo "${p#.} $kind $(stat -c '%a %u:%g' "$p") $([ "$kind" = l ] && readlink "$p")" | sed 's/ *$//'
done) >"$work/rootfs.txt"
check "the same files, modes, owners and links" "" "$(diff <(sort "$work/archive.txt") <(sort "$work/rootfs.txt"))"
check "the nonroot user owns its home" "/home/nonroot d 755 65532:65532" "$(grep '^/home/nonroot ' "$work/archive.txt")"
check "the programs" "/usr/local/bin/nvdra-agent /usr/local/bin/nvdra-controller" \
  "$(awk '$1 ~ /^\/usr\/local\/bin\// {print $1}' "$work/archive.txt" | sort | xargs)"
check "no test stand-in in the product image" "" "$(grep -E 'nvidia-imex|nvdra-imex-sim' "$work/archive.txt")"
check "only shared libraries besides" "" \
  "$(awk '$2 == "f" {print $1}' "$work/archive.txt" | grep -vE '^/usr/local/bin/nvdra-(agent|controller)$|^/usr/lib(64)?/.*\.so[.0-9]*$|^/etc/(passwd|group|ssl/certs/ca-certificates\.crt)$')"
summary
