#!/usr/bin/python3
"""A partner component in Python, written from proto/qp/v1/*.proto and
docs/partner-protocol.md alone: Initiative France, the network that distributes the
Prêt d'honneur Quartiers (scheme "phq", agency BPIFRANCE), added with no change to the
orchestrator.

Its rule, which the network would replace with its own committee: approve when the
project holder is accompanied by Initiative France and brings at least 10 % of the
financing need; decline otherwise, saying why.

Needs Debian's python3-zmq and python3-protobuf, and the Python modules generated from
the .proto files (protoc -I proto --python_out=DIR proto/qp/v1/*.proto), found in
QP_PY_PROTO_DIR. Environment: QP_BUS_PARTNER (the partner endpoint), QP_CURVE_DIR
(optional: BPIFRANCE.cert_secret and bus.cert made by qp-keygen), QP_COMPONENT_ID,
QP_STATUS_INTERVAL_MS. Stops on SIGTERM/SIGINT.
"""
import hashlib
import json
import os
import re
import signal
import sys
import time

import zmq

sys.path.insert(0, os.environ.get("QP_PY_PROTO_DIR", "."))
from qp.v1 import dossier_pb2, envelope_pb2, flow_pb2  # noqa: E402

AGENCY = "BPIFRANCE"
SCHEMES = ["phq"]
MIN_CONTRIBUTION_PCT = 10
NAME = "initiative-france-python"
VERSION = "1.0.0"


def log(event, msg):
    """JSON lines on stderr, like the C programs; never a key or a personal field."""
    sys.stderr.write(json.dumps({"program": NAME, "event": event, "msg": msg}) + "\n")
    sys.stderr.flush()


def message_id(type_name, causation, discriminator):
    """BLAKE2b-128 of (type, causation id, discriminator), each NUL-terminated, in hex:
    the same inputs give the same id (docs/partner-protocol.md)."""
    h = hashlib.blake2b(digest_size=16)
    for part in (type_name, causation or "", discriminator or ""):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def envelope(payload, causation="", correlation="", discriminator="", event_time_ms=0):
    type_name = "qp.v1." + payload.DESCRIPTOR.name
    env = envelope_pb2.Envelope(
        message_id=message_id(type_name, causation, discriminator),
        type=type_name,
        schema_version=1,
        correlation_id=correlation,
        causation_id=causation,
        producer=NAME,
        event_time_ms=event_time_ms,
        payload=payload.SerializeToString(),
    )
    return [type_name.encode(), env.SerializeToString()]


def curve_keys(path):
    """public-key and secret-key (Z85) from a zcert file written by qp-keygen."""
    text = open(path, encoding="utf-8").read()
    keys = dict(re.findall(r'(public-key|secret-key)\s*=\s*"([^"]+)"', text))
    return keys.get("public-key"), keys.get("secret-key")


def decide(rq):
    """The network's rule. A pure function of the request: the same request id always
    gets the same answer (idempotency)."""
    d = flow_pb2.PartnerDecision(
        request_id=rq.request_id, dossier_id=rq.dossier_id, scheme_id=rq.scheme_id,
        agency=rq.agency, component_id=COMPONENT)
    s = rq.summary
    if s.network != dossier_pb2.INITIATIVE_FRANCE:
        d.outcome = flow_pb2.PARTNER_DECLINED
        d.reason = "the project holder is not accompanied by Initiative France"
    elif not s.HasField("financing_need_cents") or not s.HasField("personal_contribution_cents"):
        d.outcome = flow_pb2.INFORMATION_NEEDED
        d.reason = "the financing plan is incomplete"
        d.information_needed.extend(["summary.financing_need_cents",
                                     "summary.personal_contribution_cents"])
    elif s.personal_contribution_cents * 100 < s.financing_need_cents * MIN_CONTRIBUTION_PCT:
        d.outcome = flow_pb2.PARTNER_DECLINED
        d.reason = "personal contribution below %d %% of the financing need" % MIN_CONTRIBUTION_PCT
    else:
        d.outcome = flow_pb2.APPROVED
        d.terms.amount_cents = rq.amount_asked_cents
        d.terms.duration_months = rq.terms.duration_months
        d.terms.deferral_months = rq.terms.deferral_months
        d.terms.rate_bp = 0
    return d


COMPONENT = os.environ.get("QP_COMPONENT_ID", "initiative-france-py")


def main():
    endpoint = os.environ.get("QP_BUS_PARTNER", "tcp://127.0.0.1:7102")
    interval_ms = int(os.environ.get("QP_STATUS_INTERVAL_MS", "1000"))
    service = "partner.%s.%s" % (AGENCY, COMPONENT)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 500)
    curve_dir = os.environ.get("QP_CURVE_DIR", "")
    if curve_dir:
        public, secret = curve_keys(os.path.join(curve_dir, AGENCY + ".cert_secret"))
        server, _ = curve_keys(os.path.join(curve_dir, "bus.cert"))
        sock.curve_publickey, sock.curve_secretkey = public.encode(), secret.encode()
        sock.curve_serverkey = server.encode()
        log("curve_on", "partner endpoint over CURVE with the key pair of " + AGENCY)
    sock.connect(endpoint)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    def send(payload, **meta):
        sock.send_multipart([b"QPB1", b"SEND", b"funding"] + envelope(payload, **meta))

    sock.send_multipart([b"QPB1", b"READY", service.encode()])
    hello = flow_pb2.PartnerHello(
        component_id=COMPONENT, agency=dossier_pb2.BPIFRANCE, component_name=NAME,
        version=VERSION, schemes=SCHEMES, capacity=16, status_interval_ms=interval_ms)
    now = int(time.time() * 1000)
    send(hello, discriminator="%s/hello/%d" % (COMPONENT, now), event_time_ms=now)
    log("partner_started", "%s %s answers for %s" % (NAME, VERSION, service))

    next_beat = 0.0
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while not stop:
        now_s = time.monotonic()
        if now_s >= next_beat:
            # Heartbeat to the bus, status to funding (their absence takes us out).
            sock.send_multipart([b"QPB1", b"READY", service.encode()])
            now = int(time.time() * 1000)
            status = flow_pb2.PartnerStatus(
                component_id=COMPONENT, agency=dossier_pb2.BPIFRANCE, alive=True,
                accepting=True, status_interval_ms=interval_ms)
            send(status, discriminator="%s/%d" % (COMPONENT, now), event_time_ms=now)
            next_beat = now_s + min(interval_ms, 1000) / 1000.0
        try:
            ready = dict(poller.poll(100))
        except zmq.ZMQError:
            break
        if sock not in ready:
            continue
        frames = sock.recv_multipart()
        if len(frames) < 2 or frames[0] != b"QPB1":
            continue
        if frames[1] == b"ERROR":
            log("bus_error", b" ".join(frames[2:]).decode(errors="replace"))
            continue
        if frames[1] != b"DELIVER" or len(frames) != 5:
            continue
        type_name, raw = frames[3].decode(errors="replace"), frames[4]
        env = envelope_pb2.Envelope()
        try:
            env.ParseFromString(raw)
        except Exception:  # a broken envelope: nothing to answer
            log("bad_envelope", "undecodable envelope from the bus")
            continue
        if type_name == "qp.v1.Error":
            err = envelope_pb2.Error()
            err.ParseFromString(env.payload)
            log("refused", "%s %s: %s" % (err.code, err.field, err.message))
            continue
        if type_name != "qp.v1.FundingRequest" or env.type != type_name:
            continue
        rq = flow_pb2.FundingRequest()
        rq.ParseFromString(env.payload)
        if not rq.request_id or not rq.dossier_id:
            continue
        d = decide(rq)
        send(d, causation=env.message_id, correlation=rq.dossier_id,
             discriminator=rq.request_id, event_time_ms=env.event_time_ms)
    sock.send_multipart([b"QPB1", b"BYE", service.encode()])
    sock.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
