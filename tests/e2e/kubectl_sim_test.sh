#!/usr/bin/env bash
# kubectl (a client nobody here wrote) against `nvdra-sim serve`.
# Usage: kubectl_sim_test.sh BIN_DIR
set -euo pipefail
BIN=${1:?usage: $0 BIN_DIR}
source "$(dirname "$0")/lib.sh"

run_sim serve
[ "$(stat -c %a "$work/kubeconfig")" = "600" ] || { echo "kubeconfig is not 0600"; exit 1; }

contains "namespaces" "kube-system" "$(kubectl get namespaces -o name)"

# kubectl's generator commands send protobuf.
check "create namespace" "namespace/made created" "$(kubectl create namespace made)"
kubectl create configmap -n made gen --from-literal=a=1 --from-literal=b=2 >/dev/null
check "create configmap" '{"a":"1","b":"2"}' "$(kubectl get cm -n made gen -o jsonpath='{.data}')"
kubectl create secret generic -n made pw --from-literal=password=hunter2 >/dev/null
check "create secret" "hunter2 Opaque" "$(kubectl get secret -n made pw -o jsonpath='{.data.password}' | base64 -d) $(kubectl get secret -n made pw -o jsonpath='{.type}')"
check "create serviceaccount" "serviceaccount/robot created" "$(kubectl create serviceaccount -n made robot)"
contains "create token" "nvdra-sa." "$(kubectl create token -n made robot)"
contains "undecodable protobuf" "does not decode protobuf bodies of apps/v1 Deployment" "$(kubectl create deployment -n made d --image=x 2>&1 || true)"
kubectl delete namespace made --wait=false >/dev/null
contains "api-resources" "resourceclaims" "$(kubectl api-resources -o name)"

cat >"$work/cm.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: demo
  labels: {app: demo}
data:
  a: "1"
YAML
contains "apply" "configmap/demo created" "$(kubectl apply -f "$work/cm.yaml")"
contains "apply again" "configmap/demo unchanged" "$(kubectl apply -f "$work/cm.yaml")"
check "get jsonpath" "1" "$(kubectl get cm demo -o jsonpath='{.data.a}')"
contains "get table" "demo" "$(kubectl get cm)"
contains "get yaml" "uid:" "$(kubectl get cm demo -o yaml)"
kubectl label cm demo tier=gold >/dev/null
check "label selector" "configmap/demo" "$(kubectl get cm -l tier=gold -o name)"
check "label selector none" "" "$(kubectl get cm -l tier=silver -o name 2>/dev/null)"
kubectl patch cm demo --type=merge -p '{"data":{"b":"2"}}' >/dev/null
kubectl patch cm demo --type=json -p '[{"op":"add","path":"/data/c","value":"3"}]' >/dev/null
kubectl patch cm demo -p '{"data":{"d":"4"}}' >/dev/null
check "patches" '{"a":"1","b":"2","c":"3","d":"4"}' "$(kubectl get cm demo -o jsonpath='{.data}')"
contains "server-side apply" "serverside-applied" "$(kubectl apply --server-side -f "$work/cm.yaml")"
# Server-side apply tracks field owners: another manager changing data.a conflicts until forced.
sed 's/a: "1"/a: "9"/' "$work/cm.yaml" >"$work/cm9.yaml"
contains "ssa conflict" 'conflict with "kubectl-client-side-apply"' \
  "$(kubectl apply --server-side --field-manager=ci -f "$work/cm9.yaml" 2>&1 || true)"
check "ssa conflict keeps value" "1" "$(kubectl get cm demo -o jsonpath='{.data.a}')"
contains "ssa force" "serverside-applied" \
  "$(kubectl apply --server-side --field-manager=ci --force-conflicts -f "$work/cm9.yaml")"
check "ssa force value" "9" "$(kubectl get cm demo -o jsonpath='{.data.a}')"
contains "managed fields" "manager: ci" "$(kubectl get cm demo -o yaml --show-managed-fields)"
kubectl apply --server-side --field-manager=ci --force-conflicts -f "$work/cm.yaml" >/dev/null

# get -w sees a change made while it watches.
kubectl get cm -w -o name >"$work/watch" 2>&1 &
watch_pid=$!
sleep 0.5
kubectl patch cm demo --type=merge -p '{"data":{"e":"5"}}' >/dev/null
sleep 0.5
kill "$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true
contains "get -w" "configmap/demo" "$(cat "$work/watch")"

# wait --for=jsonpath
check "wait jsonpath" "configmap/demo condition met" "$(kubectl wait cm/demo --for=jsonpath='{.data.a}'=1 --timeout=5s)"

# Re-applying a changed pod merges its containers by name (strategic merge patch).
cat >"$work/pod.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  containers:
  - {name: a, image: "img:1", args: ["x"]}
  - {name: b, image: "img:1"}
YAML
kubectl apply -f "$work/pod.yaml" >/dev/null
sed -i 's/name: a, image: "img:1"/name: a, image: "img:2"/' "$work/pod.yaml"
kubectl apply -f "$work/pod.yaml" >/dev/null
check "apply merges containers" "a=img:2 b=img:1 " \
  "$(kubectl get pod two -o jsonpath='{range .spec.containers[*]}{.name}={.image} {end}')"
check "apply keeps fields" "x" "$(kubectl get pod two -o jsonpath='{.spec.containers[0].args[0]}')"
kubectl delete pod two >/dev/null

# Cascading delete: the dependent goes with its owner.
uid=$(kubectl get cm demo -o jsonpath='{.metadata.uid}')
cat <<YAML | kubectl apply -f - >/dev/null
apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: demo, uid: "$uid"}]
YAML
kubectl delete cm demo >/dev/null
check "cascade" "" "$(kubectl get cm -o name)"

# A CRD is served once established, with its objects.
cat >"$work/crd.yaml" <<'YAML'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Color, type: string, jsonPath: .spec.color, priority: 1}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - {rule: "!has(self.size) || self.size != 9", message: "size 9 is reserved"}
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              color: {type: string, enum: [red, blue], default: red}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
YAML
kubectl apply -f "$work/crd.yaml" >/dev/null
check "crd established" "customresourcedefinition.apiextensions.k8s.io/widgets.example.com condition met" \
  "$(kubectl wait --for=condition=Established crd/widgets.example.com --timeout=5s)"
cat <<'YAML' | kubectl apply -f - >/dev/null
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
YAML
check "custom resource" "widget.example.com/w1" "$(kubectl get wd -o name)"
check "custom resource field" "3" "$(kubectl get widget w1 -o jsonpath='{.spec.size}')"
check "schema default" "red" "$(kubectl get widget w1 -o jsonpath='{.spec.color}')"
contains "schema bounds" "spec.size" "$(printf 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: big}\nspec: {size: 11}\n' | kubectl apply -f - 2>&1 || true)"
contains "schema enum" "Unsupported value" "$(printf 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: odd}\nspec: {size: 2, color: green}\n' | kubectl apply -f - 2>&1 || true)"
contains "cel rule" "size 9 is reserved" "$(printf 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: nine}\nspec: {size: 9}\n' | kubectl apply -f - 2>&1 || true)"
contains "crd rule outside the cel subset" "is not supported" "$(sed -e 's/widgets.example.com/gadgets.example.com/' -e 's/plural: widgets, singular: widget, kind: Widget, shortNames: \[wd\]/plural: gadgets, singular: gadget, kind: Gadget/' -e 's/self.size != 9/self.size.split(1)/' "$work/crd.yaml" | kubectl apply -f - 2>&1 || true)"
check "printer columns" "NAME SIZE PHASE" "$(kubectl get widgets | head -1 | tr -s ' ')"
check "printer column value" "w1 3" "$(kubectl get widgets --no-headers | tr -s ' ' | cut -d' ' -f1,2)"
check "wide columns" "NAME SIZE PHASE COLOR" "$(kubectl get widgets -o wide | head -1 | tr -s ' ')"

# RBAC for a service account: a token from the TokenRequest API, then kubectl auth can-i and real
# requests with it.
cat <<'YAML' | kubectl apply -f - >/dev/null
apiVersion: v1
kind: ServiceAccount
metadata: {name: agent, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm-reader, namespace: default}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: agent-reads, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}
subjects: [{kind: ServiceAccount, name: agent, namespace: default}]
YAML
echo '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{}}' >"$work/tr.json"
sa_token=$(kubectl create --raw /api/v1/namespaces/default/serviceaccounts/agent/token -f "$work/tr.json" |
  sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
cp "$KUBECONFIG" "$work/agent.kubeconfig"
kubectl --kubeconfig "$work/agent.kubeconfig" config set-credentials admin --token="$sa_token" >/dev/null
check "can-i allowed" "yes" "$(kubectl --kubeconfig "$work/agent.kubeconfig" auth can-i list configmaps)"
check "can-i denied" "no" "$(kubectl --kubeconfig "$work/agent.kubeconfig" auth can-i create secrets 2>/dev/null || true)"
check "admin can-i" "yes" "$(kubectl auth can-i create secrets)"
contains "forbidden request" "Forbidden" "$(kubectl --kubeconfig "$work/agent.kubeconfig" get secrets 2>&1 || true)"

# Bad input gets the server's errors, not a crash.
contains "unknown resource" "doesn't have a resource type" "$(kubectl get nosuchthings 2>&1 || true)"
contains "bad selector" "unable to parse requirement" "$(kubectl get cm -l 'a in (' 2>&1 || true)"
contains "not found" "NotFound" "$(kubectl get cm nope 2>&1 || true)"
kill -0 "$sim_pid" || { echo "nvdra-sim died"; cat "$work/err"; exit 1; }

# --data-dir: objects, CRDs, credentials and resourceVersions survive a restart.
kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true
sim_pid=""
port=$(( 20000 + RANDOM % 20000 ))
start_sim() {
  : >"$work/out2"
  "$BIN/nvdra-sim" serve --data-dir "$work/data" --port "$port" --kubeconfig-out "$work/kc2" >"$work/out2" 2>>"$work/err2" &
  sim_pid=$!
  for _ in $(seq 100); do [ -s "$work/out2" ] && break; sleep 0.05; done
}
start_sim
export KUBECONFIG="$work/kc2"
kubectl apply -f "$work/crd.yaml" >/dev/null
kubectl wait --for=condition=Established crd/widgets.example.com --timeout=5s >/dev/null
printf 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: kept}\nspec: {size: 7}\n' | kubectl apply -f - >/dev/null
rv1=$(kubectl get widget kept -o jsonpath='{.metadata.resourceVersion}')
kill -TERM "$sim_pid"; wait "$sim_pid" 2>/dev/null || true
start_sim
check "data-dir keeps objects" "7" "$(kubectl get widget kept -o jsonpath='{.spec.size}')"
kubectl label widget kept after=restart >/dev/null
rv2=$(kubectl get widget kept -o jsonpath='{.metadata.resourceVersion}')
check "resourceVersion keeps growing" "yes" "$([ "$rv2" -gt "$rv1" ] && echo yes || echo "no: $rv1 -> $rv2")"
check "data dir mode" "700" "$(stat -c %a "$work/data")"

summary
