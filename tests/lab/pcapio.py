"""Tiny pcap/pcapng reader and pcap->pcapng writer (standard library only).

The recorder uses it to observe facts on the wire that a client socket cannot tell apart (a refused
connect is ECONNREFUSED both for a TCP RST and for an ICMP port-unreachable), to count SYN
retransmissions, and to convert one scenario capture to pcapng.
"""
from __future__ import annotations

import socket
import struct
import time


def read_packets(path: str):
    """Yield (timestamp, linktype, frame_bytes) from a pcap or pcapng file."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        le = magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        e = "<" if le else ">"
        linktype = struct.unpack(e + "I", data[20:24])[0]
        off = 24
        while off + 16 <= len(data):
            sec, frac, incl, _orig = struct.unpack(e + "IIII", data[off:off + 16])
            off += 16
            yield sec + frac / (1e9 if nano else 1e6), linktype, data[off:off + incl]
            off += incl
        return
    if magic == b"\x0a\x0d\x0d\x0a":
        off = 0
        e = "<"
        links = []
        tsres = []
        while off + 12 <= len(data):
            btype = struct.unpack(e + "I", data[off:off + 4])[0]
            if btype == 0x0A0D0D0A:
                e = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                links, tsres = [], []
            blen = struct.unpack(e + "I", data[off + 4:off + 8])[0]
            body = data[off + 8:off + blen - 4]
            if btype == 1:
                links.append(struct.unpack(e + "H", body[:2])[0])
                res = 1e-6
                p = 8
                while p + 4 <= len(body):
                    code, ln = struct.unpack(e + "HH", body[p:p + 4])
                    if code == 0:
                        break
                    if code == 9:
                        v = body[p + 4]
                        res = 2 ** -(v & 0x7F) if v & 0x80 else 10 ** -v
                    p += 4 + ln + (-ln % 4)
                tsres.append(res)
            elif btype == 6:
                iface, hi, lo, cap, _orig = struct.unpack(e + "IIIII", body[:20])
                yield ((hi << 32) | lo) * tsres[iface], links[iface], body[20:20 + cap]
            off += blen
        return
    raise ValueError(f"{path}: not a pcap/pcapng file")


def decode(frame: bytes, linktype: int = 1) -> dict | None:
    """Decode Ethernet/IPv4 + TCP/UDP/ICMP headers. Returns None for anything else."""
    if linktype == 1:
        if len(frame) < 14:
            return None
        etype = struct.unpack("!H", frame[12:14])[0]
        off = 14
        if etype == 0x8100:
            etype = struct.unpack("!H", frame[16:18])[0]
            off = 18
        if etype != 0x0800:
            return {"l3": "arp" if etype == 0x0806 else hex(etype)}
        ip = frame[off:]
    elif linktype in (101, 228):
        ip = frame
    else:
        return None
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    ihl = (ip[0] & 0xF) * 4
    proto = ip[9]
    pkt = {"l3": "ipv4", "src": socket.inet_ntoa(ip[12:16]), "dst": socket.inet_ntoa(ip[16:20]), "proto": proto,
           "ttl": ip[8]}
    l4 = ip[ihl:]
    if proto == 6 and len(l4) >= 20:
        sport, dport, seq, ack, offflags = struct.unpack("!HHIIH", l4[:14])
        hl = (offflags >> 12) * 4
        pkt.update(sport=sport, dport=dport, seq=seq, flags=offflags & 0x1FF, payload=l4[hl:])
    elif proto == 17 and len(l4) >= 8:
        sport, dport = struct.unpack("!HH", l4[:4])
        pkt.update(sport=sport, dport=dport, payload=l4[8:])
    elif proto == 1 and len(l4) >= 8:
        pkt.update(icmp_type=l4[0], icmp_code=l4[1])
        inner = l4[8:]
        if len(inner) >= 20:
            iihl = (inner[0] & 0xF) * 4
            pkt["inner"] = {"src": socket.inet_ntoa(inner[12:16]), "dst": socket.inet_ntoa(inner[16:20]),
                            "proto": inner[9]}
            if len(inner) >= iihl + 4:
                pkt["inner"]["sport"], pkt["inner"]["dport"] = struct.unpack("!HH", inner[iihl:iihl + 4])
    return pkt


def packets(path: str) -> list[dict]:
    out = []
    for ts, lt, fr in read_packets(path):
        p = decode(fr, lt)
        if p is not None:
            p["ts"] = ts
            out.append(p)
    return out


SYN, ACK, RST, FIN = 0x02, 0x10, 0x04, 0x01
ICMP_UNREACH_CODES = {0: "net-unreachable", 1: "host-unreachable", 2: "protocol-unreachable",
                      3: "port-unreachable", 9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"}


def flow_facts(pkts: list[dict], client: str, cport: int, server: str, sport: int, proto: str = "tcp") -> dict:
    """What the capture shows for one client->server 5-tuple."""
    pnum = 6 if proto == "tcp" else 17
    f = {"packets": 0, "client_payload_bytes": 0, "server_payload_bytes": 0}
    if proto == "tcp":
        f.update(syn=0, synack=0, rst_from_server=False, rst_from_client=False, fin_from_server=False)
    icmps = []
    for p in pkts:
        if p.get("l3") != "ipv4":
            continue
        if p["proto"] == pnum:
            fwd = (p["src"], p.get("sport"), p["dst"], p.get("dport")) == (client, cport, server, sport)
            rev = (p["src"], p.get("sport"), p["dst"], p.get("dport")) == (server, sport, client, cport)
            if not (fwd or rev):
                continue
            f["packets"] += 1
            f["client_payload_bytes" if fwd else "server_payload_bytes"] += len(p.get("payload", b""))
            if proto == "tcp":
                fl = p["flags"]
                if fwd and fl & SYN and not fl & ACK:
                    f["syn"] += 1
                if rev and fl & SYN and fl & ACK:
                    f["synack"] += 1
                if fl & RST:
                    f["rst_from_server" if rev else "rst_from_client"] = True
                if rev and fl & FIN:
                    f["fin_from_server"] = True
        elif p["proto"] == 1 and p.get("icmp_type") == 3:
            inner = p.get("inner") or {}
            if (inner.get("src"), inner.get("sport"), inner.get("dst"), inner.get("dport"), inner.get("proto")) == \
                    (client, cport, server, sport, pnum):
                icmps.append({"from": p["src"], "type": 3, "code": p["icmp_code"],
                              "name": ICMP_UNREACH_CODES.get(p["icmp_code"], str(p["icmp_code"]))})
    if icmps:
        f["icmp"] = icmps
    return f


def tcp_streams(pkts: list[dict], client: str, cport: int, server: str, sport: int) -> tuple[bytes, bytes]:
    """Reassembled (client->server, server->client) TCP payload of one connection (lab: no loss)."""
    segs = {True: {}, False: {}}
    for p in pkts:
        if p.get("proto") != 6:
            continue
        t = (p["src"], p["sport"], p["dst"], p["dport"])
        if t == (client, cport, server, sport):
            d = True
        elif t == (server, sport, client, cport):
            d = False
        else:
            continue
        if p["payload"]:
            segs[d].setdefault(p["seq"], p["payload"])
    out = []
    for d in (True, False):
        buf = b""
        nxt = None
        for seq in sorted(segs[d]):
            data = segs[d][seq]
            if nxt is not None and seq < nxt:
                data = data[nxt - seq:]
            buf += data
            nxt = seq + len(segs[d][seq]) if nxt is None or seq + len(segs[d][seq]) > nxt else nxt
        out.append(buf)
    return out[0], out[1]


TLS_ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
              42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
              45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
              49: "access_denied", 50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
              71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
              90: "user_canceled", 109: "missing_extension", 110: "unsupported_extension",
              112: "unrecognized_name", 116: "certificate_required", 120: "no_application_protocol"}


def tls_records(stream: bytes) -> list[tuple[int, int, bytes]]:
    out = []
    off = 0
    while off + 5 <= len(stream):
        ctype, ver, ln = stream[off], struct.unpack("!H", stream[off + 1:off + 3])[0], \
            struct.unpack("!H", stream[off + 3:off + 5])[0]
        if ctype not in (20, 21, 22, 23):
            break
        out.append((ctype, ver, stream[off + 5:off + 5 + ln]))
        off += 5 + ln
    return out


def tls_wire(pkts: list[dict], client: str, cport: int, server: str, sport: int) -> dict | None:
    """Cleartext TLS facts of one connection: versions, whether a Certificate went in clear, alerts."""
    c2s, s2c = tcp_streams(pkts, client, cport, server, sport)
    crec, srec = tls_records(c2s), tls_records(s2c)
    if not crec or crec[0][0] != 22:
        return None
    out = {"client_hello": bool(crec[0][2][:1] == b"\x01"), "server_hello_version": None,
           "certificate_in_clear": False, "alerts": [], "server_records": len(srec)}
    hs = b""
    for r in srec:                      # handshake records sent before ChangeCipherSpec are cleartext
        if r[0] == 20:
            break
        if r[0] == 22:
            hs += r[2]
    p = 0
    while p + 4 <= len(hs):
        htype = hs[p]
        hlen = int.from_bytes(hs[p + 1:p + 4], "big")
        body = hs[p + 4:p + 4 + hlen]
        if htype == 2 and len(body) >= 38:
            ver = struct.unpack("!H", body[:2])[0]
            q = 2 + 32
            q += 1 + body[q]
            q += 2 + 1
            if q + 2 <= len(body):
                end = q + 2 + struct.unpack("!H", body[q:q + 2])[0]
                q += 2
                while q + 4 <= end:
                    et, el = struct.unpack("!HH", body[q:q + 4])
                    if et == 43 and el == 2:
                        ver = struct.unpack("!H", body[q + 4:q + 6])[0]
                    q += 4 + el
            out["server_hello_version"] = {0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}.get(ver, hex(ver))
        elif htype == 11:
            out["certificate_in_clear"] = True
        p += 4 + hlen
    for who, recs in (("client", crec), ("server", srec)):
        seen_ccs = False
        for ctype, _v, body in recs:
            if ctype == 20:
                seen_ccs = True
            if ctype == 21 and len(body) == 2 and not (seen_ccs and out["server_hello_version"] == "TLSv1.2"):
                out["alerts"].append({"from": who, "level": "fatal" if body[0] == 2 else "warning",
                                      "description": TLS_ALERTS.get(body[1], str(body[1])), "code": body[1]})
    return out


def pcap_to_pcapng(src: str, dst: str, if_name: str, if_description: str = "", comment: str = "") -> None:
    """Rewrite a pcap as pcapng: SHB (with comment), one IDB (if_name, description, tsresol=6), EPBs."""
    def opt(code: int, value: bytes) -> bytes:
        return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)

    def block(btype: int, body: bytes) -> bytes:
        ln = 12 + len(body)
        return struct.pack("<II", btype, ln) + body + struct.pack("<I", ln)

    pk = list(read_packets(src))
    linktype = pk[0][1] if pk else 1
    shb_opts = b""
    if comment:
        shb_opts += opt(1, comment.encode())
    shb_opts += opt(3, b"Linux (pcapaudit lab)") + opt(4, b"pcapaudit tests/lab/pcapio.py") + opt(0, b"")
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_opts)
    idb_opts = opt(2, if_name.encode())
    if if_description:
        idb_opts += opt(3, if_description.encode())
    idb_opts += opt(9, b"\x06") + opt(0, b"")
    idb = block(1, struct.pack("<HHI", linktype, 0, 262144) + idb_opts)
    out = [shb, idb]
    for ts, _lt, fr in pk:
        t = int(round(ts * 1e6))
        body = struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(fr), len(fr)) + fr + b"\x00" * (-len(fr) % 4)
        out.append(block(6, body))
    with open(dst, "wb") as f:
        f.write(b"".join(out))


def merge_pcaps(sources: list[str], dst: str) -> None:
    """Merge Ethernet captures by timestamp into one pcap (microsecond, linktype 1), like mergecap."""
    allp = []
    for src in sources:
        for ts, lt, fr in read_packets(src):
            if lt != 1:
                raise ValueError(f"{src}: linktype {lt}, only Ethernet captures can be merged")
            allp.append((ts, fr))
    allp.sort(key=lambda x: x[0])
    with open(dst, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for ts, fr in allp:
            us = int(round(ts * 1e6))
            f.write(struct.pack("<IIII", us // 1000000, us % 1000000, len(fr), len(fr)) + fr)


def summary(path: str) -> dict:
    pk = packets(path)
    return {"packets": len(pk), "first": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(pk[0]["ts"])) if pk else None}
