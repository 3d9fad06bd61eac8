#!/bin/sh
# CI check of the container files (no Docker engine needed): docker-compose.yml parses and
# validates with Debian's docker-compose, scales without conflicts, and the Kubernetes
# manifests pass the structure check.
set -eu
src=${QP_SOURCE_DIR:-$(dirname "$0")/../..}
cd "$src"
command -v docker-compose >/dev/null || { echo "docker-compose missing (./qp deps)"; exit 1; }
QP_SHARED_DATA=/nonexistent docker-compose -f docker-compose.yml config -q
# Scaling needs: no container_name and no fixed host port on a scaled service.
docker-compose -f docker-compose.yml config | /usr/bin/python3 -c '
import sys, yaml
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
if bad:
    print("\n".join(bad)); sys.exit(1)
print("compose: %d services, scalable workers" % len(doc["services"]))
'
/usr/bin/python3 tests/ops/check-kubernetes.py deploy/kubernetes
