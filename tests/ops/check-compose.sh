#!/bin/sh
# CI check of the container files (no Docker engine needed): docker-compose.yml parses and
# validates with Debian's docker-compose, scales without conflicts, mounts for the bus and
# each partner component exactly the CURVE key files qp-keygen writes for it, and the
# Kubernetes manifests pass the structure check.
set -eu
src=${QP_SOURCE_DIR:-$(dirname "$0")/../..}
cd "$src"
compose=${QP_COMPOSE_FILE:-docker-compose.yml}
command -v docker-compose >/dev/null || { echo "docker-compose missing (./qp deps)"; exit 1; }
# Without the person-hash key compose refuses to start (no silent development value).
if env -u QP_PERSON_PEPPER docker-compose -f "$compose" config -q 2>/dev/null; then
    echo "compose: starts without QP_PERSON_PEPPER"; exit 1
fi
export QP_PERSON_PEPPER=check-compose QP_SHARED_DATA=/nonexistent
docker-compose -f "$compose" config -q
# Scaling needs: no container_name and no fixed host port on a scaled service.
docker-compose -f "$compose" config | /usr/bin/python3 -c '
import os, sys, yaml
sys.path.insert(0, "tests/ops")
import curve_layout
doc = yaml.safe_load(sys.stdin)
bad = []
for name in ("intake", "eligibility", "funding", "evaluation"):
    s = doc["services"][name]
    if "container_name" in s: bad.append(name + ": container_name prevents --scale")
    if s.get("ports"): bad.append(name + ": a host port prevents --scale")
    if "healthcheck" not in s: bad.append(name + ": no healthcheck")
    if "QP_HTTP" not in s.get("environment", {}): bad.append(name + ": no QP_HTTP")
for name, s in doc["services"].items():
    if "restart" not in s: bad.append(name + ": no restart policy")

# CURVE: what each program finds in its QP_CURVE_DIR is what qp-keygen writes for it, each
# file at the same path below one host directory (the operator runs qp-keygen there).
layout = curve_layout.load()
files = {n: d.get("file") for n, d in (doc.get("secrets") or {}).items()}
roots = set()
for name, s in doc["services"].items():
    program = (s.get("command") or [""])[0]
    want = layout.expected(program)
    curve = (s.get("environment") or {}).get("QP_CURVE_DIR")
    if not want:
        if curve: bad.append("%s: QP_CURVE_DIR set on a program that needs no key" % name)
        continue
    if not curve:
        bad.append("%s: no QP_CURVE_DIR" % name)
        continue
    seen = {}
    for sec in s.get("secrets") or []:
        sec = sec if isinstance(sec, dict) else {"source": sec}
        target = sec.get("target") or sec["source"]
        target = target if target.startswith("/") else "/run/secrets/" + target
        rel = os.path.relpath(target, curve)
        if rel.startswith(".."):
            continue
        source = files.get(sec["source"])
        if not source:
            bad.append("%s: secret %s has no file" % (name, sec["source"]))
            continue
        if not source.endswith("/" + rel):
            bad.append("%s: %s comes from %s, not from <keys>/%s" % (name, rel, source, rel))
        roots.add(source[: -len(rel) - 1])
        seen[rel] = source
    if set(seen) != want:
        bad.append("%s (%s) sees %s in QP_CURVE_DIR, qp-keygen gives it %s"
                   % (name, program, sorted(seen), sorted(want)))
if len(roots) > 1:
    bad.append("CURVE files come from several directories: %s" % sorted(roots))
if bad:
    print("\n".join(bad)); sys.exit(1)
print("compose: %d services, scalable workers, CURVE layout of qp-keygen in %s"
      % (len(doc["services"]), ", ".join(roots)))
'
/usr/bin/python3 tests/ops/check-kubernetes.py deploy/kubernetes
