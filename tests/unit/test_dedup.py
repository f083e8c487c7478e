"""Packets captured once per interface they crossed are counted once (pcapaudit/dedup.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from scapy.all import IP, TCP, UDP, Dot1Q, Ether, Raw

import pcapaudit
from pcapaudit.audit import AuditOptions, Auditor
from pcapaudit.capture.pcapfile import CaptureFile
from tests.craft import pcapng_file

BRIDGED = Path(__file__).resolve().parents[1] / "assets" / "bridged"
SAME = ["transport", "src_ip", "src_port", "dst_ip", "dst_port", "pkts_c2s", "pkts_s2c", "bytes_c2s",
        "bytes_s2c",
        "payload_c2s", "payload_s2c", "state", "conn_state", "history", "syn_count", "icmp", "app_protocol",
        "http_method", "http_status", "verdict"]  # fmt: skip


def _flows(result):
    return result.flows[SAME].sort_values(["transport", "src_port", "dst_port"]).reset_index(drop=True)


@pytest.mark.parametrize("engine", ["fast", "simple"])
@pytest.mark.parametrize("name", ["any.pcap", "any-sll.pcap"])
def test_tcpdump_any_on_a_bridge_gives_the_flows_of_one_port(engine, name):
    """Real traffic between two namespaces on a Linux bridge (record.sh), captured with `tcpdump -i any`,
    which stores every packet twice (received on one bridge port, sent on the other), and on one port
    alone. SLL2 names each packet's interface by its index; the older SLL only says received or sent."""
    both = pcapaudit.audit(BRIDGED / name, engine=engine)
    one = pcapaudit.audit(BRIDGED / "one.pcap", engine=engine)
    assert both.stats.packets > 2 * one.stats.decoded
    extra = dict(both.stats.extra)
    assert extra["interface_copies"] == one.stats.decoded  # each IP packet once more, on the other port
    assert "interface_copies" not in dict(one.stats.extra)
    assert _flows(both).equals(_flows(one))
    assert len(both.flows) == 5 and set(both.flows["state"]) == {"closed", "reply", "no_reply"}
    assert sorted(f.code for f, _ in both.finding_records) == sorted(f.code for f, _ in one.finding_records)
    if name == "any.pcap":
        assert all(re.fullmatch(r"if\d+", i) for i in both.flows["interface"])  # SLL2: the interface index
    else:
        assert both.flows["interface"].isna().all()  # SLL: received or sent is no interface name
    assert one.flows["interface"].isna().all()
    from pcapaudit.report.render import header_lines

    said = f"{extra['interface_copies']:,} packets seen again on another interface"
    assert any(said in x for x in header_lines(both))
    assert not any("seen again" in x for x in header_lines(one))


A, B = "10.1.0.5", "10.2.0.9"


def _syn(ttl=64, vlan=None, sport=50000):
    frame = Ether() / IP(src=A, dst=B, ttl=ttl, id=77) / TCP(sport=sport, dport=443, flags="S", seq=1000)
    return bytes(frame if vlan is None else Ether() / Dot1Q(vlan=vlan) / frame[IP])


def _ack(ack, sport=50000):
    return bytes(Ether() / IP(src=A, dst=B, id=78) / TCP(sport=sport, dport=443, flags="A", seq=1001,
                                                          ack=ack))


def _dgram(payload=b"q", ident=5):
    return bytes(Ether() / IP(src=A, dst=B, id=ident) / UDP(sport=4000, dport=9999) / Raw(payload))


CASES = [
    ("idb", 1, "eth0"), ("idb", 1, "br0"), ("idb", 1, "vnet0"),
    # a SYN, its copy one router hop later (TTL lowered) and on a trunk port that adds a VLAN tag
    ("epb", 0, 1.0, _syn()), ("epb", 1, 1.0001, _syn(ttl=63)), ("epb", 2, 1.0002, _syn(vlan=7)),
    # the same bytes again on eth0 10 ms later (a retransmission that kept its IP ID): on the wire twice;
    # its copy on br0 is a copy of it
    ("epb", 0, 1.010, _syn()), ("epb", 1, 1.0101, _syn(ttl=63)),
    # two ACKs with one sequence number and IP ID: the acknowledgement number tells them apart
    ("epb", 0, 1.02, _ack(1)), ("epb", 1, 1.0201, _ack(2)),
    # a datagram and the same bytes on br0 0.2 s later: too late to be a copy
    ("epb", 0, 2.0, _dgram()), ("epb", 1, 2.2, _dgram()),
    # a datagram and one with other bytes but the same header fields: the UDP checksum tells them apart
    ("epb", 0, 3.0, _dgram(b"a", 9)), ("epb", 1, 3.0001, _dgram(b"b", 9)),
]  # fmt: skip


def _audit_in_batches(path, chunk):
    a = Auditor(AuditOptions())
    src = CaptureFile(str(path))
    a.sources.append(src.name)
    for b in src.batches(chunk=chunk):
        a.feed_batch(b)
    a.flush_all()
    return a.assemble()


def test_which_packets_are_copies(tmp_path):
    path = pcapng_file(tmp_path / "three.pcapng", CASES)
    results = {"one batch": pcapaudit.audit(path), "a packet per batch": _audit_in_batches(path, 64)}
    for how, r in results.items():
        assert dict(r.stats.extra)["interface_copies"] == 3, how  # the copies of the two SYNs (2 + 1)
        f = r.flows.set_index(["transport", "src_port"])
        syn = f.loc[("tcp", 50000)]
        assert (syn["pkts_c2s"], syn["syn_count"], syn["interface"]) == (4, 2, "eth0"), how
        assert pd.isna(syn["vlan"]), how
        assert f.loc[("udp", 4000), "pkts_c2s"] == 4, how
    whole, one_by_one = (r.flows.drop(columns="uid") for r in results.values())
    assert whole.equals(one_by_one)


def test_one_interface_or_none_named_keeps_every_packet(tmp_path):
    """A single interface (or packets that name none) has no copies to drop, whatever the packets."""
    single = [("idb", 1, "eth0")] + [("epb", 0, 1.0 + i * 0.001, _syn()) for i in range(3)]
    r = pcapaudit.audit(pcapng_file(tmp_path / "one.pcapng", single))
    assert "interface_copies" not in dict(r.stats.extra) and int(r.flows["syn_count"].iloc[0]) == 3


@pytest.mark.parametrize("engine", ["core", "fast"])
@pytest.mark.parametrize("fmt", ["pcapng", "pcap"])
def test_copies_on_other_vlans_of_one_interface(tmp_path, engine, fmt):
    """A span of a trunk sees a routed packet once per VLAN it crossed, on one interface (the nDPI corpus'
    capwap_data: one conversation on three QinQ tags). Flows are keyed without the VLAN, so those copies
    must be dropped as copies, or the flow counts each packet once per VLAN. The same bytes again on the
    same VLAN are on the wire twice and stay; a pcap without interfaces is judged by the tags alone."""
    from scapy.all import wrpcap

    pkts = [(1.0, _syn(vlan=10)), (1.0001, _syn(ttl=63, vlan=20)),
            (1.010, _syn(vlan=10)), (1.0101, _syn(ttl=63, vlan=20)),  # a retransmission and its copy
            (2.0, _dgram()), (2.0002, bytes(Ether() / Dot1Q(vlan=20) / IP(_dgram()[14:])))]  # fmt: skip
    if fmt == "pcapng":
        path = pcapng_file(tmp_path / "trunk.pcapng", [("idb", 1, "eth0")] + [("epb", 0, t, p) for t, p in pkts])
    else:
        from scapy.all import Ether as E

        frames = []
        for t, p in pkts:
            f = E(p)
            f.time = t
            frames.append(f)
        path = tmp_path / "trunk.pcap"
        wrpcap(str(path), frames)
    r = pcapaudit.audit(str(path), engine=engine)
    assert dict(r.stats.extra).get("interface_copies") == 3
    f = r.flows.set_index(["transport", "src_port"])
    syn = f.loc[("tcp", 50000)]
    assert (syn["pkts_c2s"], syn["syn_count"], syn["vlan"]) == (2, 2, 10)
    assert f.loc[("udp", 4000), "pkts_c2s"] == 1
