"""The fast (vectorised) decoder must agree with the simple per-packet path, and both with dpkt."""

from __future__ import annotations

import struct

import dpkt
import numpy as np
import pytest
from scapy.all import GRE, IP, TCP, UDP, Dot1Q, Ether, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, Raw, fragment
from scapy.layers.l2 import CookedLinux

from pcapaudit.capture.pcapfile import CaptureFile, PacketBatch
from pcapaudit.decode import FAST, SKIP, Decoder
from tests.craft import write, write_raw

C, S = "192.168.50.10", "17.57.146.20"


def decoded(path, engine):
    dec = Decoder(engine)
    rows = []
    for b in CaptureFile(str(path)).batches():
        r = dec.decode(b)
        c = r.cols
        for i in range(len(b)):
            if c.status[i] != FAST:
                rows.append(("skip",))
                continue
            if c.poff[i] >= 0:
                payload = b.buf[c.poff[i] : c.poff[i] + c.pcap[i]]
            else:
                payload = r.extra_payload.get(i, b"")
            rows.append((int(c.ipver[i]), int(c.proto[i]), int(c.src_hi[i]), int(c.src_lo[i]), int(c.dst_hi[i]),
                         int(c.dst_lo[i]), int(c.sport[i]), int(c.dport[i]), int(c.flags[i]), int(c.seq[i]),
                         int(c.plen[i]), int(c.iplen[i]), int(c.vlan[i]), int(c.icmp_type[i]), int(c.ident[i]),
                         bytes(payload)))  # fmt: skip
    return rows


PACKETS = {
    "ipv4-tcp": Ether() / IP(src=C, dst=S, id=0x1234) / TCP(sport=5000, dport=443, flags="PA", seq=7, ack=99) / Raw(b"hello"),
    "ipv4-options": Ether() / IP(src=C, dst=S, options=b"\x01\x01\x01\x00") / TCP(dport=443) / Raw(b"x"),
    "ipv4-udp-padding": Ether() / IP(src=C, dst=S) / UDP(sport=5353, dport=53) / Raw(b"q"),  # Ethernet pads to 60
    "ipv6-tcp": Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2", fl=0xABCDE) / TCP(sport=1, dport=2, ack=5) / Raw(b"six"),
    "ipv6-hopbyhop": Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / UDP(sport=9, dport=53) / Raw(b"h"),
    "vlan": Ether() / Dot1Q(vlan=42) / IP(src=C, dst=S) / TCP(dport=5223),
    "qinq": Ether() / Dot1Q(vlan=10) / Dot1Q(vlan=20) / IP(src=C, dst=S) / UDP(dport=123) / Raw(b"n" * 48),
    "gre": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE() / IP(src=C, dst=S) / TCP(dport=443),
    "6in4": Ether() / IP(src="10.0.0.1", dst="10.0.0.2", proto=41) / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(dport=80),
    "icmp-unreach": Ether() / IP(src="10.0.0.254", dst=C, proto=1) / Raw(b"\x03\x03\x00\x00\x00\x00\x00\x00" + bytes(IP(src=C, dst=S) / UDP(sport=4000, dport=5228))[:28]),
    "arp": Ether(type=0x0806) / Raw(b"\0" * 28),
    "tcp-snaplen-cut": Ether() / IP(src=C, dst=S) / TCP(dport=443) / Raw(b"A" * 100),
    "truncated-ip": Ether(type=0x0800) / Raw(b"\x45\x00"),
    "bad-tcp-offset": Ether() / IP(src=C, dst=S) / TCP(dport=443, dataofs=2),
    "tso-length-zero": Ether() / IP(src=C, dst=S, len=0) / TCP(dport=443) / Raw(b"tso"),
}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dec")
    pkts = list(PACKETS.values())
    frags = fragment(IP(src=C, dst=S) / UDP(sport=53, dport=40000) / Raw(b"F" * 3000), fragsize=1000)
    pkts += [Ether() / f for f in frags]
    frag6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=7, m=0, offset=0) / UDP(sport=1, dport=2) / Raw(b"z")
    pkts.append(Ether() / frag6)
    path = write(tmp / "mixed.pcap", pkts)
    # cut one packet's capture length: rewrite incl_len of the "tcp-snaplen-cut" record
    data = bytearray(path.read_bytes())
    off = 24
    for i, p in enumerate(pkts):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        if i == list(PACKETS).index("tcp-snaplen-cut"):
            struct.pack_into("<I", data, off + 8, 70)
            del data[off + 16 + 70 : off + 16 + incl]
            incl = 70
        off += 16 + incl
    path.write_bytes(bytes(data))
    return path


def test_fast_and_simple_paths_agree(mixed):
    assert decoded(mixed, "fast") == decoded(mixed, "simple")


def test_expected_fields(mixed):
    rows = decoded(mixed, "fast")
    names = list(PACKETS)
    r = dict(zip(names, rows))
    assert r["ipv4-tcp"][6:9] == (5000, 443, 0x18) and r["ipv4-tcp"][-1] == b"hello"
    assert r["ipv4-tcp"][14] == 0x1234 << 32 | 99 and r["ipv6-tcp"][14] == 0xABCDE << 32 | 5  # IP ID / flow label, ack
    udp = bytes(PACKETS["ipv4-udp-padding"][UDP])
    assert r["ipv4-udp-padding"][14] & 0xFFFFFFFF == int.from_bytes(udp[4:8], "big")  # UDP length and checksum
    assert r["ipv4-udp-padding"][-1] == b"q"  # Ethernet padding is not payload
    assert r["vlan"][12] == 42
    assert r["qinq"][12] == (1 << 24) | (10 << 12) | 20
    assert r["gre"][7] == 443 and r["gre"][3] == int.from_bytes(bytes([192, 168, 50, 10]), "big")
    assert r["6in4"][0] == 6
    assert r["icmp-unreach"][13] == 3
    assert r["arp"] == ("skip",) and r["truncated-ip"] == ("skip",)
    assert r["tcp-snaplen-cut"][10] == 100 and len(r["tcp-snaplen-cut"][-1]) == 70 - 54
    assert r["bad-tcp-offset"][7] == 443 and r["bad-tcp-offset"][-1] == b""
    assert r["tso-length-zero"][-1] == b"tso"
    frag_rows = rows[len(PACKETS) : len(PACKETS) + 4]
    assert frag_rows[:3] == [("skip",)] * 3  # held until the datagram is complete
    assert frag_rows[3][10] == 3000 and frag_rows[3][-1] == b"F" * 3000
    assert rows[-1][1] == 17 and rows[-1][-1] == b"z"  # atomic IPv6 fragment


def test_weird_rows_for_malformed_packets(mixed):
    dec = Decoder("fast")
    names = []
    for b in CaptureFile(str(mixed)).batches():
        names += [n for _row, n, _d in dec.decode(b).weirds]
    assert "truncated_link_header" in names or "truncated_ip_header" in names
    assert "bad_tcp_header_length" in names


def test_sll_sll2_null_raw_linktypes(tmp_path):
    inner = IP(src=C, dst=S) / TCP(sport=1234, dport=443) / Raw(b"payload")
    frames = {
        113: bytes(CookedLinux(proto=0x0800) / inner),
        276: struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\0" * 8) + bytes(inner),
        0: struct.pack("<I", 2) + bytes(inner),
        108: struct.pack(">I", 2) + bytes(inner),
        101: bytes(inner),
        228: bytes(inner),
    }
    for lt, frame in frames.items():
        p = write_raw(tmp_path / f"lt{lt}.pcap", [frame], lt)
        fast, simple = decoded(p, "fast"), decoded(p, "simple")
        assert fast == simple, lt
        assert fast[0][7] == 443 and fast[0][-1] == b"payload", lt


def test_dpkt_oracle_on_corpus(corpus):
    """On Ethernet captures of the corpus, every IPv4/IPv6 TCP/UDP packet dpkt parses gets the same
    5-tuple, flags and payload from the fast path."""
    files = [p for p in sorted((corpus / "ndpi").glob("*.pcap*")) + sorted((corpus / "arkime").glob("*.pcap"))]
    checked = 0
    for path in files:
        with open(path, "rb") as fh:
            try:
                reader = dpkt.pcap.UniversalReader(fh)
            except (ValueError, dpkt.NeedData):
                continue
            if reader.datalink() != 1:
                continue
            try:
                frames = list(reader)
            except (dpkt.NeedData, dpkt.UnpackError, struct.error, ValueError):
                continue
        dec = Decoder("fast")
        ours = []
        for b in CaptureFile(str(path)).batches():
            r = dec.decode(b)
            ours += [(r.cols, b, i, r) for i in range(len(b))]
        assert len(ours) == len(frames), path
        for (_ts, frame), (c, b, i, r) in zip(frames, ours):
            try:
                eth = dpkt.ethernet.Ethernet(frame)
            except (dpkt.NeedData, dpkt.UnpackError):
                continue
            ip = eth.data
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) or getattr(eth, "vlan_tags", None):
                continue
            l4 = ip.data
            if isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset or ip.p in (4, 41, 47) or ip.len == 0):
                continue
            if not isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)) or c.status[i] != FAST:
                continue
            if isinstance(l4, dpkt.udp.UDP) and (l4.sport in (3544, 4789, 2152, 5246, 5247, 8472, 6081) or l4.dport in (3544, 4789, 2152, 5246, 5247, 8472, 6081)):
                continue
            assert (int(c.sport[i]), int(c.dport[i])) == (l4.sport, l4.dport), path
            if isinstance(l4, dpkt.tcp.TCP):
                assert int(c.flags[i]) == l4.flags and int(c.seq[i]) == l4.seq, path
            payload = b.buf[c.poff[i] : c.poff[i] + c.pcap[i]] if c.poff[i] >= 0 else r.extra_payload.get(i, b"")
            assert bytes(payload) == bytes(l4.data)[: len(payload)], path
            checked += 1
    assert checked > 5000
