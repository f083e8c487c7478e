"""Flow table: orientation, TCP states, handshake outcomes, ICMP tie-back, DNS pairing, expiry."""

from __future__ import annotations

import numpy as np
import pytest
from scapy.all import DNS, DNSQR, DNSRR, ICMP, IP, TCP, UDP, Ether, Raw

import pcapaudit
from pcapaudit.capture.pcapfile import CaptureFile
from pcapaudit.decode import Decoder
from pcapaudit.engine import EngineConfig, FlowEngine
from tests.craft import alert, at, client_hello, server_hello, tcp_session, write

C, S = "192.168.50.10", "17.57.146.20"


def run(path, **cfg):
    flows, dns, weirds = [], [], []
    eng = FlowEngine(flows.append, dns.append, weirds.append, EngineConfig(**cfg))
    dec = Decoder("fast")
    for b in CaptureFile(str(path)).batches():
        eng.process(b, dec.decode(b))
    eng.flush()
    return flows, dns, weirds


def one(path):
    flows, _, _ = run(path)
    assert len(flows) == 1, flows
    return flows[0]


def test_normal_session_orientation_and_counts(tmp_path):
    pkts = tcp_session(C, S, 50000, 443, [client_hello("gdmf.apple.com")], [server_hello(0x0304)])
    f = one(write(tmp_path / "a.pcap", pkts))
    assert (f.src_ip, f.src_port, f.dst_ip, f.dst_port) == (C, 50000, S, 443)
    assert f.conn_state == "SF" and f.state == "closed"
    assert f.history == "ShADdFf"  # the server never sent a pure ACK
    assert f.pkts_c2s == 5 and f.pkts_s2c == 3
    assert f.sni == "gdmf.apple.com" and f.tls_server_version == "TLSv1.3"


def test_midstream_orientation_by_port(tmp_path):
    pkts = [Ether() / IP(src=S, dst=C) / TCP(sport=443, dport=50001, flags="PA") / Raw(b"x" * 10),
            Ether() / IP(src=C, dst=S) / TCP(sport=50001, dport=443, flags="A")]
    f = one(write(tmp_path / "m.pcap", pkts))
    assert (f.src_ip, f.dst_port, f.conn_state) == (C, 443, "OTH")


@pytest.mark.parametrize(
    "reply, state, friendly",
    [(None, "S0", "no_reply"), ("R", "REJ", "rejected"), ("SA", "S1", "established")],
)
def test_syn_states(tmp_path, reply, state, friendly):
    pkts = [at(Ether() / IP(src=C, dst=S) / TCP(sport=40000, dport=5223, flags="S", seq=9), 1.0),
            at(Ether() / IP(src=C, dst=S) / TCP(sport=40000, dport=5223, flags="S", seq=9), 2.0),
            at(Ether() / IP(src=C, dst=S) / TCP(sport=40000, dport=5223, flags="S", seq=9), 4.0)]
    if reply:
        pkts.append(at(Ether() / IP(src=S, dst=C) / TCP(sport=5223, dport=40000, flags=reply, ack=10), 4.1))
    f = one(write(tmp_path / "s.pcap", pkts))
    assert f.conn_state == state and f.state == friendly and f.syn_count == 3


def test_rst_after_client_hello(tmp_path):
    pkts = tcp_session(C, S, 50002, 443, [client_hello("mdmenrollment.apple.com")], [], close="rst_server")
    f = one(write(tmp_path / "r.pcap", pkts))
    assert f.tls_handshake == "reset_after_client_hello" and f.conn_state == "RSTR"


def test_client_alert_after_server_flight(tmp_path):
    pkts = tcp_session(C, S, 50003, 443, [client_hello("x.kandji.io"), alert(2, 48)], [server_hello(0x0303)],
                       close="rst_client")
    f = one(write(tmp_path / "c.pcap", pkts))
    assert f.tls_handshake == "client_alert"
    assert [(a.sender, a.description, a.after_server_flight) for a in f.alerts] == [("client", 48, True)]


def test_tls13_client_abort_after_server_reply(tmp_path):
    enc = b"\x17\x03\x03\x00\x13" + b"\x00" * 19  # an encrypted alert is ~19 bytes
    pkts = tcp_session(C, S, 50004, 443, [client_hello("x.kandji.io"), b"\x14\x03\x03\x00\x01\x01" + enc],
                       [server_hello(0x0304) + b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03\x01\x00" + b"\x00" * 256])
    f = one(write(tmp_path / "t.pcap", pkts))
    assert f.tls_handshake == "client_abort_after_server_flight"


def test_icmp_unreachable_is_tied_to_the_quoted_flow(tmp_path):
    udp = IP(src=C, dst="142.250.1.1") / UDP(sport=41000, dport=5228) / Raw(b"hello")
    icmp = IP(src="192.168.50.1", dst=C) / ICMP(type=3, code=3) / bytes(udp)[:28]
    late = IP(src="142.250.1.1", dst=C) / UDP(sport=5228, dport=41000) / Raw(b"late")
    f_pkts = [Ether() / udp, Ether() / icmp, Ether() / late,
              Ether() / IP(src=C, dst="142.250.1.1") / ICMP(type=3, code=3) / bytes(late)[:28]]
    flows, _, _ = run(write(tmp_path / "i.pcap", f_pkts))
    target = [f for f in flows if f.dst_port == 5228][0]
    # only the error about the client's own packet counts; the client refusing a late reply does not
    assert target.icmp == ((3, 3, "192.168.50.1"),)


def test_dns_query_response_pairing_and_naming(tmp_path):
    q = IP(src=C, dst="192.168.50.1") / UDP(sport=33333, dport=53) / DNS(id=7, rd=1, qd=DNSQR(qname="gdmf.apple.com"))
    r = IP(src="192.168.50.1", dst=C) / UDP(sport=53, dport=33333) / DNS(
        id=7, qr=1, qd=DNSQR(qname="gdmf.apple.com"), an=DNSRR(rrname="gdmf.apple.com", rdata="17.1.2.3", ttl=30))
    unanswered = IP(src=C, dst="192.168.50.1") / UDP(sport=33334, dport=53) / DNS(id=8, qd=DNSQR(qname="iprofiles.apple.com"))
    pkts = [at(Ether() / q, 1.0), at(Ether() / r, 1.01), at(Ether() / unanswered, 1.02)]
    pkts += [at(p, 2.0 + i * 0.01) for i, p in enumerate(tcp_session(C, "17.1.2.3", 50005, 443, [], [], t0=2.0))]
    flows, dns, _ = run(write(tmp_path / "d.pcap", pkts))
    tx = {t.query: t for t in dns}
    assert tx["gdmf.apple.com"].rcode == "NOERROR" and tx["gdmf.apple.com"].rtt == pytest.approx(0.01)
    assert tx["iprofiles.apple.com"].rcode is None
    tcpf = [f for f in flows if f.dst_port == 443][0]
    assert tcpf.dns_name == "gdmf.apple.com"


def test_answer_after_the_connection_does_not_name_it(tmp_path):
    pkts = [at(p, 1.0 + i * 0.01) for i, p in enumerate(tcp_session(C, "17.9.9.9", 50006, 443, [], []))]
    r = IP(src="192.168.50.1", dst=C) / UDP(sport=53, dport=33335) / DNS(
        id=9, qr=1, qd=DNSQR(qname="late.apple.com"), an=DNSRR(rrname="late.apple.com", rdata="17.9.9.9"))
    pkts.append(at(Ether() / r, 5.0))
    flows, _, _ = run(write(tmp_path / "l.pcap", pkts))
    assert [f.dns_name for f in flows if f.dst_port == 443] == [None]


def test_idle_expiry_bounds_the_table(tmp_path):
    pkts = []
    for i in range(300):
        pkts.append(at(Ether() / IP(src=C, dst=f"10.1.{i // 250}.{i % 250 + 1}") / UDP(sport=1000 + i, dport=9999), float(i)))
    flows, dns, weirds = [], [], []
    eng = FlowEngine(flows.append, dns.append, weirds.append, EngineConfig(idle_udp=5.0))
    dec = Decoder("fast")
    for b in CaptureFile(str(write(tmp_path / "e.pcap", pkts))).batches(chunk=2000):
        eng.process(b, dec.decode(b))
        assert eng.active_flows <= 8
    eng.flush()
    assert len(flows) == 300 and eng.active_flows == 0


def test_uids_are_deterministic(tmp_path):
    p = write(tmp_path / "u.pcap", tcp_session(C, S, 50007, 443, [client_hello("a.b")], []))
    a = pcapaudit.audit(str(p))
    b = pcapaudit.audit(str(p), engine="simple")
    assert list(a.flows.uid) == list(b.flows.uid) and a.flows.uid.iloc[0].startswith("C")


def test_vectorised_states_and_histories_match_the_scalar_reference():
    import itertools
    import random

    import numpy as np

    from pcapaudit.engine import NONE_FIRST, histories, history, tcp_state, tcp_states

    rows = []
    for c in itertools.product([0, 1], repeat=12):
        # first FIN / RST packet numbers: (FIN 2, RST 1) or (FIN 1, RST 3) per side, so a RST is before or after
        fc = [0, 0, 0, 0, 2, 1] if c[9] else [0, 0, 0, 0, 1, 3]
        fs = [0, 0, 0, 0, 2, 1] if c[10] else [0, 0, 0, 0, 1, 3]
        rows.append(([c[0], c[1], 0, 0, c[2], c[3]], [c[4], c[5], 0, 0, c[6], c[7]], fc, fs, c[11], c[8] * 3))
    nc, ns, fc, fs, pc, ps = (np.array([r[k] for r in rows]) for k in range(6))
    assert list(tcp_states(nc, ns, fc, fs, pc, ps)) == [tcp_state(*r)[0] for r in rows]
    rnd = random.Random(1)
    fc = np.array([[rnd.choice([NONE_FIRST, 1, 2, 3, 5]) for _ in range(6)] for _ in range(400)])
    fs = np.array([[rnd.choice([NONE_FIRST, 1, 2, 4, 5]) for _ in range(6)] for _ in range(400)])
    assert list(histories(fc, fs)) == [history(a.tolist(), b.tolist()) for a, b in zip(fc, fs)]


def test_plain_row_is_flow_row_of_the_same_flow():
    from pcapaudit.model import Classification, FlowBase, FlowRecord, Transport
    from pcapaudit.report.columns import FLOW_COLUMNS, flow_row, plain_row

    cls = Classification("apple", "apple.ntp", "time", "dns", "time.apple.com", "high", "allowed", "why")
    bases = [
        FlowBase("C1", 1.0, 2.5, Transport.UDP, "10.0.0.1", 5353, "10.0.0.53", 53, 4, 1, 1, 60, 120, 32, 92, None,
                 "reply", "", 0, None, None, None, None, ()),
        FlowBase("C2", 1.0, 1.1234567, Transport.UDP, "fd00::1", 123, "fd00::2", 123, 6, 3, 0, 1, 2, 3, 4, None,
                 "no_reply", "", 0, 30, 40, "ntp", "time.apple.com", ("time.apple.com", "time.g.aaplimg.com")),
        FlowBase("C3", 5.0, 9.0, Transport.TCP, "10.0.0.1", 50000, "17.1.1.1", 5223, 4, 2, 0, 120, 0, 0, 0, "S0",
                 "no_reply", "S", 2, 7, None, None, None, ()),
    ]  # fmt: skip
    for b in bases:
        row = plain_row(b, cls)
        assert len(row) == len(FLOW_COLUMNS)
        assert row == flow_row(FlowRecord(**b._asdict()), cls)


def test_partitioner_balances_clients_deterministically():
    """A busy client early on does not drag half the capture with it: later clients go to the other
    partitions; both directions of a flow, and a second run over the same packets, agree."""
    import numpy as np

    from pcapaudit.engine import Partitioner

    rng = np.random.default_rng(5)
    # client 10.0.0.1 sends 40 % of the packets; 200 others share the rest
    clients = np.where(rng.random(20_000) < 0.4, 1, rng.integers(2, 202, 20_000)).astype(np.uint64) + np.uint64(0x0A000000)
    server = np.full(len(clients), 0x11000001, dtype=np.uint64)
    cport = rng.integers(49152, 65535, len(clients))
    sport = np.full(len(clients), 443)
    zero = np.zeros(len(clients), dtype=np.uint64)
    runs = []
    for _ in range(2):
        p = Partitioner(2)
        parts = np.concatenate([p.assign(zero[i:i + 1000], clients[i:i + 1000], cport[i:i + 1000], zero[i:i + 1000],
                                         server[i:i + 1000], sport[i:i + 1000]) for i in range(0, len(clients), 1000)])
        back = p.assign(zero, server, sport, zero, clients, cport)  # the replies
        assert (back == parts).all()
        runs.append(parts)
        share = np.bincount(parts, minlength=2) / len(parts)
        assert abs(share[0] - 0.5) < 0.05, share  # a hash would give 0.4 + 0.6 * (its half) to one side
        assert p.lookup(0, int(clients[0]), int(cport[0]), 0, 0x11000001, 443) == parts[0]
    assert (runs[0] == runs[1]).all()
    assert len({int(x) for x in parts[clients == clients[clients == 0x0A000001][0]]}) == 1  # a client stays put


@pytest.mark.parametrize("others,chunk", [(12, 1 << 20), (40, 700)], ids=["one-batch", "later-batches"])
def test_long_flow_keeps_the_dns_name_it_started_with(tmp_path, others, chunk):
    """A flow is named by the answers seen before its first packet, however often other devices
    re-resolve its name, and however many other names for the same shared address arrive in later
    batches while it lasts (more than the map keeps for one address)."""
    from pcapaudit.audit import AuditOptions, Auditor
    from pcapaudit.capture.pcapfile import CaptureFile
    from tests import craft
    from tests.craft import DNS, DNSQR, DNSRR, IP, UDP, Ether, at

    t0 = 1_700_000_000.0
    addr = "17.253.1.1"

    def answer(client, name, ts, qid):
        return at(Ether() / IP(src="10.10.0.53", dst=client) / UDP(sport=53, dport=40000 + qid)
                  / DNS(id=qid, qr=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, type="A", rdata=addr, ttl=60)), ts)

    first = answer("10.0.0.9", "gdmf.apple.com", t0, 1)  # another device resolves it first
    session = craft.tcp_session("10.0.0.1", addr, 50000, 443, [craft.client_hello(None), b"\x17\x03\x03\x00\x01x"],
                                [b"\x16\x03\x03\x00\x01x"], t0=t0 + 1.0)  # fmt: skip
    churn = [answer(f"10.0.1.{i}", f"cdn{i}.example.net", t0 + 1.035 + i * 0.0001, 10 + i) for i in range(others)]
    churn.append(answer("10.0.2.1", "gdmf.apple.com", t0 + 1.05, 99))  # re-resolved by someone else
    path = craft.write(tmp_path / "shared.pcap", [first] + sorted(session + churn, key=lambda p: p._ts))
    a = Auditor(AuditOptions())
    for batch in CaptureFile(str(path)).batches(chunk=chunk):
        a.feed_batch(batch)
    flows = a.finish().flows
    row = flows[(flows.dst_ip == addr) & (flows.dst_port == 443)].iloc[0]
    assert row["dns_name"] == "gdmf.apple.com"


def test_icmp_error_finds_its_vlan_tagged_flow_in_a_big_table(tmp_path, monkeypatch):
    """The quoted packet has no VLAN tag; the error's own tag finds the flow even when the table is too
    big to try every VLAN (this left port-unreachable errors on tagged NTP flows unattached)."""
    from scapy.layers.inet import ICMP as ICMP4
    from scapy.layers.l2 import Dot1Q

    import pcapaudit.engine as eng
    from pcapaudit.audit import AuditOptions, Auditor

    monkeypatch.setattr(eng, "ICMP_VLAN_SCAN_MAX", 0)
    datagram = IP(src="10.30.1.42", dst="17.248.228.105") / UDP(sport=40123, dport=123) / Raw(b"\x23" + b"\x00" * 47)
    pkts = [
        at(Ether() / Dot1Q(vlan=30) / datagram, 1_700_000_000.0),
        at(Ether() / Dot1Q(vlan=30) / IP(src="17.248.228.105", dst="10.30.1.42") / ICMP4(type=3, code=3)
           / bytes(datagram)[:28], 1_700_000_000.01),
    ]  # fmt: skip
    path = write(tmp_path / "vlan-icmp.pcap", pkts)
    a = Auditor(AuditOptions())
    a.run_file(CaptureFile(str(path)))
    r = a.finish()
    ntp = r.flows[r.flows.dst_port == 123].iloc[0]
    assert ntp["vlan"] == 30 and ntp["icmp"] == "3/3 from 17.248.228.105"
    assert "icmp_unreachable" in {f.code for f, _ in r.finding_records}


def test_partitioner_falls_back_to_the_hash_past_its_client_budget():
    """Spoofed sources (a SYN flood) cannot grow the client table without bound; every process still
    agrees on where each packet goes."""
    import numpy as np

    from pcapaudit.engine import Partitioner, client_key

    rng = np.random.default_rng(3)
    src = rng.integers(1, 2**32, 5000).astype(np.uint64)
    zero = np.zeros(5000, dtype=np.uint64)
    sport = rng.integers(1024, 65535, 5000)
    dst = np.full(5000, 0x0A000001, dtype=np.uint64)
    dport = np.full(5000, 80)
    a, b = Partitioner(3, max_clients=100), Partitioner(3, max_clients=100)
    pa_, pb = a.assign(zero, src, sport, zero, dst, dport), b.assign(zero, src, sport, zero, dst, dport)
    assert len(np.unique(src)) == 5000  # every packet a new client
    assert (pa_ == pb).all() and len(a.owner) == 100
    hashed = (client_key(zero, src, sport, zero, dst, dport) % np.uint64(3)).astype(np.int64)
    assert (pa_[100:] == hashed[100:]).all()


def test_flows_finishing_together_are_emitted_a_chunk_at_a_time(tmp_path, monkeypatch):
    # TLS sessions whose handshake outcome reads the per-flow TCP event tables by row, between UDP flows
    pkts = []
    for i in range(7):
        pkts += tcp_session(C, S, 51000 + i, 443, [client_hello(f"h{i}.apple.com")],
                            [server_hello(0x0303)] if i % 2 else [], t0=float(i))  # fmt: skip
        pkts.append(at(Ether() / IP(src=C, dst=f"10.2.0.{i + 1}") / UDP(sport=2000 + i, dport=9999), i + 0.5))
    path = write(tmp_path / "many.pcap", pkts)
    whole, _, _ = run(path)
    sizes: list[int] = []
    emit = FlowEngine._emit

    def counting(self, slots):
        sizes.append(len(slots))
        return emit(self, slots)

    monkeypatch.setattr("pcapaudit.engine.EMIT_CHUNK", 3)
    monkeypatch.setattr(FlowEngine, "_emit", counting)
    chunked, _, _ = run(path)
    assert len(whole) == 14 and sizes and max(sizes) <= 3
    assert chunked == whole  # same records (handshake outcomes included), same order
    assert sum(f.tls_handshake is not None for f in whole) == 7


def test_one_key_flow_hash_is_the_vectorised_hash():
    """ICMP errors look their flow up with flow_hash_one; it must give the bits flow_hash gives."""
    import random

    import numpy as np

    from pcapaudit.engine import _PERTURB, _mix, _mix_int, flow_hash, flow_hash_one

    rng = random.Random(7)
    keys = [(4, 6, -1, 0, 0, 0, 0, 0, 0), (6, 58, (1 << 24) | (30 << 12) | 40, (1 << 64) - 1, (1 << 64) - 1, 65535,
             (1 << 64) - 1, (1 << 64) - 1, 65535)]  # fmt: skip
    for _ in range(2000):
        v6 = rng.random() < 0.5
        keys.append((6 if v6 else 4, rng.choice([1, 6, 17, 58, 132]), rng.choice([-1, 0, 7, 4095]),
                     rng.getrandbits(64) if v6 else 0, rng.getrandbits(64 if v6 else 32), rng.randrange(65536),
                     rng.getrandbits(64) if v6 else 0, rng.getrandbits(64 if v6 else 32), rng.randrange(65536)))  # fmt: skip
    cols = list(zip(*keys))
    dts = (np.int64, np.int64, np.int64, np.uint64, np.uint64, np.int64, np.uint64, np.uint64, np.int64)
    many = flow_hash(*(np.array(c, dtype=dt) for c, dt in zip(cols, dts)))
    assert [int(h) for h in many] == [flow_hash_one(*k) for k in keys]
    with np.errstate(over="ignore"):
        again = _mix(many ^ _PERTURB)  # the probe sequence after a collision
    assert [int(h) for h in again] == [_mix_int(int(h) ^ 0x9E3779B97F4A7C15) for h in many]


def _datagrams(n: int, t0: float = 0.0, step: float = 0.001):
    return [at(Ether() / IP(src=C, dst=f"10.2.{i // 250}.{i % 250 + 1}") / UDP(sport=2000 + i % 60000, dport=9999),
               t0 + i * step) for i in range(n)]  # fmt: skip


def _run_batches(path, chunk, **cfg):
    flows, dns, weirds = [], [], []
    eng = FlowEngine(flows.append, dns.append, weirds.append, EngineConfig(**cfg))
    dec = Decoder("fast")
    held = []
    for b in CaptureFile(str(path)).batches(chunk=chunk):
        eng.process(b, dec.decode(b))
        held.append(eng.active_flows)
    streamed = len(flows)
    eng.flush()
    return flows, weirds, eng, held, streamed


def test_flow_cap_ends_the_flows_idle_the_longest(tmp_path):
    """A flood of new flows inside their timeout: past max_flows the flows idle the longest end early,
    down to 90 % of the cap, so the table (and its arrays) stay bounded; every flow is still reported."""
    path = write(tmp_path / "flood.pcap", _datagrams(3000))
    flows, weirds, eng, held, streamed = _run_batches(path, 20_000, max_flows=1000)
    assert max(held) <= 1000 and eng.cap < 2500
    assert eng.ended_early == streamed > 1000  # nothing timed out: every early row is the cap's
    early = flows[:streamed]
    assert max(f.ts for f in early) < min(f.ts for f in flows[streamed:])  # the oldest went first
    assert [w.name for w in weirds].count("flow_table_full") >= 2 and "--max-flows" in weirds[0].detail
    free, _w, eng0, held0, streamed0 = _run_batches(path, 20_000, max_flows=None)
    assert max(held0) > 2500 and streamed0 == 0 and eng0.ended_early == 0
    assert sorted(flows, key=lambda f: f.uid) == sorted(free, key=lambda f: f.uid)  # single packets: same rows


def test_a_flow_the_cap_ended_that_goes_on_is_a_new_flow(tmp_path):
    """Like Suricata's emergency mode: an established connection cut while idle comes back midstream."""
    pkts = [at(p, t) for p, t in zip(tcp_session(C, S, 50000, 443, [], [], close="none")[:3], (0.0, 0.01, 0.02))]
    pkts += _datagrams(1500, t0=1.0)
    pkts.append(at(Ether() / IP(src=C, dst=S) / TCP(sport=50000, dport=443, flags="PA", seq=1, ack=1) / Raw(b"x" * 10), 5.0))
    flows, weirds, eng, _held, _n = _run_batches(write(tmp_path / "cut.pcap", pkts), 20_000, max_flows=1000)
    tcp = sorted((f for f in flows if f.dst_port == 443), key=lambda f: f.ts)
    assert len(tcp) == 2 and eng.ended_early > 0
    assert (tcp[0].conn_state, tcp[0].history, tcp[0].pkts_c2s) == ("S1", "ShA", 2)
    assert (tcp[1].ts, tcp[1].state, tcp[1].pkts_c2s) == (5.0, "midstream", 1)


@pytest.mark.parametrize("weak_hash", [False, True], ids=["hash", "clashing-hash"])
def test_batched_icmp_lookups_answer_as_find_slot(tmp_path, monkeypatch, weak_hash):
    """ICMP errors of a batch are tied to their flows all at once (_icmp_lookups); every error must land
    where the one-at-a-time lookup (_find_slot) puts it: tagged and untagged, either direction, IPv4 and
    IPv6, unknown flows, unreadable quotes, and (with a 12-bit hash) keys whose hashes clash."""
    from scapy.layers.inet import ICMP as ICMP4
    from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6
    from scapy.layers.l2 import Dot1Q

    import pcapaudit.engine as eng

    monkeypatch.setattr(eng, "ICMP_VLAN_SCAN_MAX", 0)  # batch lookups on this small table too
    if weak_hash:
        strong, strong_one = eng.flow_hash, eng.flow_hash_one
        monkeypatch.setattr(eng, "flow_hash", lambda *a: strong(*a) & np.uint64(0xFFF))
        monkeypatch.setattr(eng, "flow_hash_one", lambda *a: strong_one(*a) & 0xFFF)
    MAC = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # given, so scapy resolves no neighbour
    pkts, errors = [], []
    for i in range(240):
        tag = (None, 10, 20)[i % 3]
        six = i % 5 == 0
        c, s = (f"fd00::{i + 1:x}", f"2001:db8::{i % 7 + 1:x}") if six else (f"10.5.{i // 200}.{i % 200 + 1}", f"93.184.{i % 9}.7")
        L3 = IPv6 if six else IP
        d = L3(src=c, dst=s) / UDP(sport=30000 + i, dport=(53, 123, 443, 4500)[i % 4]) / Raw(b"q" * 12)
        back = L3(src=s, dst=c) / UDP(sport=d[UDP].dport, dport=30000 + i) / Raw(b"r" * 12)
        l2 = (lambda p, t=tag: MAC / Dot1Q(vlan=t) / p if t is not None else MAC / p)
        pkts.append(at(l2(d), 1.0 + i * 0.001))
        if i % 2:
            pkts.append(at(l2(back), 1.0005 + i * 0.001))
        quote = bytes(d)[: (48 if six else 28)] if i % 4 else bytes(back)[: (48 if six else 28)]
        err_tag = tag if i % 6 else (None, 10, 20, 30)[(i // 6) % 4]  # some errors travel on another VLAN
        icmp = (IPv6(src=s, dst=c) / ICMPv6DestUnreach(code=4) / quote) if six else (IP(src=s, dst=c) / ICMP4(type=3, code=3) / quote)
        errors.append(l2(icmp, err_tag))
        if i % 17 == 0:  # an error about a flow the capture does not hold, and an unreadable one
            ghost = L3(src=c, dst=s) / UDP(sport=1, dport=2) / Raw(b"g" * 8)
            errors.append(l2((IPv6(src=s, dst=c) / ICMPv6DestUnreach(code=4) / bytes(ghost)[:48]) if six
                             else (IP(src=s, dst=c) / ICMP4(type=3, code=3) / bytes(ghost)[:28])))  # fmt: skip
            errors.append(l2(IP(src="198.51.100.1", dst="10.5.0.1") / ICMP4(type=3, code=1) / b"\x45\x00"))
    pkts += [at(e, 2.0 + k * 0.001) for k, e in enumerate(errors)]
    path = write(tmp_path / "icmp-many.pcap", pkts)

    def run_with(batched: bool):
        if not batched:
            monkeypatch.setattr(eng.FlowEngine, "_icmp_lookups", lambda self, *a: {})
        flows, dns, weirds = [], [], []
        e = FlowEngine(flows.append, dns.append, weirds.append)
        calls = []
        find = e._find_slot
        e._find_slot = lambda q, vlan=-1: (calls.append(1), find(q, vlan))[1]
        dec = Decoder("fast")
        for b in CaptureFile(str(path)).batches(chunk=40_000):
            e.process(b, dec.decode(b))
        e.flush()
        tied = sorted((f.uid, f.icmp, f.ts_last) for f in flows)
        return tied, [(w.name, w.detail) for w in weirds], [(o[0], o[1], o[2]) for o in e.orphan_icmp], len(calls)

    got = run_with(True)
    want = run_with(False)  # every error through _find_slot
    assert got[:3] == want[:3]
    assert sum(1 for _u, icmp, _t in got[0] if icmp) > 100 and len(got[2]) >= 15 and got[1]
    assert got[3] < want[3] / 4 if not weak_hash else 0 < got[3] < want[3]
