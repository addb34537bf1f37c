#!/usr/bin/env bash
# The real test cluster's own cost: start to every node Ready, and, after a minute idle, the
# memory (resident set, summed per component over every process in the cluster's cgroups) and the
# CPU it takes over 30 s (cpuacct of its cgroup). The baseline in the same run is one node, so
# the cost of each further node is the difference.
# Usage: bench_k8s_cluster.sh K8S_BIN [NODES]   (needs root; make k8s-images)
set -euo pipefail
K8S_BIN=$(realpath "$1")
nodes=${2:-2}
images=$(cd "$K8S_BIN/../images" && pwd)
state=/tmp/nvdra-k8s-bench
trap '"$K8S_BIN/nvdra-k8s" down --state "$state" >/dev/null 2>&1 || true' EXIT

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }

# usage: "component MiB" lines and a total, for the cluster in $state.
usage() {
  local root pid name rss
  root=/sys/fs/cgroup/memory/nvdra-k8s$(cat "$state/index")
  declare -A mib
  for pid in $(find "$root" -name cgroup.procs -exec cat {} + | sort -u); do
    name=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | awk '{n = $1; sub(".*/", "", n)
      if (n == "kube") n = $2; if (n ~ /^containerd-shim/ || n == "pause") n = "containers (shims, pause)"
      print n}') || continue
    [ -n "$name" ] || continue
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    mib[$name]=$(( ${mib[$name]:-0} + rss ))
  done
  for name in "${!mib[@]}"; do
    printf '%s %.1f\n' "$name" "$(awk -v k="${mib[$name]}" 'BEGIN { print k / 1024 }')"
  done | sort | awk '{ print; sum += $NF } END { printf "total %.1f\n", sum }'
}
cpu_percent() {  # over 30 s, of one core
  local f a b
  f=/sys/fs/cgroup/cpuacct/nvdra-k8s$(cat "$state/index")/cpuacct.usage
  a=$(cat "$f"); sleep 30; b=$(cat "$f")
  awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", (b - a) / 30e9 * 100 }'
}

run() {  # N: prints "N start_s cpu_% total_MiB" and the usage table on stderr
  local t start cpu
  t=$(now)
  "$K8S_BIN/nvdra-k8s" up --detach --state "$state" --nodes "$1" \
    --image "$images/pause.tar" --image "$images/test.tar" >/dev/null
  start=$(since "$t")
  sleep 60
  cpu=$(cpu_percent)
  usage >"$state/usage.txt"
  echo "-- $1 node(s):" >&2
  sed 's/^/   /' "$state/usage.txt" >&2
  echo "$1 $start $cpu $(awk '$1 == "total" {print $2}' "$state/usage.txt")"
  "$K8S_BIN/nvdra-k8s" down --state "$state" >/dev/null
}

base=$(run 1)
full=$(run "$nodes")
echo
echo "| nodes | start to all Ready | idle CPU (of one core) | idle memory (RSS) |"
echo "|---|---|---|---|"
for row in "$base" "$full"; do
  read -r n start cpu mem <<<"$row"
  echo "| $n | $start s | $cpu % | $mem MiB |"
done
read -r _ _ c1 m1 <<<"$base"
read -r n _ c2 m2 <<<"$full"
awk -v n="$n" -v c1="$c1" -v c2="$c2" -v m1="$m1" -v m2="$m2" \
  'BEGIN { printf "each further node: %.1f %% CPU, %.0f MiB\n", (c2 - c1) / (n - 1), (m2 - m1) / (n - 1) }'
