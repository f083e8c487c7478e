"""Writes golden.txt: random traffic run through the Python flow engine, for flow/tests.rs.

Run from the repository root: PYTHONPATH=. python crates/pcapaudit-core/src/flow/testdata/make_golden.py
Lines: "B <batch>" starts a batch; "P ts ipver proto src dst sport dport flags seq plen iplen vlan itype icode
payloadhex" a decoded packet (addresses as decimal u128); "F ..." an emitted flow, in emission order.
"""

import random
import sys
import tempfile
from pathlib import Path

from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, Raw, wrpcap

from pcapaudit.capture.pcapfile import CaptureFile
from pcapaudit.decode import FAST, Decoder
from pcapaudit.engine import EngineConfig, FlowEngine

rnd = random.Random(20261207)
hosts = [f"10.0.{i // 200}.{i % 200 + 1}" for i in range(40)] + ["17.57.146.20", "142.250.1.1", "192.168.1.9"]
ports = [443, 80, 5223, 8080, 22, 999, 40000, 50000, 51000, 123, 3478, 7777]


def eth(vlan):
    if vlan is None:
        return Ether()
    if isinstance(vlan, tuple):
        return Ether() / Dot1Q(vlan=vlan[0]) / Dot1Q(vlan=vlan[1])
    return Ether() / Dot1Q(vlan=vlan)


pkts = []
t = 1_700_000_000.0
for n in range(700):
    t += rnd.choice([0.001, 0.01, 0.2, 1.0, 3.0, 0.0]) if rnd.random() > 0.01 else 70.0
    c, s = rnd.sample(hosts, 2)
    cp, sp = rnd.randint(30000, 65000), rnd.choice(ports)
    vlan = rnd.choice([None] * 6 + [10, (20, 30)])
    e = lambda: eth(vlan)  # noqa: E731
    kind = rnd.choice(["full", "syn", "rej", "rst", "mid", "synack", "udp", "udp1", "icmp", "fin1", "simul"])
    cs, ss = rnd.randint(0, 2**32 - 1), rnd.randint(0, 2**32 - 1)
    seq = []
    C = lambda fl, sq, data=b"": e() / IP(src=c, dst=s) / TCP(sport=cp, dport=sp, flags=fl, seq=sq) / Raw(data)  # noqa: E731
    S = lambda fl, sq, data=b"": e() / IP(src=s, dst=c) / TCP(sport=sp, dport=cp, flags=fl, seq=sq) / Raw(data)  # noqa: E731
    d = bytes(rnd.randint(0, 255) for _ in range(rnd.randint(1, 40)))
    if kind == "full":
        seq = [C("S", cs), S("SA", ss), C("A", cs + 1), C("PA", cs + 1, d), S("PA", ss + 1, d[:5]), C("FA", cs + 1 + len(d)),
               S("FA", ss + 6), C("A", cs + 2 + len(d))]
    elif kind == "syn":
        seq = [C("S", cs)] * rnd.randint(1, 3)
    elif kind == "rej":
        seq = [C("S", cs), S("RA", 0)]
    elif kind == "rst":
        seq = [C("S", cs), S("SA", ss), C("A", cs + 1), C("R", cs + 1)]
    elif kind == "mid":
        seq = [S("PA", ss, d), C("A", cs)]
    elif kind == "synack":
        seq = [S("SA", ss), C("A", cs), S("F", ss + 1)]
    elif kind == "fin1":
        seq = [C("S", cs), S("SA", ss), C("FA", cs + 1)]
    elif kind == "simul":
        seq = [C("S", cs), S("S", ss), C("SA", cs), S("SA", ss)]
    elif kind == "udp":
        seq = [e() / IP(src=c, dst=s) / UDP(sport=cp, dport=sp) / Raw(d), e() / IP(src=s, dst=c) / UDP(sport=sp, dport=cp) / Raw(d[:3])]
    elif kind == "udp1":
        seq = [e() / IP(src=c, dst=s) / UDP(sport=cp, dport=sp) / Raw(d)]
    else:
        seq = [e() / IP(src=c, dst=s) / ICMP(type=8, id=rnd.randint(0, 9)), e() / IP(src=s, dst=c) / ICMP(type=0)]
    for i, p in enumerate(seq):
        p.time = t + i * rnd.choice([0.0005, 0.01, 0.5, 2.0])
        pkts.append(p)
pkts.sort(key=lambda p: float(p.time))

out = []
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "g.pcap"
    wrpcap(str(path), pkts)
    flows = []
    eng = FlowEngine(flows.append, lambda _d: None, lambda _w: None, EngineConfig(max_flows=40))
    dec = Decoder("fast")
    for bi, b in enumerate(CaptureFile(str(path)).batches(chunk=6000)):
        res = dec.decode(b)
        cols = res.cols
        out.append(f"B {bi}")
        for r in range(len(b)):
            assert cols.status[r] == FAST
            off, n = int(cols.poff[r]), int(cols.pcap[r])
            payload = bytes(b.buf[off:off + n]) if off >= 0 else res.extra_payload.get(r, b"")
            src = (int(cols.src_hi[r]) << 64) | int(cols.src_lo[r])
            dst = (int(cols.dst_hi[r]) << 64) | int(cols.dst_lo[r])
            out.append(" ".join(str(x) for x in (
                "P", repr(float(b.ts[r])), int(cols.ipver[r]), int(cols.proto[r]), src, dst, int(cols.sport[r]),
                int(cols.dport[r]), int(cols.flags[r]), int(cols.seq[r]), int(cols.plen[r]), int(cols.iplen[r]),
                int(cols.vlan[r]), int(cols.icmp_type[r]), int(cols.icmp_code[r]), payload.hex() or "-")))
        n0 = len(flows)
        eng.process(b, res)
        for f in flows[n0:]:
            out.append(" ".join(str(x) for x in (
                "F", f.uid, repr(f.ts), repr(f.ts_last), f.transport, f.src_ip, f.src_port, f.dst_ip, f.dst_port,
                f.pkts_c2s, f.pkts_s2c, f.bytes_c2s, f.bytes_s2c, f.payload_c2s, f.payload_s2c, f.conn_state or "-",
                f.state, f.history or "-", f.syn_count, f.vlan if f.vlan is not None else "-",
                f.inner_vlan if f.inner_vlan is not None else "-")))
    n0 = len(flows)
    eng.flush()
    out.append("E")
    for f in flows[n0:]:
        out.append(" ".join(str(x) for x in (
            "F", f.uid, repr(f.ts), repr(f.ts_last), f.transport, f.src_ip, f.src_port, f.dst_ip, f.dst_port,
            f.pkts_c2s, f.pkts_s2c, f.bytes_c2s, f.bytes_s2c, f.payload_c2s, f.payload_s2c, f.conn_state or "-",
            f.state, f.history or "-", f.syn_count, f.vlan if f.vlan is not None else "-",
            f.inner_vlan if f.inner_vlan is not None else "-")))
    print(f"{len(pkts)} packets, {len(flows)} flows, ended early {eng.ended_early}", file=sys.stderr)
Path(__file__).with_name("golden.txt").write_text("\n".join(out) + "\n")
