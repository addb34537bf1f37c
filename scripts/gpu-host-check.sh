#!/usr/bin/env bash
# Read-only check of nvdra on a host with NVIDIA GPUs (docs/hardware.md): NVIDIA's view of the
# GPUs, `nvdra-agent discover` (plain, DynamicMIG, PassthroughSupport), then nvdra-sim with one
# node whose agent uses the real NVML backend, a pod claiming one GPU, its CDI spec, and its
# release. Changes no GPU setting: MIG mode is left alone, TimeSlicingSettings is off (prepare
# runs no nvidia-smi) and passthrough is off in the agent (no GPU leaves the nvidia driver).
# Usage: gpu-host-check.sh BIN_DIR OUT_DIR
#   BIN_DIR: nvdra-agent and nvdra-sim; kubectl from PATH (or $KUBECTL).
#   NVDRA_EXEC: a prefix to run nvdra's binaries with (e.g. a dynamic loader and --library-path
#   when they were built on another distribution).
set -u
BIN=$(cd "${1:?usage: $0 BIN_DIR OUT_DIR}" && pwd)
OUT=$(mkdir -p "${2:?usage: $0 BIN_DIR OUT_DIR}" && cd "$2" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
read -r -a exec_prefix <<<"${NVDRA_EXEC:-}"
kubectl=${KUBECTL:-kubectl}
work=$(mktemp -d /tmp/nvgpu.XXXXXX)
sim_pid=""
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

{ nvidia-smi -L; nvidia-smi --query-gpu=index,uuid,name,pci.bus_id,memory.total,mig.mode.current,compute_cap,driver_version --format=csv; } >"$OUT/nvidia-smi.txt" 2>&1
nvidia-smi -q >"$OUT/nvidia-smi-q.txt" 2>&1
# passthrough only reads what binding would need (IOMMU group, NUMA node); it binds nothing.
for mode in plain dynamic-mig passthrough; do
  case $mode in
    plain) gates="" ;;
    dynamic-mig) gates="DynamicMIG=true" ;;
    passthrough) gates="PassthroughSupport=true" ;;
  esac
  timeout 60 "${exec_prefix[@]}" "$BIN/nvdra-agent" discover --node-name gpu-host --feature-gates "$gates" \
    >"$OUT/discover-$mode.json" 2>>"$OUT/discover.log"
  echo "discover $mode: exit $?" >>"$OUT/discover.log"
done

# The simulator's agents run through this wrapper: the GPU node's agent on NVML, the control
# plane's on the simulated backend.
cat >"$work/agent.sh" <<EOS
#!/usr/bin/env bash
case " \$* " in *" --node-name gpu-host-0 "*) ;; *) exec ${exec_prefix[*]} "$BIN/nvdra-agent" "\$@" ;; esac
args=(); skip=0
for a in "\$@"; do
  if [ \$skip = 1 ]; then skip=0; continue; fi
  case "\$a" in --device-backend | --sim-node-config) skip=1 ;; *) args+=("\$a") ;; esac
done
exec ${exec_prefix[*]} "$BIN/nvdra-agent" "\${args[@]}" --device-backend nvml \
  --feature-gates TimeSlicingSettings=false,NVMLDeviceHealthCheck=true
EOS
chmod +x "$work/agent.sh"
# The simulated node's /dev holds as many GPU nodes as the host has GPUs.
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
printf 'name: gpu-host\nnodeGroups:\n- {name: gpu-host, count: 1, gpus: %d, gpu: H100-80GB}\n' "$((gpus > 0 ? gpus : 1))" >"$work/topology.yaml"
"${exec_prefix[@]}" "$BIN/nvdra-sim" up --topology "$work/topology.yaml" --root "$work/nodes" \
  --agent-binary "$work/agent.sh" --kubeconfig-out "$work/kubeconfig" >/dev/null 2>"$OUT/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [ -s "$work/kubeconfig" ] && break; sleep 0.1; done
export KUBECONFIG="$work/kubeconfig"
k() { "$kubectl" "$@" >>"$OUT/claim.log" 2>&1; }
k apply -k "$root/manifests/base"
for _ in $(seq 100); do
  [ "$("$kubectl" get resourceslices --field-selector spec.nodeName=gpu-host-0 -o name 2>/dev/null | wc -l)" -ge 2 ] && break
  sleep 0.2
done
"$kubectl" get resourceslices --field-selector spec.nodeName=gpu-host-0 -o json >"$OUT/published-slices.json" 2>&1
k apply -f "$root/examples/demo/gpu-pod.yaml"
k wait --for=jsonpath='{.status.phase}'=Running pod --all -n nvdra-demo --timeout=60s
k get pods,resourceclaims -A -o wide
cp "$work"/nodes/gpu-host-0/var/run/cdi/*.json "$OUT/" 2>/dev/null
k delete namespace nvdra-demo --wait=true --timeout=60s
echo "CDI specs left after the delete: $(ls "$work"/nodes/gpu-host-0/var/run/cdi/ 2>/dev/null | wc -l)" >>"$OUT/claim.log"
curl -s "http://$(cat "$work/nodes/gpu-host-0/metrics-address")/metrics" | grep '^nvdra_agent_devices' >>"$OUT/claim.log"
cp "$work/nodes/gpu-host-0/agent.log" "$OUT/agent.log" 2>/dev/null
cat "$OUT/discover.log" "$OUT/claim.log"
