#!/usr/bin/env bash
# Least privilege on the real cluster: what a stolen nvdra token can do (manifests/base:
# RBAC plus admission-policies.yaml, evaluated by the real kube-apiserver).
#   - the kubelet plugin's token, bound to its pod on node-1, writes node-1's ResourceSlices of
#     nvdra's drivers and node-1's ComputeDomain label, and nothing else: not node-2's slices,
#     not another driver's, not another label; a token bound to no pod (no node) writes nothing;
#   - the controller's token changes only the ComputeDomain label of a node;
#   - the IMEX daemon pods run as root without capabilities or privilege escalation.
# The plugins themselves keep publishing (k8s.nvidia_specs runs claims through them).
# Usage: k8s_privilege_test.sh BUILD_BIN K8S_BIN
set -uo pipefail
BIN=$1
K8S_BIN=$2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/k8s_lib.sh"
sa_ns=nvdra-system
label=resource.nvidia.com/computeDomain

plugin_pod=$(kubectl get pods -n "$sa_ns" -l app.kubernetes.io/component=kubelet-plugin \
  --field-selector spec.nodeName=node-1 -o jsonpath='{.items[0].metadata.name}')
check "a kubelet plugin pod runs on node-1" 1 "$([ -n "$plugin_pod" ] && echo 1)"
bound=$(kubectl create token nvdra-kubelet-plugin -n "$sa_ns" --duration 10m \
  --bound-object-kind Pod --bound-object-name "$plugin_pod")
unbound=$(kubectl create token nvdra-kubelet-plugin -n "$sa_ns" --duration 10m)
controller=$(kubectl create token nvdra-controller -n "$sa_ns" --duration 10m)

# as TOKEN ARGS...: kubectl with only that token (no client certificate); output and status.
as() {
  local token=$1
  shift
  kubectl --kubeconfig=/dev/null --server "$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')" \
    --certificate-authority "$K8S_STATE/pki/ca.crt" --token "$token" "$@" 2>&1
}
# allowed TOKEN ARGS...: "allowed" or the server's answer.
allowed() { local out; out=$(as "$@") && echo allowed || echo "$out"; }

slice() {  # slice NAME NODE DRIVER
  cat <<YAML
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: $1}
spec:
  driver: $3
  nodeName: $2
  pool: {name: $2, generation: 1, resourceSliceCount: 1}
  devices: [{name: probe}]
YAML
}
# Dry runs: admission is evaluated all the same, and the plugins' own slices stay as they are
# (a plugin deletes a slice of its node and driver that it did not publish).
create_slice() {  # create_slice TOKEN NAME NODE DRIVER
  local token=$1
  shift
  slice "$@" | allowed "$token" create --dry-run=server -f -
}

check "plugin: its own node's slice" allowed "$(create_slice "$bound" privilege-own node-1 gpu.nvidia.com)"
own_slice=$(kubectl get resourceslices --field-selector spec.nodeName=node-1 -o jsonpath='{.items[0].metadata.name}')
check "plugin: deletes its own node's slice" allowed "$(allowed "$bound" delete resourceslice "$own_slice" --dry-run=server)"
contains "plugin: not another node's slice" "may not change ResourceSlices of node 'node-2'" \
  "$(create_slice "$bound" privilege-other node-2 gpu.nvidia.com)"
contains "plugin: not another driver's slice" "publishes ResourceSlices of nvdra's drivers only" \
  "$(create_slice "$bound" privilege-driver node-1 other.example.com)"
contains "plugin: a token without a node writes no slice" "names no node" \
  "$(create_slice "$unbound" privilege-unbound node-1 gpu.nvidia.com)"
other_slice=$(kubectl get resourceslices --field-selector spec.nodeName=node-2 -o jsonpath='{.items[0].metadata.name}')
contains "plugin: deletes no slice of another node" "may not change ResourceSlices of node 'node-2'" \
  "$(allowed "$bound" delete resourceslice "$other_slice" --dry-run=server)"

check "plugin: its node's ComputeDomain label" allowed "$(allowed "$bound" label node node-1 "$label=privilege-test")"
check "plugin: removes it" allowed "$(allowed "$bound" label node node-1 "$label-")"
contains "plugin: not another node's label" "may not change node 'node-2'" \
  "$(allowed "$bound" label node node-2 "$label=privilege-test")"
contains "plugin: no other label of its node" "only the resource.nvidia.com/computeDomain label" \
  "$(allowed "$bound" label node node-1 example.com/owned=yes)"
contains "plugin: no taint of its node" "only the resource.nvidia.com/computeDomain label" \
  "$(allowed "$bound" taint node node-1 example.com/owned=yes:NoSchedule)"

check "controller: a node's ComputeDomain label" allowed "$(allowed "$controller" label node node-2 "$label=privilege-test")"
check "controller: removes it" allowed "$(allowed "$controller" label node node-2 "$label-")"
contains "controller: no other label" "only the resource.nvidia.com/computeDomain label" \
  "$(allowed "$controller" label node node-2 example.com/owned=yes)"
contains "controller: no node annotation" "only the resource.nvidia.com/computeDomain label" \
  "$(allowed "$controller" annotate node node-2 example.com/owned=yes)"
check "nothing changed on the nodes" 0 \
  "$(kubectl get nodes -o json | grep -c 'example.com/owned\|privilege-test' || true)"

# The IMEX daemon's security context, as the API server stored it from the controller's DaemonSet.
ns=k8s-privilege
kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null 2>&1
kubectl create namespace "$ns" >/dev/null
kubectl apply -n "$ns" -f - >/dev/null <<YAML
apiVersion: resource.nvidia.com/v1beta1
kind: ComputeDomain
metadata: {name: privilege}
spec:
  numNodes: 1
  channel: {resourceClaimTemplate: {name: privilege-channel}}
---
apiVersion: v1
kind: Pod
metadata: {name: worker}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: ubuntu:22.04, command: [sleep, "600"], resources: {claims: [{name: channel}]}}
  resourceClaims: [{name: channel, resourceClaimTemplateName: privilege-channel}]
YAML
check "a domain's worker runs" Running "$(wait_pod_phase "$ns" worker Running 120)"
uid=$(kubectl get computedomain -n "$ns" privilege -o jsonpath='{.metadata.uid}')
daemon=$(kubectl get pods -n "$sa_ns" -l "$label=$uid" -o jsonpath='{.items[0].metadata.name}')
check "its IMEX daemon is Running" Running "$(wait_pod_phase "$sa_ns" "$daemon" Running 60)"
check "the daemon: root, no capabilities, no escalation" "0 ALL false RuntimeDefault" \
  "$(kubectl get pod -n "$sa_ns" "$daemon" -o jsonpath='{.spec.containers[0].securityContext.runAsUser} {.spec.containers[0].securityContext.capabilities.drop[0]} {.spec.containers[0].securityContext.allowPrivilegeEscalation} {.spec.containers[0].securityContext.seccompProfile.type}')"
# The image has no shell: the process is read from the host, whose PID namespace it shares.
daemon_pid=$(pgrep -o -f -- "--compute-domain $uid")
check "the daemon's process holds no capability" "0000000000000000 0" \
  "$(awk '/^CapEff:/ {c=$2} /^Uid:/ {u=$2} END {print c, u}' "/proc/$daemon_pid/status" 2>&1)"
kubectl delete namespace "$ns" --wait=true --timeout=120s >/dev/null
check "nothing left: domain labels" 0 "$(kubectl get nodes -l "$label" -o name | wc -l)"
summary
