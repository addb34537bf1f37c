#!/usr/bin/env bash
# The real test cluster itself (no nvdra; the fixture's cluster has 4 nodes): its nodes are Ready
# with their own pod networks, pods and a Deployment run across nodes, a DaemonSet gets one pod
# per node, Services route across nodes, kubectl logs and exec work, containerd injects a CDI
# device that a device plugin hands out, and a node turns NotReady when its kubelet stops and
# Ready when it starts again.
# Usage: k8s_cluster_test.sh BUILD_BIN K8S_BIN (the cluster is the ctest fixture's).
set -uo pipefail
BIN=$1
K8S_BIN=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/k8s_lib.sh"
ns=k8s-cluster-test
kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null 2>&1
kubectl create namespace "$ns" >/dev/null

echo "== nodes"
nodes=$(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{end}')
check "four nodes" "node-1 node-2 node-3 node-4 " "$nodes"
for n in $nodes; do
  check "$n Ready" True "$(node_ready "$n")"
done
cidrs=$(kubectl get nodes -o jsonpath='{.items[*].spec.podCIDR}')
check "pod CIDRs differ" 4 "$(tr ' ' '\n' <<<"$cidrs" | sort -u | grep -c .)"
check "kubelet version" "v1.37.2" "$(kubectl get nodes -o jsonpath='{.items[*].status.nodeInfo.kubeletVersion}' | tr ' ' '\n' | sort -u)"
check "runtime" "containerd://2.4.2" "$(kubectl get nodes -o jsonpath='{.items[0].status.nodeInfo.containerRuntimeVersion}')"
check "server version" v1.37.2 "$(kubectl version -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -1)"

echo "== a pod on each node"
for n in node-1 node-2; do
  kubectl apply -n "$ns" -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: listener-$n, labels: {app: listener}}
spec:
  nodeName: $n
  containers:
  - name: nc
    image: ubuntu:22.04
    command: [bash, -c, 'echo "started on \$(hostname)"; while true; do echo "hello from $n" | nc -l -p 8080 -q 1; done']
    ports: [{containerPort: 8080}]
YAML
done
for n in node-1 node-2; do
  check "listener-$n Running" Running "$(wait_pod_phase "$ns" "listener-$n" Running 90)"
done
ip1=$(kubectl get pod -n "$ns" listener-node-1 -o jsonpath='{.status.podIP}')
cidr1=$(kubectl get node node-1 -o jsonpath='{.spec.podCIDR}')
check "pod IP in its node's CIDR" "${cidr1}" "$(echo "$ip1" | cut -d. -f1-3).0/24"

echo "== logs and exec"
contains "kubectl logs" "started on listener-node-1" "$(kubectl logs -n "$ns" listener-node-1 2>&1)"
# kubectl's own stderr (its websocket client logs, e.g. "Unknown stream id 1") goes to a file:
# the checks compare what the container printed.
check "kubectl exec" listener-node-2 "$(kubectl exec -n "$ns" listener-node-2 -- hostname 2>>"$work/exec.err")"
check "exec exit status" 3 "$(kubectl exec -n "$ns" listener-node-2 -- bash -c 'exit 3' >/dev/null 2>&1; echo $?)"

echo "== pod to pod across nodes, and a Service"
check "node-2 reaches node-1's pod" "hello from node-1" \
  "$(kubectl exec -n "$ns" listener-node-2 -- bash -c "nc -w 5 $ip1 8080 </dev/null" 2>>"$work/exec.err")"
kubectl apply -n "$ns" -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: one}
spec:
  selector: {app: listener}
  ports: [{port: 80, targetPort: 8080}]
YAML
svc=$(kubectl get svc -n "$ns" one -o jsonpath='{.spec.clusterIP}')
answer=""
for _ in $(seq 50); do
  answer=$(kubectl exec -n "$ns" listener-node-1 -- bash -c "nc -w 3 $svc 80 </dev/null" 2>/dev/null)
  [ -n "$answer" ] && break
  sleep 0.2
done
contains "Service ClusterIP reaches a pod" "hello from node-" "$answer"
# Pods find the API server through the kubernetes Service, as in-cluster clients do.
check "pod reaches the API server" open \
  "$(kubectl exec -n "$ns" listener-node-2 -- bash -c 'exec 3<>/dev/tcp/$KUBERNETES_SERVICE_HOST/$KUBERNETES_SERVICE_PORT && echo open' 2>>"$work/exec.err")"

echo "== Deployment across both nodes"
kubectl apply -n "$ns" -f - >/dev/null <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 2
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: spread}}}
      containers:
      - {name: c, image: ubuntu:24.04, command: [sleep, infinity]}
YAML
kubectl rollout status -n "$ns" deployment/spread --timeout=120s >/dev/null 2>&1
check "Deployment available" 2 "$(kubectl get deploy -n "$ns" spread -o jsonpath='{.status.availableReplicas}')"
check "replicas on different nodes" 2 \
  "$(kubectl get pods -n "$ns" -l app=spread -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | grep -c .)"

echo "== DaemonSet"
kubectl apply -n "$ns" -f - >/dev/null <<'YAML'
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: every-node}
spec:
  selector: {matchLabels: {app: every-node}}
  template:
    metadata: {labels: {app: every-node}}
    spec:
      containers:
      - {name: c, image: busybox, command: [sleep, infinity]}
YAML
kubectl rollout status -n "$ns" daemonset/every-node --timeout=120s >/dev/null 2>&1
check "DaemonSet ready on every node" 4 "$(kubectl get ds -n "$ns" every-node -o jsonpath='{.status.numberReady}')"
check "one DaemonSet pod per node" "node-1 node-2 node-3 node-4" \
  "$(kubectl get pods -n "$ns" -l app=every-node -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort | xargs)"

echo "== a CDI device injected by containerd"
# A CDI spec on node-1 names a device node of the node's folder (the same device numbers as
# /dev/null); a device plugin hands the device out by its CDI name; kubelet passes the name to
# containerd, which must apply the spec.
dev_dir=$(node_dir node-1)/dev
rm -f "$dev_dir/test0"
mknod -m 0666 "$dev_dir/test0" c 1 3
cat >"$(node_dir node-1)/cdi/static/test.nvdra.dev.json" <<JSON
{"cdiVersion": "0.6.0", "kind": "test.nvdra.dev/dev",
 "devices": [{"name": "one", "containerEdits": {
   "deviceNodes": [{"path": "/dev/nvdra-test0", "hostPath": "/run/nvdra-k8s/node/dev/test0"}],
   "env": ["NVDRA_TEST_CDI=one"]}}]}
JSON
"$K8S_BIN/nvdra-k8s" device-plugin --socket-dir "$(node_dir node-1)/kubelet/device-plugins" \
  --resource test.nvdra.dev/cdi --cdi-device test.nvdra.dev/dev=one >"$work/device-plugin.log" 2>&1 &
bg_pids+=($!)
advertised=""
for _ in $(seq 100); do
  advertised=$(kubectl get node node-1 -o jsonpath='{.status.allocatable.test\.nvdra\.dev/cdi}')
  [ "$advertised" = 1 ] && break
  sleep 0.2
done
check "device plugin's resource on node-1" 1 "$advertised"
kubectl apply -n "$ns" -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: cdi}
spec:
  containers:
  - name: c
    image: ubuntu:22.04
    command: [bash, -c, 'stat -c "%F %t:%T" /dev/nvdra-test0; echo "env=$NVDRA_TEST_CDI"; sleep infinity']
    resources: {limits: {test.nvdra.dev/cdi: 1}}
YAML
check "CDI pod Running" Running "$(wait_pod_phase "$ns" cdi Running 60)"
check "CDI pod on node-1" node-1 "$(kubectl get pod -n "$ns" cdi -o jsonpath='{.spec.nodeName}')"
logs=$(until_equal x kubectl logs -n "$ns" cdi 2>/dev/null)
contains "device node injected" "character special file 1:3" "$logs"
contains "CDI environment injected" "env=one" "$logs"

echo "== a node whose kubelet stops"
k8s_ctl node-2 kubelet stop >/dev/null
state=""
for _ in $(seq 120); do state=$(node_ready node-2); [ "$state" != True ] && break; sleep 0.5; done
check "node-2 not Ready without its kubelet" Unknown "$state"
k8s_ctl node-2 kubelet start >/dev/null
for _ in $(seq 120); do state=$(node_ready node-2); [ "$state" = True ] && break; sleep 0.5; done
check "node-2 Ready after its kubelet restarts" True "$state"
# Its pods survived the kubelet's absence (containers outlive kubelet).
check "node-2's pod still Running" Running "$(wait_pod_phase "$ns" listener-node-2 Running 60)"

kubectl delete namespace "$ns" --wait=true --timeout=120s >/dev/null 2>&1
check "namespace deleted" "" "$(kubectl get namespace "$ns" --ignore-not-found -o name)"
rm -f "$(node_dir node-1)/cdi/static/test.nvdra.dev.json" "$dev_dir/test0"
summary
