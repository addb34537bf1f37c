#!/usr/bin/env bash
# The whole system as an operator installs it, under real clients and faults. nvdra-sim (with
# --data-dir), an nvdra-agent per node and two nvdra-controller replicas run as separate
# processes with exactly the RBAC of manifests/base; kubectl drives everything; a real Prometheus
# scrapes the controllers and the agents. While API errors, 429s, watch drops and 410s are
# injected into the components' requests, NVIDIA's quickstart manifests, a two-node
# ComputeDomain job and NVIDIA's MPI job without a domain run; then the leading controller is
# SIGKILLed mid-reconcile, an agent is SIGKILLed mid-prepare, the simulator is restarted from its
# data directory and a node's machine is removed with its pods. After each, everything converges
# and nothing leaks. Also: the deployable manifests build, bad input is refused or reported.
# Usage: system_test.sh BIN_DIR
set -euo pipefail
BIN=${1:?usage: $0 BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
compat=$(data_dir NVDRA_COMPAT_DIR) || exit
WAIT_S=60  # generous for busy CI machines; every wait ends as soon as its state is reached

# --- the deployable manifests ---
for k in base deploy monitoring; do
  check "kustomize $k builds" "0" "$(kubectl kustomize "$root/manifests/$k" >"$work/$k.yaml" 2>"$work/$k.err"; echo $?)"
done
kinds() { grep '^kind:' "$work/$1.yaml" | sort | uniq -c | awk '{print $3 "=" $1}' | tr '\n' ' '; }
check "deploy: what it installs" \
  "ClusterRole=3 ClusterRoleBinding=3 CustomResourceDefinition=2 DaemonSet=1 Deployment=1 DeviceClass=5 Namespace=1 Role=1 RoleBinding=1 Service=2 ServiceAccount=3 ValidatingAdmissionPolicy=2 ValidatingAdmissionPolicyBinding=2 " \
  "$(kinds deploy)"
check "deploy: two controller replicas" "1" "$(grep -c '^  replicas: 2$' "$work/deploy.yaml")"
check "monitoring: ServiceMonitor and dashboard" "ConfigMap=1 ServiceMonitor=1 " "$(kinds monitoring)"
# The image, set once where the install docs say (what `kustomize edit set image` writes),
# reaches the controller and the plugin; the IMEX daemon pods get the controller's own image
# (k8s.nvidia_specs checks that on the real cluster), so no copy of it is needed.
cp -r "$root/manifests" "$root/crds" "$work/"
sed -i 's|^  newTag: latest$|  newName: registry.example.com/nvdra\n  newTag: v1.2.3|' "$work/manifests/deploy/kustomization.yaml"
check "image set once, in the controller and the plugin" "2" \
  "$(kubectl kustomize "$work/manifests/deploy" | grep -c 'registry.example.com/nvdra:v1.2.3')"
check "no second place to set it" "0" "$(kubectl kustomize "$work/manifests/deploy" | grep -c DAEMON_IMAGE)"

# --- the cluster, installed from manifests/base ---
port=$((20000 + RANDOM % 20000))
sim_args=(up --topology "$root/examples/topologies/demo.yaml" --root "$work/nodes" --data-dir "$work/data"
  --port "$port" --agent-service-account nvdra-system/nvdra-kubelet-plugin)
run_sim "${sim_args[@]}"
install_base
kubectl apply -f "$here/fixtures/mpijob-crd.yaml" >/dev/null
sa_kubeconfig nvdra-controller "$work/controller.kubeconfig"
check "every agent published its devices" "12" "$(wait_for_agents)"
check "deploy manifests accepted by the API (server dry run)" "0" \
  "$(kubectl apply --dry-run=server -f "$work/deploy.yaml" >/dev/null 2>"$work/dry.err"; echo $?)"

start_controller 1
start_controller 2

# Prometheus scrapes every controller and agent; targets come from the addresses they bound.
write_targets() {
  local ctl="" agents="" f
  for f in "$work"/ctl-metrics-*; do [ -s "$f" ] && ctl="$ctl\"$(cat "$f")\","; done
  for f in "$work"/nodes/*/metrics-address; do [ -s "$f" ] && agents="$agents\"$(cat "$f")\","; done
  printf '[{"targets":[%s],"labels":{"job":"nvdra-controller"}},{"targets":[%s],"labels":{"job":"nvdra-kubelet-plugin"}}]\n' \
    "${ctl%,}" "${agents%,}" >"$work/targets.json.tmp"
  mv "$work/targets.json.tmp" "$work/targets.json"
}
for _ in $(seq 100); do [ -s "$work/ctl-metrics-1" ] && [ -s "$work/ctl-metrics-2" ] && break; sleep 0.1; done
write_targets
cat >"$work/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: nvdra
  file_sd_configs: [{files: ["$work/targets.json"], refresh_interval: 1s}]
EOF
prom_port=$((port + 1))
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
bg_pids+=($!)
promq() {  # promq QUERY: the first sample's value ("" when none)
  curl -s "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
    python3 -c 'import json,sys
try:
    r = json.load(sys.stdin)["data"]["result"]
    print(r[0]["value"][1] if r else "")
except Exception:
    print("")'
}
check "Prometheus scrapes both controllers" "2" "$(until_equal 2 promq 'count(up{job="nvdra-controller"} == 1)')"
check "Prometheus scrapes every agent" "12" "$(until_equal 12 promq 'count(up{job="nvdra-kubelet-plugin"} == 1)')"

# --- faults throughout: the components' requests fail, watches drop, resumes get 410 ---
faults() { printf '%s' "$1" >"$work/faults.json"; kubectl replace --raw /nvdra-sim/faults -f "$work/faults.json" >/dev/null; }
faults '{"errorRate":0.05,"errorCode":500,"watchCloseSeconds":4,"goneOnResume":10,"spareAdmin":true}'

cdi_specs() { find "$work/nodes" -path '*/var/run/cdi/*.json' -not -path "*/${gone_node:-none}/*" | wc -l; }
mig_devices() { cat "$work"/nodes/*/var/lib/nvdra-sim-gpu/state.json 2>/dev/null | grep -o '"uuid"' | wc -l; }
channels() { find "$work/nodes" -path '*/nvidia-caps-imex-channels/channel*' -not -path "*/${gone_node:-none}/*" | wc -l; }
claims_n() { kubectl get resourceclaims -A -o name | grep -c . || true; }
allocated() { kubectl get resourceclaims -A -o jsonpath='{range .items[*]}{.status.allocation.devices.results[0].device}{"\n"}{end}' | grep -c . || true; }
# Every allocated device of every claim is in that claim's CDI spec on the node it was allocated
# on (the spec names devices "<claim uid>-<device>"); prints the misses.
devices_prepared() {
  kubectl get resourceclaims -A -o json | python3 -c '
import json, os, sys
nodes = sys.argv[1]
for c in json.load(sys.stdin)["items"]:
    uid = c["metadata"]["uid"]
    for r in c.get("status", {}).get("allocation", {}).get("devices", {}).get("results", []):
        spec = os.path.join(nodes, r["pool"], "var/run/cdi", "k8s.%s-claim_%s.json" % (r["driver"], uid))
        try:
            names = {d["name"] for d in json.load(open(spec))["devices"]}
        except (OSError, ValueError, KeyError):
            names = set()
        if "%s-%s" % (uid, r["device"]) not in names:
            print(c["metadata"]["namespace"] + "/" + c["metadata"]["name"], r["device"], "on", r["pool"])
' "$work/nodes"
}
allocated_mig() { kubectl get resourceclaims -A -o jsonpath='{.items[*].status.allocation.devices.results[*].device}' | tr ' ' '\n' | grep -c -- -mig- || true; }
imex_daemons() { pgrep -f "nvdra-imex-sim -c $work/" | wc -l; }
daemon_pods() { kubectl get pods -n nvdra-system --no-headers 2>/dev/null | grep -c ' Running ' || true; }

# NVIDIA's quickstart manifests, unchanged, all at once (but gpu-test6: its four A100 pods do not
# fit beside gpu-test4's MIG devices on the demo's one A100 node; it runs alone in agents_prepare);
# a two-node ComputeDomain job; NVIDIA's MPI job without a domain (GPUs as an extended resource).
namespaces=""
for m in ${quickstart_manifests/v1\/gpu-test6 /}; do namespaces="$namespaces $(apply_manifest "$compat/quickstart/$m.yaml")"; done
kubectl create namespace nvdra-demo >/dev/null
kubectl apply -f "$root/examples/demo/compute-domain-job.yaml" >/dev/null
kubectl apply -f "$compat/imex/nvbandwidth-test-no-compute-domain-job.yaml" >/dev/null
for ns in $namespaces; do check "under faults: $ns runs" "yes" "$(WAIT_S=60 all_running "$ns")"; done
check "under faults: the domain turns Ready" "Ready" "$(until_equal Ready cd_field nvlink-pair '{.status.status}' nvdra-demo)"
workers() { kubectl get pods -n nvdra-demo -l app=nvlink-pair -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c Running || true; }
check "under faults: both workers run" "2" "$(until_equal 2 workers)"
launcher() { kubectl get pods -n default -l mpi-memcpy-dra-test-replica=mpi-launcher -o jsonpath='{.items[*].status.phase}'; }
check "MPI job without a domain completes" "Succeeded" "$(until_equal Succeeded launcher)"
check "one CDI spec per allocated claim" "$(allocated)" "$(until_equal "$(allocated)" cdi_specs)"
check "a MIG device per allocated MIG device" "$(allocated_mig)" "$(mig_devices)"
check "every allocated device is prepared on its node" "" "$(until_equal "" devices_prepared)"
check "one IMEX daemon per domain node" "2" "$(until_equal 2 imex_daemons)"
check "the domain is reported by Prometheus" "1" "$(until_equal 1 promq 'max(nvdra_compute_domains{status="Ready"})')"
prepare_p95() { [ -n "$(promq 'histogram_quantile(0.95, sum by (le) (nvidia_dra_request_duration_seconds_bucket{operation="prepare"})) > 0')" ] && echo yes || echo no; }
check "prepare latency is reported by Prometheus" "yes" "$(until_equal yes prepare_p95)"
# The components' requests met the faults (the simulator counts what it injected): every check
# above held while some of their requests failed.
injected() { kubectl get --raw /nvdra-sim/faults | sed -n 's/.*"injected":\([0-9]*\).*/\1/p'; }
check "faults were injected into the components' requests" "yes" "$([ "$(injected)" -gt 0 ] && echo yes || echo no)"
faults '{"errorRate":0.05,"errorCode":429,"watchCloseSeconds":4,"goneOnResume":10,"spareAdmin":true}'

# --- SIGKILL of the leading controller mid-reconcile: the standby takes over within 20 s ---
leader=$(holder)
victim=""
for i in 1 2; do grep -q "leader election: ${leader} became" "$work/ctl-$i.log" && victim=$i; done
check "the leader is one of the replicas" "yes" "$([ -n "$victim" ] && echo yes)"
kubectl apply -f "$compat/imex/channel-injection.yaml" >/dev/null
crash "${ctl_pid[$victim]}"
killed_at=$SECONDS
new_holder() { h=$(holder); [ -n "$h" ] && [ "$h" != "$leader" ] && echo yes; }
check "standby holds the Lease" "yes" "$(WAIT_S=20 until_equal yes new_holder)"
takeover=$((SECONDS - killed_at))
echo "standby took over ${takeover} s after the leader's SIGKILL"
check "standby took over within 20 s" "yes" "$([ "$takeover" -le 20 ] && echo yes || echo "no: $takeover s")"
check "the domain created mid-failover turns Ready" "Ready" "$(until_equal Ready cd_field imex-channel-injection '{.status.status}')"
pod_phase() { kubectl get pod -n "$1" "$2" -o jsonpath='{.status.phase}' 2>/dev/null; }
check "its pod runs" "Running" "$(until_equal Running pod_phase default imex-channel-injection)"
start_controller "$victim"  # the Deployment restarts it; it stands by
for _ in $(seq 100); do [ -s "$work/ctl-metrics-$victim" ] && break; sleep 0.1; done
write_targets

# --- SIGKILL of an agent mid-prepare ---
cat >"$work/pinned.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {namespace: nvdra-demo, name: pinned}
spec:
  replicas: 2
  selector: {matchLabels: {app: pinned}}
  template:
    metadata: {labels: {app: pinned}}
    spec:
      nodeSelector: {kubernetes.io/hostname: dgx-h100-1}
      containers: [{name: c, image: ubuntu:22.04, resources: {claims: [{name: gpu}]}}]
      resourceClaims: [{name: gpu, resourceClaimTemplateName: one-gpu}]
EOF
agent_pid() { pgrep -f "nvdra-agent kubelet-plugin .*--node-name dgx-h100-1 " | head -1; }
old_agent=$(agent_pid)
kubectl apply -f "$work/pinned.yaml" >/dev/null
scheduled() { kubectl get pods -n nvdra-demo -l app=pinned -o jsonpath='{.items[*].spec.nodeName}' | wc -w; }
for _ in $(seq 200); do [ "$(scheduled)" = 2 ] && break; sleep 0.02; done
kill -9 "$old_agent"  # while kubelet asks it to prepare the two claims
pinned() { kubectl get pods -n nvdra-demo -l app=pinned -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c Running || true; }
check "after the agent's SIGKILL its pods run" "2" "$(until_equal 2 pinned)"
check "the agent was restarted" "yes" "$(a=$(agent_pid); [ -n "$a" ] && [ "$a" != "$old_agent" ] && echo yes)"
check "one CDI spec per claim after the crash" "$(allocated)" "$(until_equal "$(allocated)" cdi_specs)"
check "after the crash every allocated device is prepared" "" "$(until_equal "" devices_prepared)"
write_targets

# --- the simulator restarted from its data directory ---
check "before the restart: no component lacked a permission" "0" "$(rbac_denials)"
faults '{"errorRate":0,"watchCloseSeconds":0,"goneOnResume":0}'
before=$(kubectl get pods -A --no-headers | awk '$4 == "Running" {print $1 "/" $2}' | sort)
kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true
check "sim stopped its containers" "0" "$(imex_daemons)"
run_sim "${sim_args[@]}"
running_now() { kubectl get pods -A --no-headers 2>/dev/null | awk '$4 == "Running" {print $1 "/" $2}' | sort; }
check "after the restart the same pods run" "$before" "$(until_equal "$before" running_now)"
check "after the restart every agent publishes" "12" "$(wait_for_agents)"
check "after the restart the IMEX daemons run again" "3" "$(until_equal 3 imex_daemons)"
domains_status() { kubectl get computedomains -A -o jsonpath='{.items[*].status.status}'; }
check "after the restart the domains are Ready" "Ready Ready" "$(until_equal "Ready Ready" domains_status)"
check "after the restart one controller leads" "yes" "$([ -n "$(holder)" ] && echo yes)"
write_targets
check "after the restart Prometheus scrapes every agent again" "12" \
  "$(until_equal 12 promq 'count(up{job="nvdra-kubelet-plugin"} == 1)')"
faults '{"errorRate":0.05,"errorCode":500,"watchCloseSeconds":4,"goneOnResume":10,"spareAdmin":true}'

# --- a node's machine removed with its pods ---
gone_node=$(kubectl get pods -n nvdra-demo -l app=nvlink-pair -o jsonpath='{.items[0].spec.nodeName}')
kubectl delete --raw "/nvdra-sim/machines/$gone_node" >/dev/null
node_exists() { kubectl get node "$gone_node" -o name 2>/dev/null || true; }
check "the removed node is gone" "" "$(until_equal "" node_exists)"
on_gone() { kubectl get pods -A -o jsonpath="{range .items[?(@.spec.nodeName==\"$gone_node\")]}{.metadata.name}{\"\\n\"}{end}" | grep -c . || true; }
check "its pods are collected" "0" "$(until_equal 0 on_gone)"
check "the job's worker is replaced" "2" "$(until_equal 2 workers)"
domain_on_live_nodes() {
  local d
  d=$(kubectl get computedomain -n nvdra-demo nvlink-pair -o jsonpath='{.status.status} {.status.nodes[*].name}')
  [[ $d == Ready\ *\ * && $d != *"$gone_node"* ]] && echo yes || echo "no: $d"
}
check "the domain is Ready on two live nodes" "yes" "$(until_equal yes domain_on_live_nodes)"
for ns in $namespaces; do check "after the removal: $ns runs" "yes" "$(all_running "$ns")"; done

# --- a GPU turns unhealthy: its device is tainted and the Node gets an Event (agent's RBAC) ---
mkdir -p "$work/nodes/dgx-h100-0/faults"
echo 79 >"$work/nodes/dgx-h100-0/faults/xid-5"
taint() { kubectl get resourceslices --field-selector spec.nodeName=dgx-h100-0,spec.driver=gpu.nvidia.com -o jsonpath='{.items[*].spec.devices[?(@.name=="gpu-5")].taints[0].key}'; }
check "XID 79 taints the GPU" "gpu.nvidia.com/xid" "$(until_equal gpu.nvidia.com/xid taint)"
gpu_events() { kubectl get events.v1.events.k8s.io -A -o jsonpath='{range .items[?(@.reason=="GPUUnhealthy")]}{.regarding.name}{"\n"}{end}' | sort -u; }
check "and an Event on its Node" "dgx-h100-0" "$(until_equal dgx-h100-0 gpu_events)"

# --- bad input through kubectl ---
cat >"$work/bad-cd.yaml" <<'EOF'
apiVersion: resource.nvidia.com/v1beta1
kind: ComputeDomain
metadata: {name: bad-cd}
spec: {numNodes: -2, channel: {resourceClaimTemplate: {name: x}, allocationMode: Sometimes}}
EOF
bad=$(kubectl apply -f "$work/bad-cd.yaml" 2>&1 || true)
contains "invalid ComputeDomain refused: numNodes" "spec.numNodes: Invalid value: -2" "$bad"
contains "invalid ComputeDomain refused: allocationMode" 'Unsupported value: "Sometimes"' "$bad"
cat >"$work/bad-config.yaml" <<'EOF'
apiVersion: v1
kind: Namespace
metadata: {name: bad-config}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {namespace: bad-config, name: sometimes-shared}
spec:
  spec:
    devices:
      requests:
      - {name: gpu, exactly: {deviceClassName: gpu.nvidia.com}}
      config:
      - opaque:
          driver: gpu.nvidia.com
          parameters: {apiVersion: resource.nvidia.com/v1beta1, kind: GpuConfig, sharing: {strategy: Sometimes}}
---
apiVersion: v1
kind: Pod
metadata: {namespace: bad-config, name: pod}
spec:
  containers: [{name: c, image: ubuntu:22.04, resources: {claims: [{name: gpu}]}}]
  resourceClaims: [{name: gpu, resourceClaimTemplateName: sometimes-shared}]
EOF
kubectl apply -f "$work/bad-config.yaml" >/dev/null
bad_event() { kubectl get events -n bad-config -o jsonpath='{range .items[?(@.reason=="FailedPrepareDynamicResources")]}{.message}{"\n"}{end}' | head -1; }
contains "invalid opaque config reported on the pod" "unknown GPU sharing strategy: Sometimes, supported GPU sharing strategies: TimeSlicing, MPS" \
  "$(WAIT_S=30 until_equal x bad_event)"
check "and the pod does not start" "Pending" "$(kubectl get pod -n bad-config pod -o jsonpath='{.status.phase}')"
kubectl delete namespace bad-config --wait=false >/dev/null

# --- everything deleted: nothing leaks ---
faults '{"errorRate":0,"watchCloseSeconds":0,"goneOnResume":0}'
kubectl delete namespace $namespaces nvdra-demo --wait=false >/dev/null
kubectl delete -f "$compat/imex/channel-injection.yaml" -f "$compat/imex/nvbandwidth-test-no-compute-domain-job.yaml" --wait=false >/dev/null
leftovers() {
  echo "claims=$(claims_n)" \
    "domains=$(kubectl get computedomains -A -o name | grep -c . || true)" \
    "rct=$(kubectl get resourceclaimtemplates -A -l resource.nvidia.com/computeDomain -o name | grep -c . || true)" \
    "ds=$(kubectl get daemonsets -A -o name | grep -c . || true)" \
    "daemons=$(kubectl get pods -n nvdra-system -o name | grep -c . || true)" \
    "labels=$(kubectl get nodes -l resource.nvidia.com/computeDomain -o name | grep -c . || true)" \
    "cdi=$(cdi_specs)" "channels=$(channels)" "mig=$(mig_devices)" "imex=$(imex_daemons)"
}
clean="claims=0 domains=0 rct=0 ds=0 daemons=0 labels=0 cdi=0 channels=0 mig=0 imex=0"
check "nothing left after deletion" "$clean" "$(until_equal "$clean" leftovers)"
check "every component had the permissions it needed" "0" "$(rbac_denials)"

# The Grafana dashboard charts only metrics Prometheus scraped from the components during this
# run (unprepare errors excepted: nothing failed to unprepare, and a labelled counter appears
# with its first error).
scraped=$(curl -s "http://127.0.0.1:$prom_port/api/v1/label/__name__/values" | grep -oE '(nvdra|nvidia)_[a-z_]+' |
  sed -E 's/_(bucket|count|sum)$//' | sort -u)
charted=$(grep -o '"expr": "[^"]*' "$root/manifests/monitoring/nvdra-dashboard.json" | grep -oE '(nvdra|nvidia)_[a-z_]+' |
  sed -E 's/_(bucket|count|sum)$//' | sort -u | grep -v '^nvidia_dra_node_unprepare_errors_total$')
check "the dashboard charts only scraped metrics" "" "$(comm -13 <(echo "$scraped") <(echo "$charted"))"
check "the dashboard charts something" "yes" "$([ "$(wc -l <<<"$charted")" -ge 15 ] && echo yes)"
check "controllers never crashed" "" "$(grep -l 'terminate called\|Segmentation\|AddressSanitizer' "$work"/ctl-*.log 2>/dev/null || true)"
summary
