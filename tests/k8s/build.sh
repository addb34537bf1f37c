#!/usr/bin/env bash
# Builds the real test cluster's programs into OUT (default build/k8s/bin) from the versions
# pinned in tests/k8s/go.mod: Kubernetes (one binary, component chosen by its first argument),
# etcd, containerd with its runc shim and ctr, runc, the CNI plugins, nvdra-k8s (the cluster's
# orchestrator) and the pod sandbox's pause program. Go downloads modules through the proxy the
# machine is configured with into its module cache; nothing else is fetched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "${1:-$here/../../build/k8s/bin}")

if ! command -v go >/dev/null 2>&1; then
  echo "k8s-build: Go is not installed; the real test cluster is built with Go >= 1.26 (see README)" >&2
  exit 1
fi
need=1.26
have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
  echo "k8s-build: Go $have is too old; tests/k8s/go.mod needs Go >= $need" >&2
  exit 1
fi
if [ ! -e /usr/include/seccomp.h ]; then
  echo "k8s-build: runc needs libseccomp's headers (Debian package libseccomp-dev; scripts/install-deps.sh installs it)" >&2
  exit 1
fi

cd "$here"
mkdir -p "$out/cni"
# A module that is not served stops the build here, naming it.
if ! go mod download >/dev/null 2>"$out.download.err"; then
  echo "k8s-build: a module pinned in tests/k8s/go.mod could not be downloaded:" >&2
  cat "$out.download.err" >&2
  rm -f "$out.download.err"
  exit 1
fi
rm -f "$out.download.err"

version() { go list -m -f '{{.Version}}' "$1"; }
k8s=$(version k8s.io/kubernetes)
minor=$(echo "$k8s" | cut -d. -f2)
stamp="-X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1"
stamp+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
stamp+=" -X k8s.io/client-go/pkg/version.gitVersion=$k8s -X k8s.io/client-go/pkg/version.gitMajor=1"
stamp+=" -X k8s.io/client-go/pkg/version.gitMinor=$minor"
stamp+=" -X github.com/containerd/containerd/v2/version.Version=$(version github.com/containerd/containerd/v2)"

echo "k8s-build: Kubernetes $k8s, etcd $(version go.etcd.io/etcd/server/v3), containerd $(version github.com/containerd/containerd/v2), runc $(version github.com/opencontainers/runc), CNI plugins $(version github.com/containernetworking/plugins) -> $out" >&2
go build -ldflags "$stamp" -o "$out/" ./cmd/kube ./cmd/etcd ./cmd/nvdra-k8s \
  github.com/containerd/containerd/v2/cmd/containerd \
  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
  github.com/containerd/containerd/v2/cmd/ctr
CGO_ENABLED=0 go build -o "$out/" ./cmd/pause
go build -tags seccomp -ldflags "-X main.version=$(version github.com/opencontainers/runc | sed 's/^v//')" \
  -o "$out/" github.com/opencontainers/runc
go build -o "$out/cni/" \
  github.com/containernetworking/plugins/plugins/main/bridge \
  github.com/containernetworking/plugins/plugins/ipam/host-local \
  github.com/containernetworking/plugins/plugins/main/loopback \
  github.com/containernetworking/plugins/plugins/meta/portmap
