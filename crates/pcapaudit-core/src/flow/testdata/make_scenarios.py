"""Writes scenarios.txt: the scenario captures of tests/scenarios, decoded by the Python decoder and run
through the Python flow engine batch by batch, with every field of the rows (deep parsing included), for
flow/tests.rs (enabled once the parsers are merged).

Run from the repository root: PYTHONPATH=. python crates/pcapaudit-core/src/flow/testdata/make_scenarios.py
Lines (tab-separated): "S name"; "B"; "P ts ipver proto src dst sport dport flags seq plen iplen vlan itype icode
ident payloadhex command pid ecommand iface pktno"; "E" (end of input); "F field..." flows, "D field..." DNS transactions, "W name uid" weirds
that belong to a flow, in emission order after the batch that emitted them.
"""

import sys
from pathlib import Path

import numpy as np

from pcapaudit.capture.pcapfile import CaptureFile
from pcapaudit.decode import FAST, Decoder
from pcapaudit.engine import EngineConfig, FlowEngine

ROOT = Path("tests/scenarios")


def s(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def flow_line(f):
    return "\t".join(["F"] + [s(x) for x in (
        f.uid, f.ts, f.ts_last, str(f.transport), f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.pkts_c2s,
        f.pkts_s2c, f.bytes_c2s, f.bytes_s2c, f.payload_c2s, f.payload_s2c, f.conn_state, f.state, f.history,
        f.syn_count, f.vlan, f.inner_vlan, f.sni, ",".join(f.alpn or ()), f.tls_version, f.tls_cipher,
        f.tls_server_version, f.tls_ech, f.tls_handshake, ",".join(c.sha256 for c in f.certs or ()),
        ",".join(f"{a.sender}:{a.level}:{a.description}:{s(a.after_server_flight)}" for a in f.alerts or ()),
        ",".join(f"{t}:{n}" for t, n in f.client_records_after_server or ()), f.quic_version, f.http_method,
        f.http_host, f.http_uri, f.http_status, f.connect_host, f.connect_port, f.app_protocol,
        f.ldap_simple_bind, f.ldap_starttls, f.smtp_starttls, ",".join(f"{t}:{c}:{r}" for t, c, r in f.icmp or ()),
        f.dns_name, ",".join(f.dns_names or ()), f.process, f.pid, f.eprocess, f.interface)])


def dns_line(d):
    return "\t".join(["D"] + [s(x) for x in (
        d.uid, d.ts, d.client_ip, d.server_ip, str(d.transport), d.trans_id, d.query, d.qtype, d.rcode,
        ",".join(f"{a.name}:{a.rtype}:{a.value}:{a.ttl}" for a in d.answers or ()), d.rtt, d.process)])


out = []
for pcap in sorted(ROOT.glob("*/input.pcap")):
    out.append(f"S\t{pcap.parent.name}")
    rows = []
    eng = FlowEngine(rows.append, rows.append, rows.append, EngineConfig())
    dec = Decoder("fast")

    def drain():
        for r in rows:
            name = type(r).__name__
            if name == "FlowRecord":
                out.append(flow_line(r))
            elif name == "DnsTransaction":
                out.append(dns_line(r))
            elif r.uid is not None:
                out.append(f"W\t{r.name}\t{r.uid}")
        rows.clear()

    for b in CaptureFile(str(pcap)).batches(chunk=4096):
        res = dec.decode(b)
        c = res.cols
        out.append("B")
        procs = res.processes(np.arange(len(b))) if res.processes else None
        ifs = res.interfaces(np.arange(len(b))) if res.interfaces else None
        for r in range(len(b)):
            if c.status[r] != FAST:
                continue
            off, n = int(c.poff[r]), int(c.pcap[r])
            payload = bytes(b.buf[off:off + n]) if off >= 0 else res.extra_payload.get(r, b"")
            src = (int(c.src_hi[r]) << 64) | int(c.src_lo[r])
            dst = (int(c.dst_hi[r]) << 64) | int(c.dst_lo[r])
            proc = procs[1][procs[0][r]] if procs is not None and procs[0][r] >= 0 else None
            iface = ifs[1][ifs[0][r]] if ifs is not None and ifs[0][r] >= 0 else None
            out.append("\t".join(str(x) for x in (
                "P", repr(float(b.ts[r])), int(c.ipver[r]), int(c.proto[r]), src, dst, int(c.sport[r]),
                int(c.dport[r]), int(c.flags[r]), int(c.seq[r]), int(c.plen[r]), int(c.iplen[r]), int(c.vlan[r]),
                int(c.icmp_type[r]), int(c.icmp_code[r]), int(c.ident[r]) & ((1 << 64) - 1), payload.hex() or "-",
                s(proc[0] if proc else None), s(proc[1] if proc else None), s(proc[2] if proc else None), s(iface),
                b.first_index + r)))
        eng.process(b, res)
        drain()
    eng.flush()
    out.append("E")
    drain()
Path(__file__).with_name("scenarios.txt").write_text("\n".join(out) + "\n")
print(f"{sum(1 for x in out if x.startswith('F'))} flows", file=sys.stderr)
