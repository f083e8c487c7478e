"""Minimal DNS message encoder/decoder and a stub client (standard library only).

Used by the lab clients so that every query's id, transport, rcode and answers are known exactly
(getaddrinfo would hide them). Only what the lab needs: A/AAAA/CNAME answers, UDP and TCP.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import struct

from tests.lab.protocols import recv_exact

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33,
          "HTTPS": 65}
QTYPE_NAMES = {v: k for k, v in QTYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\x00"


def build_query(qname: str, qtype: str = "A", qid: int | None = None, rd: bool = True) -> tuple[int, bytes]:
    if qid is None:
        qid = struct.unpack("!H", os.urandom(2))[0]
    flags = 0x0100 if rd else 0
    msg = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 0) + encode_name(qname) + struct.pack("!HH", QTYPES[qtype], 1)
    return qid, msg


def _read_name(msg: bytes, off: int) -> tuple[str, int]:
    labels = []
    jumped = False
    end = off
    for _ in range(128):
        ln = msg[off]
        if ln & 0xC0 == 0xC0:
            ptr = struct.unpack("!H", msg[off:off + 2])[0] & 0x3FFF
            if not jumped:
                end = off + 2
            jumped = True
            off = ptr
            continue
        if ln == 0:
            if not jumped:
                end = off + 1
            break
        labels.append(msg[off + 1:off + 1 + ln].decode("ascii", "replace"))
        off += 1 + ln
    return ".".join(labels), end


def parse_message(msg: bytes) -> dict:
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    questions = []
    for _ in range(qd):
        name, off = _read_name(msg, off)
        qtype, qclass = struct.unpack("!HH", msg[off:off + 4])
        off += 4
        questions.append({"name": name, "type": QTYPE_NAMES.get(qtype, str(qtype))})
    answers = []
    for _ in range(an):
        name, off = _read_name(msg, off)
        rtype, rclass, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        if rtype == 1:
            value = str(ipaddress.IPv4Address(rdata))
        elif rtype == 28:
            value = str(ipaddress.IPv6Address(rdata))
        elif rtype == 5:
            value, _ = _read_name(msg, off)
        else:
            value = rdata.hex()
        off += rdlen
        answers.append({"name": name, "type": QTYPE_NAMES.get(rtype, str(rtype)), "ttl": ttl, "data": value})
    return {"id": qid, "qr": bool(flags & 0x8000), "aa": bool(flags & 0x0400), "rcode": RCODES.get(flags & 0xF, str(flags & 0xF)),
            "questions": questions, "answers": answers}


def query(server: str, qname: str, qtype: str = "A", transport: str = "udp", timeout: float = 3.0,
          src: str | None = None, port: int = 53) -> dict:
    """Send one query and return a result dict (never raises for network errors)."""
    qid, msg = build_query(qname, qtype)
    res = {"op": "dns", "server": server, "server_port": port, "transport": transport, "qname": qname,
           "qtype": qtype, "id": qid}
    fam = socket.AF_INET
    if transport == "udp":
        s = socket.socket(fam, socket.SOCK_DGRAM)
    else:
        s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((src or "", 0))
        res["client"] = src or source_address_for(server)
        res["client_port"] = s.getsockname()[1]
        if transport == "udp":
            s.connect((server, port))
            s.send(msg)
            while True:
                data = s.recv(4096)
                if data[:2] == msg[:2]:
                    break
        else:
            s.connect((server, port))
            s.sendall(struct.pack("!H", len(msg)) + msg)
            hdr = recv_exact(s, 2)
            data = recv_exact(s, struct.unpack("!H", hdr)[0])
        parsed = parse_message(data)
        res["rcode"] = parsed["rcode"]
        res["answers"] = [a["data"] for a in parsed["answers"] if a["type"] in ("A", "AAAA")]
        res["answer_records"] = parsed["answers"]
        if parsed["rcode"] == "NXDOMAIN":
            res["outcome"] = "dns_nxdomain"
        elif parsed["rcode"] == "REFUSED":
            res["outcome"] = "dns_refused"
        elif parsed["rcode"] == "NOERROR" and res["answers"] and all(
                ipaddress.ip_address(a).is_unspecified for a in res["answers"]):
            res["outcome"] = "dns_sinkhole"
        elif parsed["rcode"] == "NOERROR":
            res["outcome"] = "ok"
        else:
            res["outcome"] = "dns_" + parsed["rcode"].lower()
    except socket.timeout:
        res["rcode"] = None
        res["answers"] = []
        res["outcome"] = "dns_timeout"
    except OSError as exc:
        res["rcode"] = None
        res["answers"] = []
        res["outcome"] = "dns_error"
        res["error"] = str(exc)
    finally:
        s.close()
    return res


def source_address_for(dst: str) -> str:
    """The source address the kernel would use to reach dst (routing lookup, nothing is sent)."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.connect((dst, 9))
        return u.getsockname()[0]
    except OSError:
        return "0.0.0.0"
    finally:
        u.close()
