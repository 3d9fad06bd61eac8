#!/usr/bin/python3
"""The image builds from what `docker build` sends (no Docker engine needed): copies the
source tree minus .dockerignore (Docker's rules: patterns in order, the last match wins,
a match on a parent directory counts, `!` re-includes), configures it with the cmake
command of the Dockerfile's build stage, and checks that every program docker-compose.yml
and the Kubernetes manifests run, and qp-keygen (docs/operations.md), is a target of that
build. QP_IMAGE_BUILD=1 also builds them (minutes)."""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

SRC = os.path.abspath(os.environ.get("QP_SOURCE_DIR") or
                      os.path.join(os.path.dirname(__file__), "..", ".."))


def _regex(pattern):
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):  # "**/x" also matches "x"
                out = out[:-2] + "(.*/)?"
                i += 1
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.index("]", i)
            out += pattern[i:j + 1]
            i = j
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + "$")


def ignore_rules(path):
    rules = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            line = os.path.normpath(line.lstrip("!").strip("/"))
            rules.append((negate, _regex(line)))
    return rules


def excluded(rel, rules):
    parts = rel.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    out = False
    for negate, rx in rules:
        if any(rx.match(p) for p in prefixes):
            out = not negate
    return out


def context(dest):
    rules = ignore_rules(os.path.join(SRC, ".dockerignore"))
    n = 0
    for root, dirs, files in os.walk(SRC):
        rel_root = os.path.relpath(root, SRC)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        for name in files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if excluded(rel, rules):
                continue
            os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
            shutil.copy2(os.path.join(root, name), os.path.join(dest, rel))
            n += 1
    return n


def dockerfile_cmake():
    """The first `cmake -S . -B DIR ARGS` of the Dockerfile's RUN lines."""
    text = open(os.path.join(SRC, "Dockerfile")).read().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("RUN") and "cmake -S" in line:
            words = shlex.split(line[3:].split("&&")[0])
            return [w for w in words[words.index("cmake") + 1:]]
    raise SystemExit("no cmake configure line in the Dockerfile")


def programs():
    names = {"qp-keygen", "qp-ctl"}
    with open(os.path.join(SRC, "docker-compose.yml")) as f:
        for s in yaml.safe_load(f)["services"].values():
            cmd = s.get("command") or []
            if s.get("image", "").startswith("qp:") and cmd:
                names.add(cmd[0])
    for path in glob.glob(os.path.join(SRC, "deploy", "kubernetes", "*.yaml")):
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d and d.get("kind") in ("Deployment", "StatefulSet"):
                    for c in d["spec"]["template"]["spec"]["containers"]:
                        if c.get("image", "").startswith("qp:") and c.get("command"):
                            names.add(c["command"][0])
    return names


def main():
    tmp = tempfile.mkdtemp(prefix="qp-image-context-")
    try:
        ctx, build = os.path.join(tmp, "src"), os.path.join(tmp, "build")
        n = context(ctx)
        args = dockerfile_cmake()
        args[args.index("-B") + 1] = build
        r = subprocess.run(["cmake"] + args, cwd=ctx, capture_output=True, text=True)
        if r.returncode != 0:
            print("the build context (%d files) does not configure with %s:\n%s"
                  % (n, " ".join(args), r.stdout[-3000:] + r.stderr[-3000:]))
            return 1
        targets = subprocess.run(["cmake", "--build", build, "--target", "help"],
                                 capture_output=True, text=True).stdout
        known = {line.split()[-1] for line in targets.splitlines() if line.startswith("...")}
        missing = sorted(programs() - known)
        if missing:
            print("not built by the image: %s" % ", ".join(missing))
            return 1
        if os.environ.get("QP_IMAGE_BUILD") == "1":
            subprocess.run(["cmake", "--build", build, "-j2", "--target"] + sorted(programs()),
                           check=True)
        print("image context: %d files, configures, builds %s" % (n, ", ".join(sorted(programs()))))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
