#!/usr/bin/env bash
# kubectl against `nvdra-sim up --no-agents`: simulated GPU nodes and their slices, workloads,
# unschedulable claims, graceful deletion and device release (NVIDIA's demo manifests scheduled
# onto such nodes: nvidia_specs_sim_test.sh).
# Usage: cluster_sim_test.sh BIN_DIR
set -euo pipefail
BIN=${1:?usage: $0 BIN_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$(dirname "$0")/lib.sh"

run_sim up --topology "$root/examples/topologies/demo.yaml" --no-agents
for _ in $(seq 50); do [ "$(kubectl get nodes -o name | wc -l)" -eq 12 ] && break; sleep 0.1; done

check "nodes" "12" "$(kubectl get nodes -o name | wc -l)"
check "nodes ready" "12" "$(kubectl get nodes --no-headers | grep -c ' Ready ')"
check "clique label" "5c3a1d2e-8f4b-4e6a-9b7c-0d1e2f3a4b5c.2" \
  "$(kubectl get node nvl72-b-node-0 -o jsonpath='{.metadata.labels.nvidia\.com/gpu\.clique}')"
check "gpu slices" "8" "$(kubectl get resourceslices --field-selector spec.nodeName=dgx-h100-0 -o jsonpath='{.items[0].spec.devices[*].name}' | wc -w)"
check "compute-domain slice" "channel-0 daemon-0" \
  "$(kubectl get resourceslices --field-selector spec.driver=compute-domain.nvidia.com,spec.nodeName=nvl72-a-node-0 -o jsonpath='{.items[0].spec.devices[*].name}')"
kubectl apply -f "$root/manifests/base/deviceclasses.yaml" >/dev/null

# A claim nothing can satisfy: the pod stays Pending and says why.
kubectl create namespace e2e >/dev/null 2>&1 || kubectl apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: e2e}
YAML
kubectl apply -n e2e -f - >/dev/null <<'YAML'
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: h900}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly:
          deviceClassName: gpu.nvidia.com
          selectors: [{cel: {expression: "device.attributes['gpu.nvidia.com'].productName == 'NVIDIA H900'"}}]
---
apiVersion: v1
kind: Pod
metadata: {name: never}
spec:
  containers: [{name: c, image: busybox, resources: {claims: [{name: gpu}]}}]
  resourceClaims: [{name: gpu, resourceClaimTemplateName: h900}]
YAML
kubectl wait -n e2e pod/never --for=condition=PodScheduled=false --timeout=10s >/dev/null
contains "unschedulable reason" "cannot allocate all claims" \
  "$(kubectl get pod -n e2e never -o jsonpath='{.status.conditions[?(@.type=="PodScheduled")].message}')"
check "unschedulable phase" "Pending" "$(kubectl get pod -n e2e never -o jsonpath='{.status.phase}')"
contains "describe shows why" "FailedScheduling" "$(kubectl describe pod -n e2e never)"

# Jobs complete; Deployments scale; DaemonSets follow node labels.
kubectl apply -n e2e -f - >/dev/null <<'YAML'
apiVersion: batch/v1
kind: Job
metadata: {name: train}
spec:
  completions: 2
  parallelism: 2
  template:
    metadata: {annotations: {sim.nvdra.io/run-seconds: "0.5"}}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: per-h100}
spec:
  selector: {matchLabels: {app: per-h100}}
  template:
    metadata: {labels: {app: per-h100}}
    spec:
      nodeSelector: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}
      containers: [{name: c, image: busybox}]
YAML
check "job complete" "job.batch/train condition met" "$(kubectl wait -n e2e job/train --for=condition=complete --timeout=20s)"
for _ in $(seq 50); do [ "$(kubectl get ds -n e2e per-h100 -o jsonpath='{.status.numberReady}')" = "2" ] && break; sleep 0.1; done
check "daemonset on H100 nodes" "2" "$(kubectl get ds -n e2e per-h100 -o jsonpath='{.status.numberReady}')"
kubectl label node dgx-h100-1 nvidia.com/gpu.product=other --overwrite >/dev/null
for _ in $(seq 50); do [ "$(kubectl get ds -n e2e per-h100 -o jsonpath='{.status.desiredNumberScheduled}')" = "1" ] && break; sleep 0.1; done
check "daemonset follows labels" "1" "$(kubectl get ds -n e2e per-h100 -o jsonpath='{.status.desiredNumberScheduled}')"

# Deleting a running pod waits for its kubelet, then its generated claim goes.
kubectl apply -f "$root/examples/demo/gpu-pod.yaml" >/dev/null
kubectl wait -n nvdra-demo pod/gpu-pod --for=jsonpath='{.status.phase}'=Running --timeout=20s >/dev/null
check "claim allocated" "allocated,reserved" "$(kubectl get resourceclaims -n nvdra-demo --no-headers | awk '{print $2}')"
check "pod events" "Scheduled Started" \
  "$(kubectl get events -n nvdra-demo --field-selector involvedObject.name=gpu-pod -o jsonpath='{.items[*].reason}' | tr ' ' '\n' | sort | xargs)"
kubectl delete pod -n nvdra-demo gpu-pod --timeout=20s >/dev/null
for _ in $(seq 50); do [ -z "$(kubectl get resourceclaims -n nvdra-demo -o name)" ] && break; sleep 0.1; done
check "claim released" "" "$(kubectl get resourceclaims -n nvdra-demo -o name)"

summary
