#!/usr/bin/env bash
# Builds the real test cluster's images into OUT (default build/k8s/images), as archives that
# every node's containerd imports (nothing can be pulled here):
#   pause.tar  the pod sandbox image (registry.k8s.io/pause), the static pause program alone
#   test.tar   bash, coreutils and a few tools from Debian packages, plus stand-ins for the GPU
#              tools, under the names NVIDIA's demo manifests use (ubuntu, busybox, the CUDA
#              samples): nvidia-smi reports the device nodes and environment the container was
#              really given, so checks of its output are checks of what the runtime injected.
# (nvdra's own image: scripts/build-image.sh, make k8s-nvdra-image.)
#   build.sh [K8S_BIN [OUT]]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "${1:-$here/../../../build/k8s/bin}")
out=$(realpath -m "${2:-$here/../../../build/k8s/images}")
source "$here/../../../scripts/rootfs-lib.sh"
mkdir -p "$out"
work=$out/work
cache=$out/debs

# pause
rootfs_init "$work/pause"
install -m 0755 "$bin/pause" "$work/pause/pause"
cat >"$work/pause.json" <<JSON
{"rootfs": "$work/pause", "out": "$out/pause.tar",
 "images": [{"tags": ["registry.k8s.io/pause:3.10"], "entrypoint": ["/pause"]}]}
JSON
"$bin/nvdra-k8s" image --spec "$work/pause.json"

# test image (netcat: a listener and a client for the network checks)
tools=(bash coreutils dash grep sed findutils hostname netcat-openbsd)
rootfs_init "$work/test"
rootfs_add_packages "$work/test" "$cache" "${tools[@]}"
libs=$(library_packages "$work"/test/usr/bin/*) || exit 1
# shellcheck disable=SC2086 # one package name per word
rootfs_add_packages "$work/test" "$cache" $libs
# Links that maintainer scripts (diversions, alternatives) would make.
ln -sf dash "$work/test/usr/bin/sh"
ln -sf nc.openbsd "$work/test/usr/bin/nc"
rm -rf "$work"/test/usr/share/{doc,man,info,locale,lintian}
install -m 0755 "$here/test-image/nvidia-smi" "$work/test/usr/bin/nvidia-smi"
install -m 0755 "$here/test-image/sample" "$work/test/tmp/sample"
install -D -m 0755 "$here/test-image/vectorAdd" "$work/test/cuda-samples/vectorAdd"
# The image must run its tools from its own libraries: try each inside it.
chroot "$work/test" /usr/bin/bash -c 'ls / >/dev/null && sleep 0 && grep -q root /etc/passwd &&
  sed -n 1p /etc/passwd >/dev/null && find /etc -maxdepth 0 >/dev/null && sh -c true &&
  { nvidia-smi >/dev/null; [ $? -eq 6 ]; }' || {
  echo "test image: its tools do not run inside it (a library missing?)" >&2
  exit 1
}
cat >"$work/test.json" <<JSON
{"rootfs": "$work/test", "out": "$out/test.tar",
 "images": [
  {"tags": ["nvdra.dev/test:latest", "ubuntu:22.04", "ubuntu:24.04", "nvidia/cuda:12.0.0-base-ubuntu22.04"],
   "cmd": ["/bin/bash"]},
  {"tags": ["busybox:latest"], "cmd": ["sh"]},
  {"tags": ["nvcr.io/nvidia/k8s/cuda-sample:nbody-cuda11.6.0-ubuntu18.04"], "cmd": ["/tmp/sample"]},
  {"tags": ["nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0"], "cmd": ["/cuda-samples/vectorAdd"]},
  {"tags": ["ghcr.io/nvidia/k8s-samples:nvbandwidth-v0.7-8d103163"], "cmd": ["/bin/bash"]}
 ]}
JSON
"$bin/nvdra-k8s" image --spec "$work/test.json"
images="$out/pause.tar $out/test.tar"

echo "images: $images" >&2
