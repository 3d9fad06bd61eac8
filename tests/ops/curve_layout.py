"""The CURVE key layout, as qp-keygen writes it, and what each program must find in its
QP_CURVE_DIR. The file names are read from qp-keygen's output in a temp dir, never
spelled out here, so the compose file and the manifests are checked against the tool.

  the bus:               its key pair (secret file) + every agency's public certificate
  an agency's component: its agency's key pair (secret file) + the bus's public certificate
  anything else:         nothing
"""
import os
import subprocess
import tempfile

# The agency each default partner component serves (partners/*/main.c).
PARTNER_AGENCY = {"qp-partner-anct": "ANCT", "qp-partner-anru": "ANRU",
                  "qp-partner-bdt": "BANQUE_DES_TERRITOIRES",
                  "qp-partner-bpifrance": "BPIFRANCE"}


def keygen_path():
    if os.environ.get("QP_KEYGEN"):
        return os.environ["QP_KEYGEN"]
    build = os.environ.get("QP_BUILD_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
    return os.path.join(build, "tools", "qp-keygen")


def generate(directory, keygen=None):
    """Runs qp-keygen DIRECTORY; returns the relative paths of the files it wrote."""
    subprocess.run([keygen or keygen_path(), directory], check=True,
                   stdout=subprocess.DEVNULL)
    files = set()
    for root, _, names in os.walk(directory):
        for n in names:
            files.add(os.path.relpath(os.path.join(root, n), directory))
    return files


class Layout:
    def __init__(self, files):
        self.files = set(files)
        nested = [f for f in files if os.path.dirname(f)]
        top = [f for f in files if not os.path.dirname(f)]
        # Public certificates in the sub-directory, one per agency, named after it.
        self.agency_public = {os.path.basename(f).split(".")[0]: f for f in nested}
        self.agency_secret = {a: f for a in self.agency_public for f in top
                              if f.split(".")[0] == a}
        rest = [f for f in top if f.split(".")[0] not in self.agency_public]
        # The bus's pair: the secret file ends like an agency's secret file.
        suffix = {f[len(a):] for a, f in self.agency_secret.items()}
        self.bus_secret = [f for f in rest if any(f.endswith(s) for s in suffix)]
        self.bus_public = [f for f in rest if f not in self.bus_secret]
        if (len(self.bus_secret) != 1 or len(self.bus_public) != 1 or not self.agency_public
                or set(self.agency_secret) != set(self.agency_public)):
            raise ValueError("unexpected qp-keygen layout: %s" % sorted(files))
        self.bus_secret, self.bus_public = self.bus_secret[0], self.bus_public[0]

    def expected(self, program):
        """Relative paths program must see under QP_CURVE_DIR (empty: no keys)."""
        if program == "qp-bus":
            return {self.bus_secret} | set(self.agency_public.values())
        agency = PARTNER_AGENCY.get(program)
        if agency:
            return {self.agency_secret[agency], self.bus_public}
        return set()

    def kubectl_secret(self, program):
        """The keys of the Secret `kubectl create secret generic --from-file` makes from
        the files program needs (key = file name), each with its path in the layout."""
        return {os.path.basename(f): f for f in self.expected(program)}


def load(keygen=None):
    with tempfile.TemporaryDirectory() as d:
        return Layout(generate(d, keygen))
