#!/usr/bin/env bash
# Installs every Debian package nvdra needs to build, test and run its demo.
# Idempotent: when everything is present it installs nothing and touches no package index.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build clang clang-format libclang-rt-14-dev pkg-config
  # libraries
  libboost1.74-dev libboost-program-options1.74-dev libssl-dev rapidjson-dev
  libspdlog-dev libfmt-dev libyaml-cpp-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  prometheus-cpp-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev prometheus openssl curl
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# kubectl: the machine image may ship one; Debian's kubernetes-client is the fallback.
if ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
