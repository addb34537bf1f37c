#!/usr/bin/env bash
# The root filesystem of nvdra's image: nvdra-agent and nvdra-controller in /usr/local/bin
# (stripped), exactly the shared libraries they load (each from the Debian package that holds
# it), the CA bundle of Debian's ca-certificates, and the nonroot user (65532) the controller runs
# as. The Dockerfile and `make image` (no container engine) both build the image from this, so
# the two hold the same files.
#   image-rootfs.sh ROOTFS CACHE BIN_DIR [--test]
# --test adds nvdra-imex-sim as /usr/bin/nvidia-imex and /usr/bin/nvidia-imex-ctl: the IMEX
# daemon's stand-in for clusters without NVIDIA's IMEX (the real test cluster).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/rootfs-lib.sh"
rootfs=$1 cache=$2 bin=$3 variant=${4:-}
programs=(nvdra-agent nvdra-controller)
[ "$variant" = --test ] && programs+=(nvdra-imex-sim)
for p in "${programs[@]}"; do
  [ -x "$bin/$p" ] || { echo "image-rootfs: $bin/$p is missing (build it first)" >&2; exit 1; }
done

rootfs_init "$rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs"
install -d -o 65532 -g 65532 "$rootfs/home/nonroot"
for p in nvdra-agent nvdra-controller; do
  strip -o "$rootfs/usr/local/bin/$p" "$bin/$p"
done
paths=("$rootfs/usr/local/bin/nvdra-agent" "$rootfs/usr/local/bin/nvdra-controller")
if [ "$variant" = --test ]; then
  strip -o "$rootfs/usr/local/bin/nvdra-imex-sim" "$bin/nvdra-imex-sim"
  ln -s ../local/bin/nvdra-imex-sim "$rootfs/usr/bin/nvidia-imex"
  ln -s ../local/bin/nvdra-imex-sim "$rootfs/usr/bin/nvidia-imex-ctl"
  paths+=("$rootfs/usr/local/bin/nvdra-imex-sim")
fi
rootfs_add_libraries "$rootfs" "$cache" "${paths[@]}"
# The bundle update-ca-certificates would write from the package's certificates.
rootfs_unpack "$cache" ca-certificates
find "$cache/unpacked/ca-certificates/usr/share/ca-certificates" -name '*.crt' | sort | xargs cat >"$rootfs/etc/ssl/certs/ca-certificates.crt"
rm -rf "$rootfs"/{root,home/nobody}
mkdir -p "$rootfs/root"

# Every program must start inside the image with the image's libraries alone (its own usage
# message is fine; the loader's complaint or a missing file is not).
for p in "${programs[@]}"; do
  rc=0
  out=$(chroot "$rootfs" "/usr/local/bin/$p" --help 2>&1) || rc=$?
  if [ "$rc" -ge 126 ] || [[ "$out" == *"error while loading shared libraries"* ]]; then
    echo "image-rootfs: $p does not start inside the image: $(head -3 <<<"$out")" >&2
    exit 1
  fi
done
