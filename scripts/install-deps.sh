#!/usr/bin/env bash
# Installs every Debian package nvdra needs to build, test and run its demo.
# Idempotent: when everything is present it installs nothing and touches no package index.
#   install-deps.sh            everything (make deps: build, tests, demo)
#   install-deps.sh --build    only what building the programs needs (the image's build stage)
#   install-deps.sh --runtime  only the shared libraries the programs load (the image itself)
#   install-deps.sh --cluster  only what the real test cluster needs besides Go (make k8s-build)
#   install-deps.sh --image    what scripts/image-rootfs.sh needs (the Dockerfile's rootfs stage)
set -euo pipefail
mode=${1:-all}

build=(
  # toolchain
  build-essential cmake ninja-build pkg-config
  # libraries
  libboost1.74-dev libboost-program-options1.74-dev libssl-dev rapidjson-dev
  libspdlog-dev libfmt-dev libyaml-cpp-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  prometheus-cpp-dev libre2-dev
)
runtime=(
  libboost-program-options1.74.0 libssl3 libspdlog1.10 libfmt9 libyaml-cpp0.7
  libgrpc++1.51 libprotobuf32 libprometheus-cpp-core1.0 libre2-9 ca-certificates
)
dev=(
  # fuzzing, sanitizers, formatting
  clang clang-format libclang-rt-14-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev prometheus openssl curl
)
cluster=(
  # the real test cluster: runc's seccomp support, kube-proxy's nftables mode, namespaces,
  # and the image builder (Debian packages unpacked into root filesystems)
  libseccomp-dev nftables iproute2 util-linux dpkg apt
)
case "$mode" in
  all) packages=("${build[@]}" "${dev[@]}" "${cluster[@]}") ;;
  --cluster) packages=("${cluster[@]}") ;;
  --image) packages=("${runtime[@]}" binutils) ;;
  --build) packages=("${build[@]}") ;;
  --runtime) packages=("${runtime[@]}") ;;
  *) echo "usage: $0 [--build|--runtime|--cluster|--image]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# kubectl: the machine image may ship one; Debian's kubernetes-client is the fallback.
if [ "$mode" = all ] && ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# apt's output goes to stderr: 'make cluster' prints the kubeconfig path alone on its first line.
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
