#!/usr/bin/env python3
"""What the container runtime injected, checked against what the scheduler allocated.

For every running container of the pods in NAMESPACE: the GPUs (/dev/nvidia<minor>) and MIG
capability nodes (/dev/nvidia-caps/*) it sees inside must be exactly those of the devices its
claims (and the claim's request, where the container names one) were allocated: gpu-<minor>
gives /dev/nvidia<minor>, a MIG device gpu-<minor>-mig-... gives its parent GPU's node and two
capability nodes (GPU and compute instance). Prints "ok", or one line per container that
differs. Usage: k8s_injected.py NAMESPACE (kubectl must point at the cluster).
"""
import json
import re
import subprocess
import sys


def kubectl(*args):
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True).stdout


def expected(devices):
    minors, caps = set(), 0
    for d in devices:
        m = re.match(r"gpu-(\d+)(-mig-)?", d)
        if not m:
            continue
        minors.add(int(m.group(1)))
        if m.group(2):
            caps += 2
    return minors, caps


def observed(ns, pod, container):
    out = kubectl("exec", "-n", ns, pod, "-c", container, "--", "sh", "-c",
                  "ls /dev; echo --; ls /dev/nvidia-caps 2>/dev/null | wc -l")
    names, _, caps = out.partition("--")
    minors = {int(m) for m in re.findall(r"^nvidia(\d+)$", names, re.M)}
    return minors, int(caps.strip() or 0)


def main(ns):
    pods = json.loads(kubectl("get", "pods", "-n", ns, "-o", "json"))["items"]
    claims = {c["metadata"]["name"]: c for c in
              json.loads(kubectl("get", "resourceclaims", "-n", ns, "-o", "json"))["items"]}
    problems, checked = [], 0
    for pod in pods:
        if pod["status"].get("phase") != "Running":
            continue
        name = pod["metadata"]["name"]
        # A claim named in the pod's spec, or the one made from a template (in its status).
        claim_of = {s["name"]: s.get("resourceClaimName")
                    for s in pod["status"].get("resourceClaimStatuses", [])}
        for ref in pod["spec"].get("resourceClaims", []):
            if ref.get("resourceClaimName"):
                claim_of[ref["name"]] = ref["resourceClaimName"]
        for ctr in pod["spec"]["containers"]:
            devices = []
            for ref in ctr.get("resources", {}).get("claims", []):
                claim = claims.get(claim_of.get(ref["name"]) or "")
                if not claim:
                    problems.append(f"{name}/{ctr['name']}: claim {ref['name']} not found")
                    continue
                for r in claim["status"]["allocation"]["devices"]["results"]:
                    request = r["request"].split("/")[0]  # "gpus/h100" from a prioritized list
                    if "request" not in ref or ref["request"] in (request, r["request"]):
                        devices.append(r["device"])
            want = expected(devices)
            got = observed(ns, name, ctr["name"])
            checked += 1
            if want != got:
                problems.append(f"{name}/{ctr['name']}: allocated {sorted(devices)} -> want GPUs "
                                f"{sorted(want[0])} and {want[1]} MIG capabilities, got "
                                f"GPUs {sorted(got[0])} and {got[1]}")
    if not checked:
        problems.append("no running container to check")
    print("ok" if not problems else "\n".join(problems))


if __name__ == "__main__":
    main(sys.argv[1])
