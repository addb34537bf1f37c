#!/usr/bin/env python3
"""Differential check of nvdra-sim against the real kube-apiserver (issue 15, item 5).

One list of raw API requests and kubectl commands runs against the real test cluster and against
an `nvdra-sim serve` started here. What a client depends on (status codes, Status reasons and
causes, object shape after normalization, watch event types, Table columns, discovery) is
compared check by check. Uids, timestamps, resourceVersions, generated name suffixes, tokens,
managedFields times and error message texts are normalized away.

A difference must be listed in k8s_diff_known.txt (`CHECK  reason`) to pass; a listed check that
no longer differs fails as "fixed, remove from list". docs/compatibility.md summarizes the list.

Usage: k8s_diff_test.py BUILD_BIN K8S_BIN   (env K8S_STATE: the fixture cluster's state folder)
       k8s_diff_test.py BUILD_BIN K8S_BIN --real-kubeconfig FILE [--only PREFIX] [-v]
Exit status: 0 when every difference found is a listed one, 1 otherwise.
"""
import argparse
import base64
import difflib
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KNOWN_FILE = os.path.join(HERE, "k8s_diff_known.txt")
NS = "nvdra-diff"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
CM = f"/api/v1/namespaces/{NS}/configmaps"
CD = f"/apis/resource.nvidia.com/v1beta1/namespaces/{NS}/computedomains"
MERGE = "application/merge-patch+json"
JSONP = "application/json-patch+json"
SMP = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


# ---------------------------------------------------------------------------------------------
# A server: REST requests, watches and kubectl, all with one kubeconfig.

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names; repeated ones joined with "\n"
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def warnings(self):
        return self.headers.get("warning", "")


class Watch:
    """An open watch: events are decoded from the chunked JSON stream as they arrive."""

    def __init__(self, conn, resp):
        self.conn = conn
        self.resp = resp
        self.status = resp.status
        self.buf = ""
        self.ended = False
        self.dec = json.JSONDecoder()

    def _pull(self, deadline):
        timeout = deadline - time.time()
        if timeout <= 0 or self.ended:
            return False
        self.conn.sock.settimeout(timeout)
        try:
            chunk = self.resp.read1(65536)
        except (TimeoutError, OSError):
            return False
        except http.client.HTTPException:
            self.ended = True
            return False
        if not chunk:
            self.ended = True
            return False
        self.buf += chunk.decode()
        return True

    def next(self, deadline):
        while True:
            s = self.buf.lstrip()
            if s:
                try:
                    obj, end = self.dec.raw_decode(s)
                    self.buf = s[end:]
                    return obj
                except ValueError:
                    pass
            if not self._pull(deadline):
                return None

    def read(self, n, seconds, until_end=False):
        """Up to n events within seconds (or all until the server ends the stream)."""
        out = []
        deadline = time.time() + seconds
        while until_end or len(out) < n:
            e = self.next(deadline)
            if e is None:
                break
            out.append(e)
        return out

    def close(self):
        try:
            self.conn.close()
        except OSError:
            pass


class Server:
    def __init__(self, label, kubeconfig, tmp):
        self.label = label
        self.kubeconfig = kubeconfig
        out = subprocess.run(["kubectl", "config", "view", "--raw", "--minify", "--flatten",
                              "-o", "json", "--kubeconfig", kubeconfig],
                             check=True, capture_output=True, text=True).stdout
        cfg = json.loads(out)
        cluster = cfg["clusters"][0]["cluster"]
        user = cfg["users"][0]["user"]
        u = urllib.parse.urlparse(cluster["server"])
        self.host, self.port = u.hostname, u.port or 443
        self.prefix = u.path.rstrip("/")
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        self.anon_ctx = ssl.create_default_context(cadata=ca)
        self.anon_ctx.check_hostname = False
        self.ctx = ssl.create_default_context(cadata=ca)
        self.ctx.check_hostname = False
        self.token = user.get("token")
        if "client-certificate-data" in user:
            cert = os.path.join(tmp, f"{label}.crt")
            key = os.path.join(tmp, f"{label}.key")
            with open(cert, "wb") as f:
                f.write(base64.b64decode(user["client-certificate-data"]))
            with open(key, "wb") as f:
                f.write(base64.b64decode(user["client-key-data"]))
            os.chmod(key, 0o600)
            self.ctx.load_cert_chain(cert, key)

    def _conn(self, token, anonymous, timeout):
        ctx = self.anon_ctx if (anonymous or token) else self.ctx
        return http.client.HTTPSConnection(self.host, self.port, context=ctx, timeout=timeout)

    def _headers(self, body, ctype, accept, headers, token, anonymous):
        h = {"Accept": accept, "User-Agent": "nvdra-diff/1.0"}
        if body is not None:
            h["Content-Type"] = ctype
        if token:
            h["Authorization"] = "Bearer " + token
        elif self.token and not anonymous:
            h["Authorization"] = "Bearer " + self.token
        h.update(headers or {})
        return h

    @staticmethod
    def _body(body):
        if body is None or isinstance(body, bytes):
            return body
        if isinstance(body, str):
            return body.encode()
        return json.dumps(body).encode()

    def req(self, method, path, body=None, ctype="application/json", accept="application/json",
            headers=None, token=None, anonymous=False, timeout=30):
        body = self._body(body)
        conn = self._conn(token, anonymous, timeout)
        try:
            conn.request(method, self.prefix + path, body=body,
                         headers=self._headers(body, ctype, accept, headers, token, anonymous))
            r = conn.getresponse()
            data = r.read()
            hdrs = {}
            for k, v in r.getheaders():
                k = k.lower()
                hdrs[k] = hdrs[k] + "\n" + v if k in hdrs else v
            return Resp(r.status, hdrs, data)
        except (ConnectionError, ssl.SSLError, OSError) as e:  # a server that hangs up
            return Resp(0, {}, str(e).encode())
        finally:
            conn.close()

    def watch(self, path, timeout=30):
        conn = self._conn(None, False, timeout)
        conn.request("GET", self.prefix + path, headers=self._headers(None, "", "application/json",
                                                                       None, None, False))
        return Watch(conn, conn.getresponse())

    def kubectl(self, *args, stdin=None, timeout=60):
        p = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, *args], input=stdin,
                           capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr


# ---------------------------------------------------------------------------------------------
# Normalization: what differs between any two servers (or two runs) is masked.

TIME_KEYS = {"creationTimestamp", "deletionTimestamp", "time", "lastTimestamp", "firstTimestamp",
             "eventTime", "lastTransitionTime", "expirationTimestamp", "lastUpdateTime",
             "lastProbeTime", "startTime", "renewTime", "acquireTime", "lastHeartbeatTime"}
MASK = {"uid": "<uid>", "resourceVersion": "<rv>", "continue": "<continue>", "token": "<token>",
        "storageVersionHash": "<hash>", "reportingInstance": "<instance>"}


def norm(v, key=None):
    if isinstance(v, dict):
        out = {k: norm(x, k) for k, x in v.items()}
        md = out.get("metadata")
        if isinstance(md, dict) and md.get("generateName") and isinstance(md.get("name"), str) \
                and md["name"].startswith(md["generateName"]):
            md["name"] = md["generateName"] + "<%d>" % (len(md["name"]) - len(md["generateName"]))
        return out
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, str) and v:
        if key in TIME_KEYS:
            return "<time>"
        if key in MASK:
            return MASK[key]
        v = re.sub(r"kube-api-access-[a-z0-9]{5}", "kube-api-access-<5>", v)
    return v


def status(r):
    """A Status answer as a client reads it: HTTP code, reason, details and causes (no messages)."""
    j = r.json
    if not isinstance(j, dict) or j.get("kind") != "Status":
        kind = j.get("kind") if isinstance(j, dict) else ("non-json" if r.body else "empty")
        return {"http": r.status, "body": kind}
    out = {"http": r.status, "status": j.get("status"), "reason": j.get("reason"),
           "code": j.get("code")}
    d = j.get("details")
    if d:
        out["details"] = {k: d[k] for k in ("name", "group", "kind") if k in d}
        if d.get("causes"):
            out["causes"] = sorted({(c.get("reason", ""), c.get("field", ""))
                                    for c in d["causes"]})
    return out


def answer(r):
    """A Status summary for errors, else the HTTP code and the normalized object."""
    if r.status >= 300 or (isinstance(r.json, dict) and r.json.get("kind") == "Status"):
        return status(r)
    return {"http": r.status, "object": norm(r.json)}


def msg(r):
    return r.json.get("message", "") if isinstance(r.json, dict) else r.body.decode(errors="replace")


def md(r, *keys):
    m = (r.json or {}).get("metadata", {}) if isinstance(r.json, dict) else {}
    for k in keys:
        m = m.get(k) if isinstance(m, dict) else None
    return m


def get(v, *keys):
    for k in keys:
        v = v.get(k) if isinstance(v, dict) else None
    return v


def names(r):
    if not isinstance(r.json, dict) or "items" not in r.json:
        return status(r)
    return sorted(i["metadata"]["name"] for i in r.json["items"] or [])


AGE = re.compile(r"\b\d+(\.\d+)?(ms|s|m|h|d)(\d+(s|m|h))?\b|<unknown>|<invalid>")


def mask_text(t):
    t = AGE.sub("<age>", t)
    t = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uid>", t)
    t = re.sub(r"[ \t]+", " ", t)  # column widths follow the masked values
    return t.strip()


def is_jwt(tok):
    return isinstance(tok, str) and tok.count(".") == 2 and tok.startswith("eyJ")


def table(r):
    j = r.json
    if not isinstance(j, dict) or j.get("kind") != "Table":
        return status(r)
    cols = [(c["name"], c.get("type"), c.get("format", ""), c.get("priority", 0))
            for c in j.get("columnDefinitions", [])]
    rows = []
    for row in j.get("rows") or []:
        cells = []
        for (name, *_), cell in zip(cols, row.get("cells", [])):
            cells.append("<age>" if name in ("Age", "Last Seen", "First Seen") else cell)
        obj = row.get("object")
        rows.append({"cells": cells,
                     "object": None if obj is None else {
                         "kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"),
                         "name": obj.get("metadata", {}).get("name")}})
    return {"kind": j["kind"], "apiVersion": j.get("apiVersion"), "columns": cols, "rows": rows,
            "listRV": "<rv>" if j.get("metadata", {}).get("resourceVersion") else None}


def until(fn, seconds, step=0.2):
    deadline = time.time() + seconds
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(step)


def cm(name, data=None, labels=None, **meta):
    m = {"name": name, **meta}
    if labels:
        m["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": data or {"a": "1"}}


def events_summary(evs, field=None):
    out = []
    for e in evs:
        o = e.get("object", {})
        item = [e.get("type"), o.get("kind"), o.get("metadata", {}).get("name")]
        if e.get("type") == "ERROR":
            item += [o.get("code"), o.get("reason")]
        if field:
            item.append(field(o))
        out.append(item)
    return out


# ---------------------------------------------------------------------------------------------
# The checks: each group records named observations; groups run on both servers.

def setup(s, o):
    s.req("DELETE", f"/api/v1/namespaces/{NS}")
    gone = until(lambda: s.req("GET", f"/api/v1/namespaces/{NS}").status == 404, 90)
    if not gone:
        raise RuntimeError(f"namespace {NS} from an earlier run is still there")
    r = s.req("POST", "/api/v1/namespaces",
              {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    o("ns.create", {"http": r.status, "phase": get(r.json, "status", "phase"),
                    "spec": (r.json or {}).get("spec"),
                    "labels": md(r, "labels")})
    rc, out, err = s.kubectl("apply", "-k", os.path.join(ROOT, "crds"))
    if rc:
        raise RuntimeError("applying crds/: " + err)
    for crd in ("computedomains", "computedomaincliques"):
        s.kubectl("wait", "--for=condition=Established", f"crd/{crd}.resource.nvidia.com",
                  "--timeout=30s")
    until(lambda: s.req("GET", "/apis/resource.nvidia.com/v1beta1").status == 200, 30)
    o("ns.default-serviceaccount", until(
        lambda: s.req("GET", f"/api/v1/namespaces/{NS}/serviceaccounts/default").status == 200, 10))
    o("ns.kube-root-ca", until(
        lambda: s.req("GET", f"{CM}/kube-root-ca.crt").status == 200, 5))


NVDRA_GROUPS = ["apps", "batch", "coordination.k8s.io", "events.k8s.io", "rbac.authorization.k8s.io",
                "authorization.k8s.io", "authentication.k8s.io", "apiextensions.k8s.io",
                "resource.k8s.io", "resource.nvidia.com"]
CORE_RESOURCES = ["configmaps", "events", "namespaces", "namespaces/status", "nodes",
                  "nodes/status", "pods", "pods/status", "pods/binding", "pods/log", "pods/exec",
                  "pods/eviction", "secrets", "serviceaccounts", "serviceaccounts/token",
                  "services"]


def g_discovery(s, o):
    r = s.req("GET", "/api")
    o("discovery.api", {"http": r.status, "kind": r.json.get("kind"),
                        "versions": r.json.get("versions")})
    r = s.req("GET", "/apis")
    groups = {g["name"]: g for g in r.json.get("groups", [])}
    o("discovery.apis", {"http": r.status, "kind": r.json.get("kind"),
                         "apiVersion": r.json.get("apiVersion")})
    o("discovery.groups-nvdra-uses", {
        g: None if g not in groups else {
            "versions": [v["version"] for v in groups[g]["versions"]],
            "preferred": groups[g]["preferredVersion"]["version"]} for g in NVDRA_GROUPS})
    o("discovery.all-groups", sorted(groups))
    r = s.req("GET", "/apis", accept="application/json;g=apidiscovery.k8s.io;v=v2;"
                                     "as=APIGroupDiscoveryList,application/json")
    o("discovery.aggregated", {"http": r.status, "kind": (r.json or {}).get("kind"),
                               "content-type": r.headers.get("content-type", "").split(";")[0]})
    for gv in ["api/v1", "apis/apps/v1", "apis/resource.k8s.io/v1", "apis/coordination.k8s.io/v1",
               "apis/events.k8s.io/v1", "apis/resource.nvidia.com/v1beta1"]:
        r = s.req("GET", "/" + gv)
        res = {}
        for x in (r.json or {}).get("resources", []):
            if gv == "api/v1" and x["name"] not in CORE_RESOURCES:
                continue
            res[x["name"]] = {"kind": x.get("kind"), "namespaced": x.get("namespaced"),
                              "verbs": sorted(x.get("verbs") or []),
                              "shortNames": x.get("shortNames") or None,
                              "singularName": x.get("singularName"),
                              "categories": x.get("categories") or None}
        o("discovery." + gv, {"http": r.status, "kind": (r.json or {}).get("kind"),
                              "groupVersion": (r.json or {}).get("groupVersion"),
                              "resources": res})
    r = s.req("GET", "/apis/resource.k8s.io")
    o("discovery.group", {"http": r.status, "kind": (r.json or {}).get("kind"),
                          "name": (r.json or {}).get("name"),
                          "preferred": (r.json or {}).get("preferredVersion")})
    r = s.req("GET", "/version")
    o("discovery.version", {"http": r.status, "keys": sorted(r.json or {}),
                            "major": (r.json or {}).get("major")})
    o("discovery.health", {p: (s.req("GET", p).status, s.req("GET", p).body.decode())
                           for p in ("/healthz", "/readyz", "/livez")})
    r = s.req("GET", "/apis/nope.example.com/v1")
    o("discovery.unknown-group", r.status)
    r = s.req("GET", "/api/v2")
    o("discovery.unknown-version", r.status)
    rc, out, _ = s.kubectl("api-resources", "--api-group=resource.nvidia.com")
    o("kubectl.api-resources", (rc, mask_text(out)))


def g_openapi(s, o):
    r = s.req("GET", "/openapi/v3")
    paths = (r.json or {}).get("paths", {})
    want = ["api/v1", "apis/apps/v1", "apis/resource.k8s.io/v1",
            "apis/resource.nvidia.com/v1beta1", "apis/apiextensions.k8s.io/v1"]
    o("openapi.v3.index", {"http": r.status, "paths": {
        p: bool(re.match(r"^/openapi/v3/%s\?hash=[0-9A-F]+$" % re.escape(p),
                         paths.get(p, {}).get("serverRelativeURL", ""))) for p in want}})
    url = paths.get("apis/resource.nvidia.com/v1beta1", {}).get(
        "serverRelativeURL", "/openapi/v3/apis/resource.nvidia.com/v1beta1")
    r = s.req("GET", url)
    doc = r.json or {}
    schemas = doc.get("components", {}).get("schemas", {})
    name = "com.nvidia.resource.v1beta1.ComputeDomain"
    o("openapi.v3.crd.doc", {"http": r.status, "openapi": str(doc.get("openapi", ""))[:3],
                             "schema": name in schemas,
                             "cache-control": r.headers.get("cache-control")})
    sc = schemas.get(name, {})

    def keys(x):
        return sorted((x or {}).get("properties", {}))
    o("openapi.v3.crd.schema", {
        "type": sc.get("type"), "properties": keys(sc),
        "gvk": sc.get("x-kubernetes-group-version-kind"),
        "spec": keys(sc.get("properties", {}).get("spec")),
        "spec.required": sc.get("properties", {}).get("spec", {}).get("required")})
    ops = {}
    for p, item in doc.get("paths", {}).items():
        if "computedomains" in p:
            ops[p] = sorted(k for k in item if k in ("get", "put", "post", "delete", "patch"))
    o("openapi.v3.crd.paths", ops)
    r = s.req("GET", "/openapi/v3/apis/nope.example.com/v1")
    o("openapi.v3.unknown", r.status)
    rc, out, err = s.kubectl("explain", "computedomains.spec.channel")
    o("kubectl.explain", {"rc": rc, "mentions-field": "resourceClaimTemplate" in out})


def g_crud(s, o):
    r = s.req("POST", CM, cm("crud", labels={"app": "diff"}))
    o("crud.create", answer(r))
    o("crud.create-exists", status(s.req("POST", CM, cm("crud"))))
    r = s.req("GET", f"{CM}/crud")
    o("crud.get", answer(r))
    got = r.json
    o("crud.get-missing", status(s.req("GET", f"{CM}/missing")))
    upd = json.loads(json.dumps(got))
    upd["data"]["b"] = "2"
    r = s.req("PUT", f"{CM}/crud", upd)
    o("crud.update", {"http": r.status, "data": (r.json or {}).get("data"),
                      "rv-changed": md(r, "resourceVersion") != got["metadata"]["resourceVersion"]})
    upd["data"]["c"] = "3"
    o("crud.update-stale-rv", status(s.req("PUT", f"{CM}/crud", upd)))
    del upd["metadata"]["resourceVersion"]
    r = s.req("PUT", f"{CM}/crud", upd)
    o("crud.update-without-rv", {"http": r.status, "data": (r.json or {}).get("data")})
    o("crud.update-name-mismatch", status(s.req("PUT", f"{CM}/other", cm("crud"))))
    o("crud.update-missing", status(s.req("PUT", f"{CM}/nothere", cm("nothere"))))
    o("crud.create-namespace-mismatch",
      status(s.req("POST", CM, cm("nsmis", namespace="default"))))
    o("crud.create-missing-namespace",
      status(s.req("POST", "/api/v1/namespaces/nvdra-diff-nope/configmaps", cm("x"))))
    o("crud.create-with-rv", status(s.req("POST", CM, cm("withrv", resourceVersion="5"))))
    r = s.req("POST", CM, {"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"generateName": "gen-"}, "data": {}})
    o("crud.generate-name", {"http": r.status, "name": norm(r.json)["metadata"]["name"]})
    r = s.req("POST", CM + "?dryRun=All", cm("dry"))
    o("crud.dry-run", {"http": r.status, "object": norm(r.json),
                       "stored": s.req("GET", f"{CM}/dry").status})
    o("crud.delete-precondition", status(s.req(
        "DELETE", f"{CM}/crud", {"apiVersion": "v1", "kind": "DeleteOptions",
                                 "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})))
    r = s.req("DELETE", f"{CM}/crud")
    o("crud.delete", answer(r))
    o("crud.delete-missing", status(s.req("DELETE", f"{CM}/crud")))
    for i in range(3):
        s.req("POST", CM, cm(f"coll{i}", labels={"coll": "yes"}))
    r = s.req("DELETE", CM + "?labelSelector=coll%3Dyes")
    o("crud.delete-collection", {"http": r.status, "kind": (r.json or {}).get("kind"),
                                 "left": names(s.req("GET", CM + "?labelSelector=coll%3Dyes"))})
    r = s.req("POST", CM, b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml\ndata:\n  a: '1'\n",
              ctype="application/yaml")
    o("crud.create-yaml-body", {"http": r.status, "data": (r.json or {}).get("data")})
    r = s.req("GET", f"{CM}/yaml", accept="application/yaml")
    o("crud.get-yaml", {"http": r.status, "content-type": r.headers.get("content-type"),
                        "yaml": r.body.startswith(b"apiVersion: v1\n")})


def g_patch(s, o):
    s.req("POST", CM, cm("patch", {"a": "1"}))
    r = s.req("PATCH", f"{CM}/patch", {"data": {"b": "2", "a": None}}, ctype=MERGE)
    o("patch.merge", {"http": r.status, "data": (r.json or {}).get("data")})
    r = s.req("PATCH", f"{CM}/patch", [{"op": "add", "path": "/data/c", "value": "3"}], ctype=JSONP)
    o("patch.json", {"http": r.status, "data": (r.json or {}).get("data")})
    o("patch.json-test-fails", status(s.req(
        "PATCH", f"{CM}/patch", [{"op": "test", "path": "/data/c", "value": "no"}], ctype=JSONP)))
    o("patch.json-missing-path", status(s.req(
        "PATCH", f"{CM}/patch", [{"op": "replace", "path": "/data/zz", "value": "x"}], ctype=JSONP)))
    o("patch.json-not-a-list", status(s.req(
        "PATCH", f"{CM}/patch", {"op": "add", "path": "/data/x", "value": "1"}, ctype=JSONP)))
    r = s.req("PATCH", f"{CM}/patch", {"data": {"d": "4"}}, ctype=SMP)
    o("patch.strategic", {"http": r.status, "data": (r.json or {}).get("data")})
    o("patch.unsupported-type", status(s.req("PATCH", f"{CM}/patch", "{}", ctype="text/plain")))
    o("patch.missing-object", status(s.req("PATCH", f"{CM}/nope", {"data": {}}, ctype=MERGE)))
    o("patch.merge-stale-rv", status(s.req(
        "PATCH", f"{CM}/patch", {"metadata": {"resourceVersion": "1"}, "data": {"e": "5"}},
        ctype=MERGE)))
    o("patch.no-change", {"rv-same": md(s.req("GET", f"{CM}/patch"), "resourceVersion") == md(
        s.req("PATCH", f"{CM}/patch", {"data": {"d": "4"}}, ctype=MERGE), "resourceVersion")})

    # Server-side apply.
    ssa = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"1\"\n  b: \"2\"\n"
    o("patch.apply-no-field-manager", status(s.req("PATCH", f"{CM}/ssa", ssa, ctype=APPLY)))
    r = s.req("PATCH", f"{CM}/ssa?fieldManager=one", ssa, ctype=APPLY)
    o("patch.apply-create", {"http": r.status, "data": (r.json or {}).get("data"),
                             "managedFields": norm(md(r, "managedFields"))})
    two = ssa.replace('a: "1"', 'a: "9"')
    r = s.req("PATCH", f"{CM}/ssa?fieldManager=two", two, ctype=APPLY)
    o("patch.apply-conflict", {**status(r), "names-owner": '"one"' in msg(r)})
    r = s.req("PATCH", f"{CM}/ssa?fieldManager=two&force=true", two, ctype=APPLY)
    o("patch.apply-force", {"http": r.status, "data": (r.json or {}).get("data"),
                            "managedFields": norm(md(r, "managedFields"))})
    r = s.req("PATCH", f"{CM}/ssa?fieldManager=one",
              "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"9\"\n",
              ctype=APPLY)
    o("patch.apply-drops-field", {"http": r.status, "data": (r.json or {}).get("data")})
    r = s.req("PATCH", f"{CM}/ssa?fieldManager=three&force=True",
              "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"3\"\n",
              ctype=APPLY)
    o("patch.apply-force=True", {"http": r.status, "data": (r.json or {}).get("data")})
    r = s.req("PATCH", f"{CM}/ssa?fieldManager=one", '{"apiVersion":"v1","kind":"ConfigMap",'
              '"metadata":{"name":"ssa"},"data":{"a":"3"}}', ctype=APPLY)
    o("patch.apply-json-body", {"http": r.status})
    r = s.req("PUT", f"{CM}/ssa?fieldManager=writer",
              {**s.req("GET", f"{CM}/ssa").json, "data": {"a": "3", "z": "26"}})
    o("patch.update-managed-fields", {"http": r.status,
                                      "managedFields": norm(md(r, "managedFields"))})
    r = s.req("PATCH", f"{CM}/ssa?fieldManager=one", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
              "  name: ssa\n  resourceVersion: \"1\"\ndata:\n  a: \"3\"\n", ctype=APPLY)
    o("patch.apply-stale-rv", status(r))

    # Strategic merge on lists keyed by name (a Deployment with no replicas runs nothing).
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "dep", "labels": {"app": "dep"}},
           "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "dep"}},
                    "template": {"metadata": {"labels": {"app": "dep"}}, "spec": {
                        "schedulerName": "nvdra-diff-none",
                        "containers": [{"name": "a", "image": "img:1",
                                        "env": [{"name": "X", "value": "1"}]},
                                       {"name": "b", "image": "img:1"}]}}}}
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/dep"
    r = s.req("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", dep)
    o("apps.deployment-create", answer(r))

    def containers(r):
        try:
            return [(c["name"], c.get("image"), [e["name"] for e in c.get("env", [])])
                    for c in r.json["spec"]["template"]["spec"]["containers"]]
        except (KeyError, TypeError):
            return status(r)
    r = s.req("PATCH", path, {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "env": [{"name": "Y", "value": "2"}]}]}}}}, ctype=SMP)
    o("patch.strategic-list-merge", containers(r))
    r = s.req("PATCH", path, {"spec": {"template": {"spec": {"containers": [
        {"name": "b", "$patch": "delete"}]}}}}, ctype=SMP)
    o("patch.strategic-patch-delete", containers(r))
    r = s.req("PATCH", path, {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "img:2"}]}}}}, ctype=MERGE)
    o("patch.merge-replaces-list", containers(r))
    o("apps.deployment-generation", md(r, "generation"))
    o("apps.deployment-observed", until(lambda: (get(s.req("GET", path).json, "status",
        "observedGeneration") == md(r, "generation")), 10))
    rs = f"/apis/apps/v1/namespaces/{NS}/replicasets"
    o("apps.replicasets", bool(until(lambda: len(s.req("GET", rs).json.get("items", [])), 10)))
    s.req("DELETE", path)
    o("gc.deployment-replicasets",
      until(lambda: len(s.req("GET", rs).json.get("items", [])) == 0, 30))


def g_watch(s, o):
    def rv_now():
        return s.req("GET", CM + "?limit=1").json["metadata"]["resourceVersion"]

    rv0 = rv_now()
    w = s.watch(f"{CM}?watch=true&resourceVersion={rv0}&labelSelector=w%3Dyes&timeoutSeconds=30")
    s.req("POST", CM, cm("w1", labels={"w": "yes"}))
    s.req("PATCH", f"{CM}/w1", {"data": {"b": "2"}}, ctype=MERGE)
    s.req("DELETE", f"{CM}/w1")
    evs = w.read(3, 10)
    w.close()
    o("watch.events", {"http": w.status, "events": events_summary(evs, lambda x: x.get("data"))})

    rv_c = md(s.req("POST", CM, cm("w2")), "resourceVersion")
    s.req("PATCH", f"{CM}/w2", {"data": {"b": "2"}}, ctype=MERGE)
    s.req("DELETE", f"{CM}/w2")
    w = s.watch(f"{CM}?watch=1&resourceVersion={rv_c}&fieldSelector=metadata.name%3Dw2"
                "&timeoutSeconds=30")
    o("watch.resume", events_summary(w.read(2, 5)))
    w.close()

    rv0 = rv_now()
    w = s.watch(f"{CM}?watch=true&resourceVersion={rv0}&labelSelector=sel%3Din&timeoutSeconds=30")
    s.req("POST", CM, cm("w3", labels={"sel": "in"}))
    s.req("PATCH", f"{CM}/w3", {"metadata": {"labels": {"sel": "out"}}}, ctype=MERGE)
    s.req("PATCH", f"{CM}/w3", {"data": {"x": "1"}}, ctype=MERGE)
    s.req("PATCH", f"{CM}/w3", {"metadata": {"labels": {"sel": "in"}}}, ctype=MERGE)
    evs = w.read(3, 5)
    w.close()
    o("watch.selector-transitions",
      events_summary(evs, lambda x: x.get("metadata", {}).get("labels", {}).get("sel")))
    o("watch.selector-transitions-rv",
      [e["object"]["metadata"].get("resourceVersion") is not None for e in evs])

    s.req("POST", CM, cm("w5", labels={"w5": "yes"}))
    w = s.watch(f"{CM}?watch=true&fieldSelector=metadata.name%3Dw5&timeoutSeconds=2")
    o("watch.no-rv-initial-state", events_summary(w.read(5, 6, until_end=True)))
    w.close()
    w = s.watch(f"{CM}?watch=true&resourceVersion=0&fieldSelector=metadata.name%3Dw5"
                "&timeoutSeconds=2")
    o("watch.rv0-initial-state", events_summary(w.read(5, 6, until_end=True)))
    w.close()

    # kube-apiserver serves old resourceVersions from etcd until its compaction (every 5 min)
    # removed them; on a younger cluster the check is skipped.
    w = s.watch(f"{CM}?watch=true&resourceVersion=1&timeoutSeconds=5")
    evs = events_summary(w.read(1, 6))
    skip = s.label == "real" and (not evs or evs[0][0] != "ERROR")
    o("watch.too-old", {"http": w.status, "events": evs, **({"_skip": "etcd not compacted yet"}
                                                           if skip else {})})
    w.close()
    r = s.req("GET", f"{CM}?resourceVersion=1&resourceVersionMatch=Exact")
    o("list.too-old-exact", {**status(r), **({"_skip": "etcd not compacted yet"}
                                             if s.label == "real" and r.status != 410 else {})})
    rv_future = str(int(rv_now()) + 1000000)
    w = s.watch(f"{CM}?watch=true&resourceVersion={rv_future}&timeoutSeconds=2")
    evs = w.read(1, 6)
    o("watch.future-rv", {"http": w.status, "events": events_summary(evs)})
    w.close()
    r = s.req("GET", f"{CM}?resourceVersion={rv_future}&resourceVersionMatch=NotOlderThan",
              timeout=10)
    o("list.future-rv", status(r) if r.status else {"http": 0})

    start = time.time()
    w = s.watch(f"{CM}?watch=true&resourceVersion={rv_now()}&allowWatchBookmarks=true"
                "&timeoutSeconds=5")
    evs = w.read(10, 12, until_end=True)
    took = time.time() - start
    bms = [e for e in evs if e.get("type") == "BOOKMARK"]
    o("watch.bookmark", {"types": sorted({e.get("type") for e in evs}),
                         "shape": norm(bms[0]["object"]) if bms else None, **no_bookmark(s, bms)})
    o("watch.timeout-ends-stream", {"ended": w.ended, "in-time": 4 <= took < 9})
    w.close()

    w = s.watch(f"{CM}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
                "&resourceVersionMatch=NotOlderThan&labelSelector=w5%3Dyes&timeoutSeconds=3")
    evs = w.read(2, 6)
    o("watch.list", events_summary(
        evs, lambda x: x.get("metadata", {}).get("annotations")))
    w.close()
    o("watch.list-without-bookmarks", status(s.req(
        "GET", f"{CM}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
               "&timeoutSeconds=1")))
    o("watch.list-without-rv-match", status(s.req(
        "GET", f"{CM}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&timeoutSeconds=1")))
    o("list.send-initial-events-without-watch", status(s.req(
        "GET", f"{CM}?sendInitialEvents=true&resourceVersionMatch=NotOlderThan")))

    w = s.watch(f"/api/v1/watch/namespaces/{NS}/configmaps/w5?timeoutSeconds=2")
    o("watch.legacy-path", {"http": w.status, "events": events_summary(w.read(3, 5))})
    w.close()

    # Query parameters as Go's strconv.ParseBool reads them.
    for v in ("1", "t", "T", "True", "TRUE", "yes"):
        r = s.req("GET", f"{CM}?watch={v}&fieldSelector=metadata.name%3Dw5&timeoutSeconds=1")
        kind = (r.json or {}).get("kind") if isinstance(r.json, dict) else None
        first = r.body.split(b"\n", 1)[0]
        try:
            typ = json.loads(first).get("type")
        except ValueError:
            typ = None
        o(f"query.watch={v}", {"http": r.status, "stream-event": typ, "kind": kind})
    for v in ("True", "1"):
        w = s.watch(f"{CM}?watch=true&resourceVersion={rv_now()}&allowWatchBookmarks={v}"
                    "&timeoutSeconds=4")
        evs = w.read(10, 8, until_end=True)
        o(f"query.allowWatchBookmarks={v}", {
            "types": sorted({e.get("type") for e in evs}),
            **no_bookmark(s, [e for e in evs if e.get("type") == "BOOKMARK"])})
        w.close()


def no_bookmark(s, bookmarks):
    """kube-apiserver sends a watch's periodic bookmark only when its watch cache dispatches one
    (about 2 s before the watch's timeout at best, not always): without one the check is skipped."""
    return {"_skip": "the real server sent no bookmark this time"} \
        if s.label == "real" and not bookmarks else {}


def g_select(s, o):
    for n, tier, flag in (("s1", "a", True), ("s2", "a", False), ("s3", "b", True),
                          ("s4", "c", False), ("s5", None, False)):
        labels = {"sel": "yes"}
        if tier:
            labels["tier"] = tier
        if flag:
            labels["flag"] = ""
        s.req("POST", CM, cm(n, labels=labels))

    def q(sel, field=None):
        p = f"{CM}?labelSelector=" + urllib.parse.quote(sel)
        if field:
            p += "&fieldSelector=" + urllib.parse.quote(field)
        return names(s.req("GET", p))
    o("select.label-equality", [q("sel=yes,tier=a"), q("sel==yes,tier!=a")])
    o("select.label-set", [q("sel=yes,tier in (a,b)"), q("sel=yes,tier notin (a,b)")])
    o("select.label-exists", [q("sel=yes,flag"), q("sel=yes,!flag"), q("sel=yes,!tier")])
    o("select.field-name", [q("sel=yes", "metadata.name=s1"), q("sel=yes", "metadata.name!=s1"),
                            q("sel=yes", f"metadata.namespace={NS},metadata.name=s3")])
    o("select.field-unsupported", status(s.req("GET", f"{CM}?fieldSelector=data.a%3D1")))
    o("select.label-bogus", status(s.req("GET", f"{CM}?labelSelector=" +
                                         urllib.parse.quote("tier in (a"))))
    o("select.label-bad-value", status(s.req("GET", f"{CM}?labelSelector=" +
                                             urllib.parse.quote("tier=a b!"))))
    o("select.field-bogus", status(s.req("GET", f"{CM}?fieldSelector=metadata.name")))
    o("select.across-namespaces", names(s.req(
        "GET", "/api/v1/configmaps?labelSelector=sel%3Dyes%2Ctier%3Da")))

    pages = []
    path = f"{CM}?labelSelector=sel%3Dyes&limit=2"
    for _ in range(5):
        r = s.req("GET", path)
        m = r.json.get("metadata", {})
        pages.append({"http": r.status, "names": names(r), "continue": bool(m.get("continue")),
                      "remaining": m.get("remainingItemCount")})
        if not m.get("continue"):
            break
        path = f"{CM}?labelSelector=sel%3Dyes&limit=2&continue=" + urllib.parse.quote(m["continue"])
    o("list.paginate", pages)
    o("list.bad-continue", status(s.req("GET", f"{CM}?limit=2&continue=bogus")))
    o("list.limit-not-a-number", status(s.req("GET", f"{CM}?limit=abc")))
    r = s.req("GET", f"{CM}?labelSelector=sel%3Dyes&limit=0")
    o("list.limit-0", names(r))
    r = s.req("GET", f"{CM}?labelSelector=sel%3Dyes&limit=2&resourceVersion=0")
    o("list.limit-rv0", {"http": r.status, "count": len(r.json.get("items", []))})
    o("list.rv-match-without-rv", status(s.req("GET", f"{CM}?resourceVersionMatch=Exact")))
    o("list.rv-match-bogus", status(s.req("GET", f"{CM}?resourceVersion=0&resourceVersionMatch=Bogus")))
    r = s.req("GET", f"{CM}?labelSelector=sel%3Dyes")
    o("list.shape", {"http": r.status, "kind": r.json.get("kind"),
                     "apiVersion": r.json.get("apiVersion"),
                     "metadata": sorted(r.json.get("metadata", {})),
                     "item-kind": (r.json.get("items") or [{}])[0].get("kind"),
                     "item-apiVersion": (r.json.get("items") or [{}])[0].get("apiVersion")})


def g_finalizers(s, o):
    s.req("POST", CM, cm("fin", finalizers=["nvdra.io/diff"]))
    r = s.req("DELETE", f"{CM}/fin")
    o("finalizer.delete", {"http": r.status, "kind": (r.json or {}).get("kind"),
                           "deletionTimestamp": bool(md(r, "deletionTimestamp")),
                           "grace": md(r, "deletionGracePeriodSeconds"),
                           "finalizers": md(r, "finalizers")})
    r = s.req("GET", f"{CM}/fin")
    o("finalizer.still-there", {"http": r.status, "deletionTimestamp": bool(md(r, "deletionTimestamp"))})
    x = r.json
    x["metadata"]["finalizers"] = ["nvdra.io/diff", "nvdra.io/new"]
    o("finalizer.add-while-deleting", status(s.req("PUT", f"{CM}/fin", x)))
    r = s.req("PATCH", f"{CM}/fin", {"data": {"b": "2"}}, ctype=MERGE)
    o("finalizer.update-while-deleting", {"http": r.status})
    r = s.req("DELETE", f"{CM}/fin")
    o("finalizer.delete-again", {"http": r.status, "kind": (r.json or {}).get("kind")})
    r = s.req("PATCH", f"{CM}/fin", {"metadata": {"finalizers": None}}, ctype=MERGE)
    o("finalizer.remove", {"http": r.status, "kind": (r.json or {}).get("kind")})
    o("finalizer.gone", until(lambda: s.req("GET", f"{CM}/fin").status == 404, 5))

    def owner(name):
        p = s.req("POST", CM, cm(name)).json
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": p["metadata"]["uid"]}
    gone = lambda n: s.req("GET", f"{CM}/{n}").status == 404  # noqa: E731
    ref = owner("gc-parent")
    s.req("POST", CM, cm("gc-child", ownerReferences=[ref]))
    s.req("DELETE", f"{CM}/gc-parent")
    o("gc.background", until(lambda: gone("gc-child"), 30))

    ref = owner("gc-fg")
    s.req("POST", CM, cm("gc-fg-child", ownerReferences=[{**ref, "blockOwnerDeletion": True}],
                         finalizers=["nvdra.io/hold"]))
    r = s.req("DELETE", f"{CM}/gc-fg?propagationPolicy=Foreground")
    o("gc.foreground-response", {"http": r.status, "finalizers": md(r, "finalizers"),
                                 "deletionTimestamp": bool(md(r, "deletionTimestamp"))})
    child_deleting = until(lambda: bool(md(s.req("GET", f"{CM}/gc-fg-child"), "deletionTimestamp")), 30)
    time.sleep(1)
    o("gc.foreground-waits", {"child-deleting": child_deleting,
                              "parent-present": s.req("GET", f"{CM}/gc-fg").status})
    s.req("PATCH", f"{CM}/gc-fg-child", {"metadata": {"finalizers": None}}, ctype=MERGE)
    o("gc.foreground-done", until(lambda: gone("gc-fg") and gone("gc-fg-child"), 30))

    ref = owner("gc-or")
    s.req("POST", CM, cm("gc-or-child", ownerReferences=[ref]))
    r = s.req("DELETE", f"{CM}/gc-or?propagationPolicy=Orphan")
    o("gc.orphan-response", {"http": r.status, "finalizers": md(r, "finalizers")})
    ok = until(lambda: gone("gc-or") and not md(s.req("GET", f"{CM}/gc-or-child"),
                                                   "ownerReferences"), 30)
    time.sleep(1)
    o("gc.orphan", {"parent-gone-refs-cleared": ok,
                    "child": s.req("GET", f"{CM}/gc-or-child").status})

    s.req("POST", CM, cm("gc-dangling", ownerReferences=[{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "never-was",
        "uid": "11111111-2222-3333-4444-555555555555"}]))
    o("gc.dangling-owner", until(lambda: gone("gc-dangling"), 20))
    o("gc.owner-ref-invalid", status(s.req("POST", CM, cm("gc-bad", ownerReferences=[{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "x"}]))))
    for n in ("del1", "del2", "del3"):
        s.req("POST", CM, cm(n))
    o("delete.propagation-bogus", status(s.req("DELETE", f"{CM}/del1?propagationPolicy=Bogus")))
    o("delete.grace-not-a-number", status(s.req("DELETE", f"{CM}/del2?gracePeriodSeconds=abc")))
    o("delete.dry-run", {"http": s.req("DELETE", f"{CM}/del3?dryRun=All").status,
                         "still-there": s.req("GET", f"{CM}/del3").status})


def g_table(s, o):
    s.req("POST", CM, cm("tab1", {"a": "1", "b": "2"}, labels={"tab": "yes"}))
    s.req("POST", CM, cm("tab2", {}, labels={"tab": "yes"}))
    o("table.configmaps", table(s.req("GET", f"{CM}?labelSelector=tab%3Dyes", accept=TABLE)))
    o("table.single", table(s.req("GET", f"{CM}/tab1", accept=TABLE)))
    o("table.namespaces", table(s.req("GET", f"/api/v1/namespaces?fieldSelector=metadata.name%3D{NS}",
                                      accept=TABLE)))
    r = s.req("GET", f"{CM}?labelSelector=tab%3Dyes&includeObject=None", accept=TABLE)
    o("table.include-none", table(r))
    r = s.req("GET", f"{CM}?labelSelector=tab%3Dyes&includeObject=Object", accept=TABLE)
    o("table.include-object", table(r))
    o("table.bad-version", status(s.req("GET", CM, accept="application/json;as=Table;v=v9;g=meta.k8s.io")))
    r = s.req("GET", f"{CM}?labelSelector=tab%3Dyes",
              accept="application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io")
    j = r.json or {}
    o("meta.partial-list", {"http": r.status, "kind": j.get("kind"), "apiVersion": j.get("apiVersion"),
                            "items": [(i.get("kind"), i.get("apiVersion"), sorted(i)) for i in
                                      j.get("items", [])]})
    r = s.req("GET", CM, accept="application/vnd.kubernetes.protobuf")
    o("accept.protobuf", {"http": r.status, "content-type": r.headers.get("content-type")})
    o("accept.unsupported", status(s.req("GET", CM, accept="text/html")))
    s.req("POST", CD, {"apiVersion": "resource.nvidia.com/v1beta1", "kind": "ComputeDomain",
                       "metadata": {"name": "tab"},
                       "spec": {"channel": {"resourceClaimTemplate": {"name": "tab-ch"}}}})
    o("table.crd", table(s.req("GET", CD, accept=TABLE)))
    rc, out, err = s.kubectl("get", "configmaps", "-n", NS, "-l", "tab=yes")
    o("kubectl.get-table", (rc, mask_text(out + err)))
    rc, out, err = s.kubectl("get", "computedomains", "-n", NS)
    o("kubectl.get-crd", (rc, mask_text(out + err)))


def g_events(s, o):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev1"},
          "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": NS, "name": "tab1"},
          "reason": "DiffTest", "message": "hello", "type": "Normal", "count": 1,
          "source": {"component": "nvdra-diff"}, "firstTimestamp": now, "lastTimestamp": now}
    o("events.core-create", answer(s.req("POST", f"/api/v1/namespaces/{NS}/events", ev)))
    r = s.req("GET", f"/apis/events.k8s.io/v1/namespaces/{NS}/events/ev1")
    o("events.core-via-events-api", answer(r))
    now_us = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    ev2 = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "ev2"},
           "eventTime": now_us, "reportingController": "nvdra.io/diff", "reportingInstance": "diff-1",
           "action": "Testing", "reason": "DiffTest2", "note": "hi", "type": "Warning",
           "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": NS, "name": "tab2"}}
    o("events.v1-create", answer(s.req("POST", f"/apis/events.k8s.io/v1/namespaces/{NS}/events", ev2)))
    o("events.v1-via-core-api", answer(s.req("GET", f"/api/v1/namespaces/{NS}/events/ev2")))
    o("events.v1-invalid", status(s.req("POST", f"/apis/events.k8s.io/v1/namespaces/{NS}/events",
                                        {**ev2, "metadata": {"name": "ev3"}, "eventTime": None})))
    o("events.field-selector", [
        names(s.req("GET", f"/api/v1/namespaces/{NS}/events?fieldSelector=involvedObject.name%3Dtab1")),
        names(s.req("GET", f"/api/v1/namespaces/{NS}/events?fieldSelector=reason%3DDiffTest")),
        names(s.req("GET", f"/api/v1/namespaces/{NS}/events?fieldSelector=type%3DWarning"))])
    o("table.events", table(s.req("GET", f"/api/v1/namespaces/{NS}/events", accept=TABLE)))
    o("table.events-v1", table(s.req("GET", f"/apis/events.k8s.io/v1/namespaces/{NS}/events",
                                     accept=TABLE)))
    rc, out, err = s.kubectl("get", "events", "-n", NS)
    o("kubectl.get-events", (rc, mask_text(out + err)))


def g_auth(s, o):
    rc, out, err = s.kubectl("auth", "can-i", "create", "configmaps", "-n", NS)
    o("auth.can-i", (rc, out.strip()))
    r = s.req("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": NS, "verb": "delete", "resource": "pods"}}})
    o("auth.ssar", {"http": r.status, "kind": (r.json or {}).get("kind"),
                    "allowed": get(r.json, "status", "allowed")})
    r = s.req("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    groups = get(r.json, "status", "userInfo", "groups") or []
    o("auth.whoami", {"http": r.status, "kind": (r.json or {}).get("kind"),
                      "masters": "system:masters" in groups,
                      "authenticated": "system:authenticated" in groups})
    s.req("POST", f"/api/v1/namespaces/{NS}/serviceaccounts",
          {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}})
    tok_path = f"/api/v1/namespaces/{NS}/serviceaccounts/robot/token"
    r = s.req("POST", tok_path, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                 "spec": {"expirationSeconds": 3600}})
    j = r.json or {}
    o("auth.token-request", {"http": r.status, "kind": j.get("kind"), "apiVersion": j.get("apiVersion"),
                             "spec": sorted(get(j, "spec") or {}),
                             "expirationSeconds": get(j, "spec", "expirationSeconds"),
                             "status": sorted(get(j, "status") or {})})
    o("auth.token-audiences", get(j, "spec", "audiences"))
    token = get(j, "status", "token") or ""
    o("auth.token-is-jwt", is_jwt(token))
    r = s.req("POST", tok_path, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                 "spec": {"expirationSeconds": 60}})
    o("auth.token-too-short", status(r))
    o("auth.token-missing-sa", status(s.req(
        "POST", f"/api/v1/namespaces/{NS}/serviceaccounts/nobody/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})))
    r = s.req("GET", CM, token=token)
    o("auth.sa-forbidden", {**status(r), "names-user": f"system:serviceaccount:{NS}:robot" in msg(r)})
    s.req("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "cm-read"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
    s.req("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "cm-read"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-read"},
        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": NS}]})
    o("auth.sa-allowed-after-binding", until(lambda: s.req("GET", CM, token=token).status == 200, 10))
    o("auth.sa-still-forbidden-verb", status(s.req("DELETE", f"{CM}/tab1", token=token)))
    r = s.req("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": f"system:serviceaccount:{NS}:robot",
                 "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {"namespace": NS, "verb": "list", "resource": "configmaps"}}})
    o("auth.sar", {"http": r.status, "allowed": get(r.json, "status", "allowed")})
    rc, out, err = s.kubectl("auth", "can-i", "list", "configmaps", "-n", NS,
                             f"--as=system:serviceaccount:{NS}:robot")
    rc2, out2, err2 = s.kubectl("auth", "can-i", "delete", "configmaps", "-n", NS,
                                f"--as=system:serviceaccount:{NS}:robot")
    o("auth.can-i-as", [(rc, out.strip()), (rc2, out2.strip())])
    rc, out, err = s.kubectl("create", "token", "robot", "-n", NS, "--duration=20m")
    o("auth.kubectl-create-token", {"rc": rc, "jwt": is_jwt(out.strip())})
    o("auth.bad-token", status(s.req("GET", CM, token="not-a-token")))
    o("auth.anonymous", status(s.req("GET", f"/api/v1/namespaces/{NS}/configmaps", anonymous=True)))
    o("auth.anonymous-version", s.req("GET", "/version", anonymous=True).status)


def g_bad(s, o):
    o("bad.malformed-json", status(s.req("POST", CM, '{"apiVersion": "v1", "kind":')))
    o("bad.json-array", status(s.req("POST", CM, "[1, 2]")))
    o("bad.empty-body", status(s.req("POST", CM, b"")))
    unk = {**cm("unk1"), "bogus": 1}
    r = s.req("POST", CM + "?fieldValidation=Strict", unk)
    o("bad.unknown-field-strict", {**status(r), "names-field": 'unknown field "bogus"' in msg(r)})
    r = s.req("POST", CM, {**unk, "metadata": {"name": "unk2"}})
    o("bad.unknown-field-default", {"http": r.status, "warning": 'unknown field "bogus"' in r.warnings()})
    r = s.req("POST", CM + "?fieldValidation=Warn", {**unk, "metadata": {"name": "unk3"}})
    o("bad.unknown-field-warn", {"http": r.status, "warning": 'unknown field "bogus"' in r.warnings()})
    r = s.req("POST", CM + "?fieldValidation=Ignore", {**unk, "metadata": {"name": "unk4"}})
    o("bad.unknown-field-ignore", {"http": r.status, "warning": bool(r.warnings())})
    o("bad.field-validation-bogus", status(s.req("POST", CM + "?fieldValidation=Bogus", cm("unk5"))))
    r = s.req("POST", CM + "?fieldValidation=Strict",
              '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1"},'
              '"data":{"b":"2"}}')
    o("bad.duplicate-field-strict", {**status(r), "names-dup": "duplicate field" in msg(r)})
    r = s.req("POST", CM + "?fieldValidation=Strict",
              '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"unk6"},"data":{"a":1}}')
    o("bad.wrong-type", status(r))
    o("bad.invalid-name", status(s.req("POST", CM, cm("Bad_Name"))))
    o("bad.name-too-long", status(s.req("POST", CM, cm("n" * 254))))
    o("bad.invalid-data-key", status(s.req("POST", CM, cm("badkey", {"a b": "1"}))))
    o("bad.invalid-label", status(s.req("POST", CM, cm("badlabel", labels={"a/b/c": "x"}))))
    o("bad.configmap-too-large", status(s.req("POST", CM, cm("big", {"a": "x" * (1024 * 1024 + 10)}))))
    o("bad.body-too-large", status(s.req("POST", CM, cm("huge", {"a": "x" * (4 * 1024 * 1024)}))))
    o("bad.wrong-kind", status(s.req("POST", CM, {"apiVersion": "v1", "kind": "Secret",
                                                  "metadata": {"name": "wk"}})))
    o("bad.wrong-api-version", status(s.req("POST", CM, {**cm("wv"), "apiVersion": "v2"})))
    o("bad.missing-kind", status(s.req("POST", CM, {"metadata": {"name": "mk"}, "data": {}})))
    o("bad.content-type", status(s.req("POST", CM, json.dumps(cm("ct")), ctype="text/plain")))
    o("bad.dry-run-bogus", status(s.req("POST", CM + "?dryRun=Bogus", cm("dr"))))
    o("bad.field-manager-too-long", status(s.req("POST", CM + "?fieldManager=" + "m" * 200, cm("fm"))))
    o("bad.put-collection", status(s.req("PUT", CM, cm("pc"))))
    o("bad.post-item", status(s.req("POST", f"{CM}/tab1", cm("tab1"))))
    o("bad.unknown-resource", s.req("GET", f"/api/v1/namespaces/{NS}/nopes").status)
    o("bad.invalid-namespace-in-path", status(s.req("POST", "/api/v1/namespaces/Bad_NS/configmaps",
                                                    cm("x"))))
    o("bad.invalid-namespace", status(s.req("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Bad_NS"}})))


CD_OK = {"apiVersion": "resource.nvidia.com/v1beta1", "kind": "ComputeDomain",
         "metadata": {"name": "cd"}, "spec": {"channel": {"resourceClaimTemplate": {"name": "cd-ch"}}}}


def g_crd(s, o):
    r = s.req("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                     "computedomains.resource.nvidia.com")
    st = get(r.json, "status") or {}
    o("crd.status", {"http": r.status,
                     "conditions": sorted((c["type"], c["status"]) for c in st.get("conditions", [])),
                     "acceptedNames": st.get("acceptedNames"), "storedVersions": st.get("storedVersions")})
    r = s.req("POST", CD, CD_OK)
    o("crd.create", answer(r))
    o("crd.generation", md(r, "generation"))
    r = s.req("POST", CD, {**CD_OK, "metadata": {"name": "cd-st"}, "status": {"status": "Ready"}})
    o("crd.create-drops-status", {"http": r.status, "status": (r.json or {}).get("status")})
    o("crd.invalid-required", status(s.req("POST", CD, {**CD_OK, "metadata": {"name": "b1"},
                                                        "spec": {"numNodes": 1}})))
    o("crd.invalid-enum", status(s.req("POST", CD, {**CD_OK, "metadata": {"name": "b2"}, "spec": {
        "channel": {"resourceClaimTemplate": {"name": "x"}, "allocationMode": "Bogus"}}})))
    o("crd.invalid-minimum", status(s.req("POST", CD, {**CD_OK, "metadata": {"name": "b3"}, "spec": {
        "numNodes": -1, "channel": {"resourceClaimTemplate": {"name": "x"}}}})))
    o("crd.invalid-type", status(s.req("POST", CD, {**CD_OK, "metadata": {"name": "b4"}, "spec": {
        "numNodes": "two", "channel": {"resourceClaimTemplate": {"name": "x"}}}})))
    unk = {**CD_OK, "metadata": {"name": "cd-unk"},
           "spec": {**CD_OK["spec"], "bogus": 1}}
    r = s.req("POST", CD, unk)
    o("crd.unknown-field-pruned", {"http": r.status, "spec": sorted((r.json or {}).get("spec", {})),
                                   "warning": 'unknown field "spec.bogus"' in r.warnings()})
    r = s.req("POST", CD + "?fieldValidation=Strict", {**unk, "metadata": {"name": "cd-unk2"}})
    o("crd.unknown-field-strict", {**status(r), "names-field": 'unknown field "spec.bogus"' in msg(r)})
    r = s.req("PATCH", f"{CD}/cd", {"spec": {"numNodes": 2}}, ctype=MERGE)
    o("crd.immutable-rule", {**status(r), "message": "A computeDomain.spec is immutable" in msg(r)})
    o("crd.strategic-patch", status(s.req("PATCH", f"{CD}/cd", {"metadata": {"labels": {"a": "b"}}},
                                          ctype=SMP)))
    r = s.req("PATCH", f"{CD}/cd", {"metadata": {"labels": {"a": "b"}}}, ctype=MERGE)
    o("crd.metadata-patch-generation", {"http": r.status, "generation": md(r, "generation")})
    cur = s.req("GET", f"{CD}/cd").json
    cur["status"] = {"status": "Ready", "nodes": []}
    r = s.req("PUT", f"{CD}/cd/status", cur)
    o("crd.status-update", {"http": r.status, "status": (r.json or {}).get("status"),
                            "generation": md(r, "generation")})
    r = s.req("PATCH", f"{CD}/cd/status", {"status": {"status": "Bogus"}}, ctype=MERGE)
    o("crd.status-invalid", status(r))
    r = s.req("PATCH", f"{CD}/cd", {"status": {"status": "NotReady"}}, ctype=MERGE)
    o("crd.main-ignores-status", {"http": r.status, "status": (r.json or {}).get("status")})
    ssa = ("apiVersion: resource.nvidia.com/v1beta1\nkind: ComputeDomain\nmetadata:\n  name: cd-ssa\n"
           "spec:\n  numNodes: 1\n  channel:\n    resourceClaimTemplate:\n      name: x\n")
    r = s.req("PATCH", f"{CD}/cd-ssa?fieldManager=diff", ssa, ctype=APPLY)
    o("crd.apply", {"http": r.status, "spec": (r.json or {}).get("spec"),
                    "managedFields": norm(md(r, "managedFields"))})
    r = s.req("GET", "/apis/resource.nvidia.com/v1beta1/computedomains")
    mine = sorted(i["metadata"]["name"] for i in get(r.json, "items") or []
                  if i["metadata"].get("namespace") == NS)  # other tests' domains aside
    o("crd.list-all-namespaces", {"http": r.status, "kind": (r.json or {}).get("kind"),
                                  "names": mine})
    r = s.req("DELETE", f"{CD}/cd-st")
    o("crd.delete", {"http": r.status, "kind": (r.json or {}).get("kind"),
                     "status": (r.json or {}).get("status")})
    r = s.req("GET", f"/apis/resource.nvidia.com/v1beta1/namespaces/{NS}/computedomaincliques")
    o("crd.cliques-list", {"http": r.status, "kind": (r.json or {}).get("kind")})


def g_pods(s, o):
    pods = f"/api/v1/namespaces/{NS}/pods"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
           "spec": {"schedulerName": "nvdra-diff-none",
                    "containers": [{"name": "c", "image": "ubuntu:22.04"}]}}
    r = s.req("POST", pods, pod)
    j = r.json or {}
    o("pods.create-spec", {"http": r.status, "spec": norm(j.get("spec"))})
    o("pods.create-status", norm(j.get("status")))
    o("pods.invalid", status(s.req("POST", pods, {**pod, "metadata": {"name": "p0"},
                                                  "spec": {"containers": []}})))
    cur = s.req("GET", f"{pods}/p1").json
    cur["spec"]["containers"][0]["name"] = "renamed"
    o("pods.update-forbidden", status(s.req("PUT", f"{pods}/p1", cur)))
    r = s.req("PATCH", f"{pods}/p1/status", {"status": {"conditions": [
        {"type": "nvdra.io/Diff", "status": "True"}]}}, ctype=SMP)
    o("pods.status-patch", {"http": r.status, "conditions": [
        c["type"] for c in get(r.json, "status", "conditions") or []]})
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p1"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "nvdra-diff-nonode"}}
    r = s.req("POST", f"{pods}/p1/binding", binding)
    o("pods.binding", answer(r))
    o("pods.binding-twice", status(s.req("POST", f"{pods}/p1/binding", binding)))
    r = s.req("GET", f"{pods}/p1")
    o("pods.bound", {"nodeName": r.json["spec"].get("nodeName"), "conditions": sorted(
        (c["type"], c["status"]) for c in get(r.json, "status", "conditions") or [])})
    o("pods.field-selector", [
        names(s.req("GET", f"{pods}?fieldSelector=spec.nodeName%3Dnvdra-diff-nonode")),
        names(s.req("GET", f"{pods}?fieldSelector=status.phase%3DPending")),
        names(s.req("GET", f"{pods}?fieldSelector=spec.schedulerName%3Dnvdra-diff-none"))])
    o("table.pods", table(s.req("GET", pods, accept=TABLE)))
    r = s.req("DELETE", f"{pods}/p1")
    o("pods.delete-bound", {"http": r.status, "kind": (r.json or {}).get("kind"),
                            "deletionTimestamp": bool(md(r, "deletionTimestamp")),
                            "grace": md(r, "deletionGracePeriodSeconds")})
    r = s.req("DELETE", f"{pods}/p1?gracePeriodSeconds=0")
    o("pods.delete-force", {"http": r.status,
                            "gone": until(lambda: s.req("GET", f"{pods}/p1").status == 404, 10)})
    s.req("POST", pods, {**pod, "metadata": {"name": "p2"}})
    r = s.req("DELETE", f"{pods}/p2")
    o("pods.delete-unscheduled", {"http": r.status,
                                  "gone": s.req("GET", f"{pods}/p2").status == 404})


def g_namespace(s, o):
    ns2 = "nvdra-diff-term"
    s.req("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": ns2}})
    s.req("POST", f"/api/v1/namespaces/{ns2}/configmaps", cm("hold", finalizers=["nvdra.io/diff"]))
    r = s.req("DELETE", f"/api/v1/namespaces/{ns2}")
    o("ns.delete", {"http": r.status, "kind": (r.json or {}).get("kind"),
                    "phase": get(r.json, "status", "phase")})
    o("ns.create-in-terminating", status(s.req("POST", f"/api/v1/namespaces/{ns2}/configmaps", cm("x"))))

    def conds():
        c = get(s.req("GET", f"/api/v1/namespaces/{ns2}").json, "status", "conditions") or []
        return sorted(x["type"] for x in c if x["status"] == "True")
    o("ns.conditions", until(lambda: "NamespaceFinalizersRemaining" in conds() and conds(), 10) or conds())
    o("ns.content-deleting", bool(md(s.req("GET", f"/api/v1/namespaces/{ns2}/configmaps/hold"),
                                     "deletionTimestamp")))
    s.req("PATCH", f"/api/v1/namespaces/{ns2}/configmaps/hold", {"metadata": {"finalizers": None}},
          ctype=MERGE)
    o("ns.gone", until(lambda: s.req("GET", f"/api/v1/namespaces/{ns2}").status == 404, 60))


def g_kubectl(s, o):
    k = s.kubectl
    f = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kc\n  namespace: %s\ndata:\n  a: \"%s\"\n"
    outs = []
    for v in ("1", "1", "2"):
        rc, out, err = k("apply", "-f", "-", stdin=f % (NS, v))
        outs.append((rc, out.strip()))
    o("kubectl.apply", outs)
    rc, out, err = k("apply", "--server-side", "--field-manager=other", "-f", "-", stdin=f % (NS, "3"))
    o("kubectl.apply-ssa-conflict", {"rc": rc, "conflict": "conflict" in err.lower(),
                                     "owner": "kubectl-client-side-apply" in err})
    rc, out, err = k("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-",
                     stdin=f % (NS, "3"))
    o("kubectl.apply-ssa-force", (rc, out.strip()))
    outs = []
    for typ, p in (("merge", '{"data":{"b":"2"}}'), ("json", '[{"op":"add","path":"/data/c","value":"3"}]'),
                   ("strategic", '{"data":{"d":"4"}}'), ("merge", '{"data":{"b":"2"}}')):
        rc, out, err = k("patch", "-n", NS, "configmap", "kc", "--type", typ, "-p", p)
        outs.append((rc, out.strip()))
    o("kubectl.patch", outs)
    rc, out, err = k("get", "-n", NS, "configmap", "kc", "-o", "jsonpath={.data}")
    o("kubectl.get-jsonpath", (rc, out))
    rc, out, err = k("get", "-n", NS, "configmap", "kc", "-o", "yaml")
    o("kubectl.get-yaml", (rc, mask_text(re.sub(r"(resourceVersion|uid|creationTimestamp): .*",
                                                r"\1: <x>", out))))
    rc, out, err = k("get", "-n", NS, "configmap", "missing")
    o("kubectl.get-missing", (rc, err.strip()))
    cur = k("get", "-n", NS, "configmap", "kc", "-o", "json")[1]
    k("label", "-n", NS, "configmap", "kc", "x=y")
    rc, out, err = k("replace", "-f", "-", stdin=cur)
    o("kubectl.replace-conflict", {"rc": rc, "conflict": "Conflict" in err,
                                   "modified": "the object has been modified" in err})
    rc, out, err = k("get", "-n", NS, "configmaps", "-l", "a in (b")
    o("kubectl.bad-selector", {"rc": rc, "unable-to-parse": "unable to parse requirement" in err})
    rc, out, err = k("create", "configmap", "-n", NS, "kc-gen", "--from-literal=a=1")
    o("kubectl.create-configmap", (rc, out.strip()))
    rc, out, err = k("create", "deployment", "-n", NS, "kc-dep", "--image=img:1", "--replicas=0",
                     "--dry-run=server")
    o("kubectl.create-deployment", (rc, out.strip()))
    rc, out, err = k("get", "--raw", "/api")
    o("kubectl.get-raw", (rc, json.loads(out).get("kind") if rc == 0 else err))
    rc, out, err = k("delete", "-n", NS, "configmap", "kc", "kc-gen")
    o("kubectl.delete", (rc, out.strip()))
    rc, out, err = k("wait", "-n", NS, "--for=delete", "configmap/kc", "--timeout=10s")
    o("kubectl.wait-delete", rc)


GROUPS = [("setup", setup), ("discovery", g_discovery), ("openapi", g_openapi), ("crud", g_crud),
          ("patch", g_patch), ("watch", g_watch), ("select", g_select),
          ("finalizers", g_finalizers), ("table", g_table), ("events", g_events), ("auth", g_auth),
          ("bad", g_bad), ("crd", g_crd), ("pods", g_pods), ("namespace", g_namespace),
          ("kubectl", g_kubectl)]


# ---------------------------------------------------------------------------------------------

def run_group(s, fn):
    obs = {}

    def o(name, value):
        if name in obs:
            raise RuntimeError(f"check {name} recorded twice")
        obs[name] = json.loads(json.dumps(value, sort_keys=True, default=str))
    try:
        fn(s, o)
    except Exception as e:  # noqa: BLE001 - recorded as a difference, named after the group
        import traceback
        traceback.print_exc()
        obs[f"{fn.__name__}.exception"] = f"{type(e).__name__}: {e}"
    return obs


def read_known():
    known = {}
    with open(KNOWN_FILE) as f:
        for ln, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            if len(parts) < 2 or not parts[1].strip():
                raise SystemExit(f"{KNOWN_FILE}:{ln}: a listed difference needs a reason: {line}")
            known[parts[0]] = parts[1].strip()
    return known


def start_sim(bin_dir, work):
    """nvdra-sim serve with a data folder, started twice: the second start has no watch history
    before its start, as a kube-apiserver's watch cache has none before the apiserver started."""
    data = os.path.join(work, "sim-data")
    kc = os.path.join(work, "sim.kubeconfig")
    proc = None
    for attempt in range(2):
        log = open(os.path.join(work, f"sim-{attempt}.log"), "w")
        proc = subprocess.Popen([os.path.join(bin_dir, "nvdra-sim"), "serve", "--data-dir", data,
                                 "--kubeconfig-out", kc], stdout=subprocess.PIPE, stderr=log,
                                text=True)
        first = proc.stdout.readline().strip()
        if first != kc:
            raise SystemExit(f"nvdra-sim: first line is {first!r}, not the kubeconfig path")
        if attempt == 0:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    return proc, kc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_bin")
    ap.add_argument("k8s_bin", nargs="?")
    ap.add_argument("--real-kubeconfig")
    ap.add_argument("--only", help="run only the groups whose name starts with this")
    ap.add_argument("-v", action="store_true", help="print every observation")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    real_kc = a.real_kubeconfig or os.path.join(os.environ.get("K8S_STATE", "/tmp/nvdra-k8s-test"),
                                                "kubeconfig", "admin.kubeconfig")
    if shutil.which("kubectl") is None:
        print("kubectl not found")
        return 1
    if not os.path.exists(real_kc):
        print(f"no real test cluster: {real_kc} is missing (the fixture k8s.cluster_up starts it)")
        return 1
    known = read_known()
    work = tempfile.mkdtemp(prefix="nvdra-diff.")
    started = time.time()
    proc, sim_kc = start_sim(a.build_bin, work)
    servers = [Server("real", real_kc, work), Server("sim", sim_kc, work)]
    results = {"real": {}, "sim": {}}
    times = {"real": 0.0, "sim": 0.0}
    try:
        for name, fn in GROUPS:
            if a.only and name != "setup" and not name.startswith(a.only):
                continue
            for s in servers:
                t0 = time.time()
                results[s.label].update(run_group(s, fn))
                times[s.label] += time.time() - t0
                print(f"{name} on {s.label}: {time.time() - t0:.1f} s", flush=True)
    finally:
        for s in servers:
            for ns in (NS, "nvdra-diff-term"):
                s.req("DELETE", f"/api/v1/namespaces/{ns}")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    # The real cluster's namespaces go away once its namespace controller has emptied them.
    until(lambda: all(servers[0].req("GET", f"/api/v1/namespaces/{ns}").status == 404
                      for ns in (NS, "nvdra-diff-term")), 60)

    real, sim = results["real"], results["sim"]
    checks = sorted(set(real) | set(sim))
    same, listed, unlisted, fixed, skipped = [], [], [], [], []
    for c in checks:
        r, m = real.get(c, "<not recorded>"), sim.get(c, "<not recorded>")
        if isinstance(r, dict) and "_skip" in r:
            print(f"SKIP {c}: {r['_skip']}")
            skipped.append(c)
            continue
        if a.v:
            print(f"{c}\n  real: {json.dumps(r, sort_keys=True)}\n  sim:  {json.dumps(m, sort_keys=True)}")
        if r == m:
            (fixed if c in known else same).append(c)
        else:
            (listed if c in known else unlisted).append((c, r, m))
    for c, r, m in unlisted:
        print(f"DIFF {c} (not in k8s_diff_known.txt)")
        rj = json.dumps(r, indent=1, sort_keys=True).splitlines()
        mj = json.dumps(m, indent=1, sort_keys=True).splitlines()
        for line in difflib.unified_diff(rj, mj, "real", "nvdra-sim", n=2, lineterm=""):
            print("    " + line)
    for c in fixed:
        print(f"FIXED {c}: nvdra-sim now answers as the real server; fixed, remove from list")
    stale = sorted(set(known) - set(checks))
    if not a.only:
        for c in stale:
            print(f"STALE {c}: no such check; fixed, remove from list")
    else:
        stale = []
    for c, r, m in listed:
        if a.v:
            print(f"known {c}: {known[c]}")
    print(f"{len(checks)} checks: {len(same)} same, {len(skipped)} skipped, "
          f"{len(listed)} known differences, "
          f"{len(unlisted)} unlisted differences, {len(fixed) + len(stale)} listed but not found; "
          f"real {times['real']:.0f} s, nvdra-sim {times['sim']:.0f} s, "
          f"total {time.time() - started:.0f} s")
    return 0 if not unlisted and not fixed and not stale else 1


if __name__ == "__main__":
    sys.exit(main())
