#!/usr/bin/python3
"""The CURVE key mounts work with the real programs: for docker-compose.yml (each secret a
file at its target) and for the Kubernetes manifests (the Secret volume as the kubelet
writes it: a timestamped directory, a ..data link, a link per top-level entry), builds
the QP_CURVE_DIR each program sees from a fresh `qp-keygen` directory, then starts a real
qp-bus and the four partner components on loopback with those directories and waits until
each component is registered on the bus for its agency (the bus admits a key only over
CURVE and only for the agency its certificate names). Exit 1 with the logs otherwise."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import curve_layout  # noqa: E402

SRC = os.environ.get("QP_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
BUILD = os.environ.get("QP_BUILD_DIR") or os.path.join(SRC, "build")
PROGRAMS = ["qp-bus"] + sorted(curve_layout.PARTNER_AGENCY)


def compose_views():
    """program -> {path in QP_CURVE_DIR: path in the qp-keygen directory}."""
    out = subprocess.run(["docker-compose", "-f", os.path.join(SRC, "docker-compose.yml"),
                          "config"], check=True, capture_output=True, text=True,
                         env=dict(os.environ, QP_SHARED_DATA="/nonexistent",
                                  QP_PERSON_PEPPER="check")).stdout
    doc = yaml.safe_load(out)
    files = {n: d["file"] for n, d in doc["secrets"].items()}
    root = os.path.join(os.path.abspath(SRC), "secrets", "curve")
    views = {}
    for s in doc["services"].values():
        program = (s.get("command") or [""])[0]
        curve = (s.get("environment") or {}).get("QP_CURVE_DIR")
        if program not in PROGRAMS or not curve:
            continue
        view = {}
        for sec in s.get("secrets") or []:
            target = sec["target"] if sec["target"].startswith("/") else "/run/secrets/" + sec["target"]
            view[os.path.relpath(target, curve)] = os.path.relpath(files[sec["source"]], root)
        views[program] = view
    return views


def kubernetes_views(layout):
    views = {}
    for path in sorted(os.listdir(os.path.join(SRC, "deploy", "kubernetes"))):
        if not path.endswith(".yaml"):
            continue
        with open(os.path.join(SRC, "deploy", "kubernetes", path)) as f:
            for d in yaml.safe_load_all(f):
                if not d or d.get("kind") not in ("Deployment", "StatefulSet"):
                    continue
                pod = d["spec"]["template"]["spec"]
                volumes = {v["name"]: v for v in pod.get("volumes", [])}
                for c in pod["containers"]:
                    program = (c.get("command") or [""])[0]
                    env = {e["name"]: e.get("value") for e in c.get("env", [])}
                    curve = env.get("QP_CURVE_DIR")
                    if program not in PROGRAMS or not curve:
                        continue
                    mount = [m for m in c["volumeMounts"] if m["mountPath"] == curve][0]
                    secret = volumes[mount["name"]]["secret"]
                    # The Secret kubectl create --from-file makes: key = file name.
                    made = layout.kubectl_secret(program)
                    views[program] = {i["path"]: made.get(i["key"], "missing/" + i["key"])
                                      for i in secret["items"]}
    return views


def materialize(keys, view, where, kubelet):
    os.makedirs(where)
    base = os.path.join(where, "..2026_01_01_00_00_00.000000001") if kubelet else where
    for rel, source in view.items():
        dest = os.path.join(base, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.exists(os.path.join(keys, source)):
            shutil.copy(os.path.join(keys, source), dest)
    if kubelet:
        os.symlink(os.path.basename(base), os.path.join(where, "..data"))
        for top in {rel.split("/")[0] for rel in view}:
            os.symlink(os.path.join("..data", top), os.path.join(where, top))


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run(name, views, keys, tmp, kubelet):
    ports = free_ports(5)
    env = dict(os.environ, QP_LOG_LEVEL="info")
    env.pop("QP_HTTP", None)
    for var, port in zip(("WORK", "PARTNER", "PUBLISH", "SUBSCRIBE", "CAPTURE"), ports):
        env["QP_BUS_" + var] = "tcp://127.0.0.1:%d" % port
    procs, logs = [], {}
    try:
        for program in PROGRAMS:
            where = os.path.join(tmp, name, program)
            materialize(keys, views.get(program, {}), where, kubelet)
            path = os.path.join(BUILD, "services" if program == "qp-bus" else "partners", program)
            logs[program] = os.path.join(tmp, name, program + ".log")
            with open(logs[program], "w") as log:
                procs.append(subprocess.Popen([path], env=dict(env, QP_CURVE_DIR=where),
                                              stdout=log, stderr=log))
            if program == "qp-bus":
                time.sleep(0.3)  # lets it bind (components reconnect anyway)
        missing = set(curve_layout.PARTNER_AGENCY.values())
        for _ in range(100):
            out = subprocess.run([os.path.join(BUILD, "tools", "qp-ctl"), "bus-status",
                                  "--timeout", "1"], env=env, capture_output=True, text=True)
            try:
                services = json.loads(out.stdout).get("services", {})
            except ValueError:
                services = {}
            live = {n.split(".")[1] for n, s in services.items()
                    if n.startswith("partner.") and s.get("workers", 0) > 0}
            missing -= live
            if not missing or procs[0].poll() is not None:
                break
            time.sleep(0.1)
        if missing:
            print("%s: no component registered for %s" % (name, sorted(missing)))
            for program, log in logs.items():
                print("--- %s" % program)
                print(open(log).read()[-2000:])
            return False
        print("%s: the bus and the four components run over CURVE with the mounted keys" % name)
        return True
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    tmp = tempfile.mkdtemp(prefix="qp-curve-live-")
    try:
        keys = os.path.join(tmp, "keys")
        layout = curve_layout.Layout(curve_layout.generate(keys))
        ok = run("compose", compose_views(), keys, tmp, kubelet=False)
        ok &= run("kubernetes", kubernetes_views(layout), keys, tmp, kubelet=True)
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
