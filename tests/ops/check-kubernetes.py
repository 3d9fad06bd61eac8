#!/usr/bin/python3
"""Structure check of deploy/kubernetes/*.yaml (no cluster needed): every document parses,
has a known kind, a name and labels; workloads have selectors matching their pod labels,
resource requests and limits, readiness and liveness probes (HTTP on the named port for
our programs); every HPA, PDB and Service points at something that exists; the workers
have an HPA and a PDB; every configMapRef/secretRef/secretName is defined, the Secrets
only in manual/ (never applied, so an apply cannot overwrite real keys); the bus and each
partner component mount in QP_CURVE_DIR exactly the files qp-keygen writes for them, from
a Secret `kubectl create secret generic --from-file` makes (key = file name), readable by
the pod's fsGroup."""
import glob, os, sys
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import curve_layout  # noqa: E402

KINDS = {"Namespace", "ConfigMap", "Secret", "Deployment", "StatefulSet", "Service",
         "HorizontalPodAutoscaler", "PodDisruptionBudget"}
WORKERS = {"qp-intake", "qp-eligibility", "qp-funding", "qp-evaluation"}
PARTNERS = {"qp-partner-anct", "qp-partner-anru", "qp-partner-bdt", "qp-partner-bpifrance"}


def main(folder):
    docs, errors = [], []
    for path in sorted(glob.glob(os.path.join(folder, "*.yaml"))):
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d:
                    docs.append((os.path.basename(path), d))

    def err(where, msg):
        errors.append("%s: %s" % (where, msg))

    for path, d in docs:
        if d.get("kind") == "Secret":
            err(path, "Secret %s: keep Secrets in manual/ (created with kubectl, not applied)"
                % d["metadata"]["name"])
    secrets = {}
    for path in sorted(glob.glob(os.path.join(folder, "manual", "*.yaml"))):
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d and d.get("kind") == "Secret":
                    secrets[d["metadata"]["name"]] = d
                    docs.append(("manual/" + os.path.basename(path), d))

    by_kind = {}
    for path, d in docs:
        kind, meta = d.get("kind"), d.get("metadata") or {}
        where = "%s %s/%s" % (path, kind, meta.get("name"))
        if kind not in KINDS:
            err(where, "unknown kind")
        if not meta.get("name") or not meta.get("labels"):
            err(where, "needs metadata.name and metadata.labels")
        if kind != "Namespace" and meta.get("namespace") != "qp":
            err(where, "not in namespace qp")
        by_kind.setdefault(kind, {})[meta.get("name")] = d

    def pods():
        for kind in ("Deployment", "StatefulSet"):
            for name, d in by_kind.get(kind, {}).items():
                yield kind, name, d

    layout = curve_layout.load()
    config = {}
    for d in by_kind.get("ConfigMap", {}).values():
        config.update(d.get("data") or {})
    for kind, name, d in pods():
        where = "%s/%s" % (kind, name)
        spec = d["spec"]
        sel = spec.get("selector", {}).get("matchLabels", {})
        labels = spec["template"]["metadata"].get("labels", {})
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            err(where, "selector %s does not match pod labels %s" % (sel, labels))
        pod = spec["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        for c in pod["containers"]:
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                err(where, "container %s needs resource requests and limits" % c["name"])
            ports = {p.get("name") for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                p = c.get(probe)
                if not p:
                    err(where, "container %s has no %s" % (c["name"], probe))
                elif "httpGet" in p and p["httpGet"]["port"] not in ports:
                    err(where, "%s on unknown port %s" % (probe, p["httpGet"]["port"]))
            if c.get("image", "").startswith("qp:"):
                for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                    if (c.get(probe) or {}).get("httpGet", {}).get("path") != path:
                        err(where, "%s must GET %s" % (probe, path))
            for ref in c.get("envFrom", []):
                for key, kind2 in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    known = secrets if kind2 == "Secret" else by_kind.get(kind2, {})
                    if key in ref and ref[key]["name"] not in known:
                        err(where, "%s %s is not defined" % (kind2, ref[key]["name"]))
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes and m["name"] not in claims:
                    err(where, "volume %s is not defined" % m["name"])
            # CURVE keys: the qp-keygen layout for this program, under QP_CURVE_DIR.
            program = (c.get("command") or [""])[0]
            want = layout.expected(program)
            env = dict(config) if any("configMapRef" in r for r in c.get("envFrom", [])) else {}
            env.update({e["name"]: e.get("value") for e in c.get("env", [])})
            curve = env.get("QP_CURVE_DIR")
            if not want:
                if curve:
                    err(where, "QP_CURVE_DIR set on %s, which needs no key" % program)
                continue
            mount = [m for m in c.get("volumeMounts", []) if m["mountPath"] == curve]
            vol = volumes.get(mount[0]["name"], {}) if mount else {}
            if not curve or "secret" not in vol:
                err(where, "%s needs QP_CURVE_DIR on a Secret volume" % program)
                continue
            items = vol["secret"].get("items") or []
            seen = {i["path"]: i["key"] for i in items}
            if set(seen) != want:
                err(where, "%s sees %s in QP_CURVE_DIR, qp-keygen gives it %s"
                    % (program, sorted(seen), sorted(want)))
            made = layout.kubectl_secret(program)
            for path, key in seen.items():
                if path in want and made.get(key) != path:
                    err(where, "%s from key %s: kubectl --from-file names that file %s"
                        % (path, key, os.path.basename(path)))
            defined = secrets.get(vol["secret"]["secretName"], {})
            keys = set((defined.get("stringData") or {}) | (defined.get("data") or {}))
            if defined and set(made) != keys:
                err(where, "Secret %s has keys %s, kubectl makes %s"
                    % (vol["secret"]["secretName"], sorted(keys), sorted(made)))
            mode = vol["secret"].get("defaultMode", 0o644)
            if not pod.get("securityContext", {}).get("fsGroup") or not mode & 0o040:
                err(where, "key files unreadable by the non-root user: set fsGroup and a "
                    "group-readable defaultMode")
        for v in volumes.values():
            if "secret" in v and v["secret"]["secretName"] not in secrets:
                err(where, "Secret %s is not defined" % v["secret"]["secretName"])
            if "configMap" in v and v["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
                err(where, "ConfigMap %s is not defined" % v["configMap"]["name"])

    workloads = {name: d for _, name, d in pods()}
    for name, d in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = d["spec"]["scaleTargetRef"]
        if ref["name"] not in by_kind.get(ref["kind"], {}):
            err("HPA/" + name, "targets missing %s/%s" % (ref["kind"], ref["name"]))
        if not 1 <= d["spec"]["minReplicas"] <= d["spec"]["maxReplicas"]:
            err("HPA/" + name, "needs 1 <= minReplicas <= maxReplicas")
    for kind in ("PodDisruptionBudget", "Service"):
        for name, d in by_kind.get(kind, {}).items():
            sel = d["spec"]["selector"]
            sel = sel.get("matchLabels", sel)
            if not any(all(w["spec"]["template"]["metadata"]["labels"].get(k) == v
                           for k, v in sel.items()) for w in workloads.values()):
                err("%s/%s" % (kind, name), "selector %s matches no workload" % sel)
    for name in WORKERS:
        for kind in ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
            if name not in by_kind.get(kind, {}):
                err(name, "worker needs a %s" % kind)
    for name in PARTNERS | {"qp-bus"}:
        if name not in by_kind.get("Deployment", {}):
            err(name, "needs a Deployment")
    if "qp-bus" not in by_kind.get("Service", {}):
        err("qp-bus", "needs a Service")
    if errors:
        print("\n".join(errors))
        return 1
    print("kubernetes: %d documents, %d workloads: structure ok" % (len(docs), len(workloads)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "deploy/kubernetes"))
