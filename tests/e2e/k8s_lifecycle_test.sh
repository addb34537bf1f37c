#!/usr/bin/env bash
# The real test cluster's own lifecycle, on a one-node cluster of its own (beside the fixture's):
# the kubeconfig path alone on the first line, a start after a killed run removes what that run
# left, a second start in the same folder is refused, a missing binary stops a start with a
# message naming it, another program's listener on the control plane's ports does not disturb it
# (the cluster listens on addresses of its own), and a stop leaves nothing behind.
# Usage: k8s_lifecycle_test.sh BUILD_BIN K8S_BIN
set -uo pipefail
BIN=$1
K8S_BIN=$2
source "$(dirname "$0")/lib.sh"
images=$(cd "$K8S_BIN/../images" && pwd)
state=/tmp/nvdra-k8s-lifecycle
up_args=(--state "$state" --nodes 1 --image "$images/pause.tar" --image "$images/test.tar")
nk() { "$K8S_BIN/nvdra-k8s" "$@"; }
trap 'nk down --state "$state" >/dev/null 2>&1; cleanup' EXIT

echo "== first line, then Ready"
"$K8S_BIN/nvdra-k8s" up "${up_args[@]}" >"$work/up.out" 2>"$work/up.err" &
up_pid=$!
for _ in $(seq 600); do [ -s "$work/up.out" ] && break; sleep 0.1; done
check "first line is the kubeconfig path" "$state/kubeconfig/admin.kubeconfig" "$(head -1 "$work/up.out")"
export KUBECONFIG=$state/kubeconfig/admin.kubeconfig
check "node Ready once the path is printed" True \
  "$(kubectl get node node-1 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')"

echo "== a killed run, then a new start"
kill -9 "$up_pid"
wait "$up_pid" 2>/dev/null
left=$(nk leftovers --state "$state" 2>&1)
# Its processes die with it (a parent-death signal); what the kernel keeps stays behind.
contains "a killed run leaves its cgroups" "cgroup" "$left"
contains "a killed run leaves its network namespace" "network namespace" "$left"
check "a new start is Ready" "$state/kubeconfig/admin.kubeconfig" "$(nk up --detach "${up_args[@]}" 2>"$work/up2.err")"
check "its node Ready" True "$(kubectl get node node-1 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')"
contains "the same state folder refuses a second start" "already running in $state" \
  "$(nk up --detach "${up_args[@]}" 2>&1 >/dev/null)"
nk down --state "$state" >/dev/null 2>"$work/down.err"
check "stop succeeds" 0 $?
check "nothing left behind" "nothing left behind" "$(nk leftovers --state "$state" 2>&1)"

echo "== other programs' ports, a missing binary"
# Another program (a local cluster, say) on the API server's and etcd's ports on the loopback
# address. Not on every address: the fixture's cluster may be listening on its own bridge
# address beside this test, and a wildcard bind would fail on it.
python3 -c 'import socket,sys,time
socks = []
for port in (6443, 2379):
    s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen(); socks.append(s)
print("listening", flush=True)
time.sleep(120)' >"$work/holder.out" 2>&1 &
holder_pid=$!
bg_pids+=("$holder_pid")
for _ in $(seq 50); do [ -s "$work/holder.out" ] && break; sleep 0.1; done
check "another program holds the ports" listening "$(cat "$work/holder.out")"
check "a start beside other listeners" "$state/kubeconfig/admin.kubeconfig" "$(nk up --detach "${up_args[@]}" 2>&1)"
check "the API server answers" ok "$(kubectl get --raw /readyz 2>&1)"
kill "$holder_pid"; wait "$holder_pid" 2>/dev/null
nk down --state "$state" >/dev/null 2>&1
mkdir -p "$work/bin"
cp -a "$K8S_BIN"/. "$work/bin/"
rm "$work/bin/etcd"
contains "a missing binary is named" "$work/bin/etcd" "$("$work/bin/nvdra-k8s" up --detach "${up_args[@]}" 2>&1)"
check "a failed start leaves nothing" "nothing left behind" "$(nk leftovers --state "$state" 2>&1)"
summary
