"""Write vectors.tsv: frames and what the Python reference (pcapaudit.decode.packet.SimpleDecoder) makes
of them. Run by hand: PYTHONPATH=<repo> python make_vectors.py > vectors.tsv

Line: group, name, linktype, ts, frame hex, then the result: notip | frag | err<TAB>name<TAB>detail |
pkt<TAB>ipver proto src dst sport dport flags seq payload plen iplen vlan icmp_type icmp_code tunnel
fragments weird_name weird_detail ident. A group shares one decoder (fragments)."""

import struct
import sys

from scapy.all import (GRE, ICMP, IP, TCP, UDP, Dot1Q, Ether, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                       IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, Raw, fragment)
from scapy.layers.l2 import CookedLinux
from scapy.contrib.mpls import MPLS
from scapy.layers.ppp import PPPoE, PPP
from scapy.layers.vxlan import VXLAN
from scapy.layers.inet6 import ICMPv6EchoRequest

from pcapaudit.decode.packet import DecodeError, Fragment, NotIP, SimpleDecoder

C, S = "192.168.50.10", "17.57.146.20"
out = []


def hdr(pid=501, comm="mdmclient", epid=None, ecomm=None, dlt=1, length=108, rectype=1, ifname=b"en0"):
    def cstr(s):
        return s.encode()[:16].ljust(20, b"\0") if isinstance(s, str) else s.ljust(20, b"\0")
    epid, ecomm = pid if epid is None else epid, comm if ecomm is None else ecomm
    fields = (length, rectype, dlt, ifname, 2, 2, 14, 0, pid, cstr(comm), 0, 6, 0, epid, cstr(ecomm))
    return struct.pack("<III24sIIIIi20sIHHi20s", *fields) + b"\0" * (length - 108)


def addr(b):
    return int.from_bytes(b, "big")


def emit(group, dec, name, frame, lt=1, ts=0.0):
    frame = bytes(frame)
    head = f"{group}\t{name}\t{lt}\t{ts!r}\t{frame.hex()}"
    try:
        f = dec.decode(frame, lt, ts)
    except NotIP:
        out.append(f"{head}\tnotip")
        return
    except Fragment:
        out.append(f"{head}\tfrag")
        return
    except DecodeError as e:
        out.append(f"{head}\terr\t{e.name}\t{e.detail}")
        return
    w = f.weird or ("-", "-")
    vals = [f.ipver, f.proto, addr(f.src), addr(f.dst), f.sport, f.dport, f.flags, f.seq, f.payload.hex() or "-",
            max(f.plen, 0), f.iplen, f.vlan, f.icmp_type, f.icmp_code, f.tunnel or "-", f.fragments, w[0], w[1],
            f.ident]
    out.append(f"{head}\tpkt\t" + "\t".join(str(v) for v in vals))


def single(name, frame, lt=1, ts=0.0):
    emit(name, SimpleDecoder(), name, frame, lt, ts)


def main():
    P = {
        "ipv4-tcp": Ether() / IP(src=C, dst=S, id=0x1234) / TCP(sport=5000, dport=443, flags="PA", seq=7, ack=99) / Raw(b"hello"),
        "ipv4-options": Ether() / IP(src=C, dst=S, options=b"\x01\x01\x01\x00") / TCP(dport=443) / Raw(b"x"),
        "ipv4-udp-padding": Ether() / IP(src=C, dst=S) / UDP(sport=5353, dport=53) / Raw(b"q"),
        "ipv6-tcp": Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2", fl=0xABCDE) / TCP(sport=1, dport=2, ack=5) / Raw(b"six"),
        "ipv6-hopbyhop": Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / UDP(sport=9, dport=53) / Raw(b"h"),
        "ipv6-routing-destopt": Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() / TCP(sport=9, dport=80) / Raw(b"r"),
        "vlan": Ether() / Dot1Q(vlan=42) / IP(src=C, dst=S) / TCP(dport=5223),
        "qinq": Ether() / Dot1Q(vlan=10) / Dot1Q(vlan=20) / IP(src=C, dst=S) / UDP(dport=123) / Raw(b"n" * 48),
        "three-tags": Ether() / Dot1Q(vlan=10) / Dot1Q(vlan=20) / Dot1Q(vlan=30) / IP(src=C, dst=S) / UDP(dport=123),
        "vlan-88a8": Ether(type=0x88A8) / Dot1Q(vlan=7) / IP(src=C, dst=S) / UDP(dport=1),
        "gre": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE() / IP(src=C, dst=S) / TCP(dport=443),
        "gre-key-seq": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE(key_present=1, seqnum_present=1, key=5, seqence_number=9) / IP(src=C, dst=S) / UDP(dport=53),
        "gre-eth": Ether() / Dot1Q(vlan=5) / IP(src="10.0.0.1", dst="10.0.0.2") / GRE(proto=0x6558) / Ether() / Dot1Q(vlan=9) / IP(src=C, dst=S) / TCP(dport=443),
        "gre-eth-inner-vlan": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE(proto=0x6558) / Ether() / Dot1Q(vlan=9) / IP(src=C, dst=S) / TCP(dport=443),
        "erspan2": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE(proto=0x88BE, seqnum_present=1) / Raw(b"\x10\x01\x00\x05\x00\x00\x00\x00") / Ether() / IP(src=C, dst=S) / TCP(dport=22),
        "gre-arp": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE(proto=0x0806) / Raw(b"\0" * 28),
        "gre-short": Ether() / IP(src="10.0.0.1", dst="10.0.0.2", proto=47) / Raw(b"\0\0"),
        "6in4": Ether() / IP(src="10.0.0.1", dst="10.0.0.2", proto=41) / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(dport=80),
        "ipip": Ether() / IP(src="10.0.0.1", dst="10.0.0.2", proto=4) / IP(src=C, dst=S) / UDP(sport=1, dport=2) / Raw(b"in"),
        "ipip-deep": Ether() / IP(proto=4) / IP(proto=4) / IP(proto=4) / IP(proto=4) / IP(proto=4) / IP(proto=4) / IP(src=C, dst=S) / UDP(),
        "gre-deep": Ether() / IP() / GRE() / IP() / GRE() / IP() / GRE() / IP() / GRE() / IP() / GRE() / IP(src=C, dst=S) / UDP(),
        "gre-4": Ether() / IP() / GRE() / IP() / GRE() / IP() / GRE() / IP() / GRE() / IP(src=C, dst=S) / UDP(),
        "icmp-unreach": Ether() / IP(src="10.0.0.254", dst=C, proto=1) / Raw(b"\x03\x03\x00\x00\x00\x00\x00\x00" + bytes(IP(src=C, dst=S) / UDP(sport=4000, dport=5228))[:28]),
        "icmp-echo": Ether() / IP(src=C, dst=S) / ICMP(id=3, seq=4) / Raw(b"ping"),
        "icmpv6-echo": Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(id=1, seq=2, data=b"p6"),
        "icmp-short": Ether() / IP(src=C, dst=S, proto=1) / Raw(b"\x08\x00"),
        "arp": Ether(type=0x0806) / Raw(b"\0" * 28),
        "truncated-ip": Ether(type=0x0800) / Raw(b"\x45\x00"),
        "runt": Raw(b"\x00" * 10),
        "bad-tcp-offset": Ether() / IP(src=C, dst=S) / TCP(dport=443, dataofs=2),
        "tcp-offset-past-ip": Ether() / IP(src=C, dst=S, len=44) / TCP(dport=443, dataofs=15) / Raw(b"x" * 60),
        "tcp-options-cut": bytes(Ether() / IP(src=C, dst=S) / TCP(dport=443, options=[("MSS", 1460), ("NOP", None), ("WScale", 7)]))[:60],
        "tso-length-zero": Ether() / IP(src=C, dst=S, len=0) / TCP(dport=443) / Raw(b"tso"),
        "bad-version": Ether() / Raw(b"\x55" + b"\0" * 30),
        "ipv6-ethertype-v4": Ether(type=0x0800) / IPv6(src="::1", dst="::2") / UDP() / Raw(b"?"),
        "bad-ihl": Ether(type=0x0800) / Raw(b"\x43" + b"\0" * 30),
        "bad-total": Ether() / IP(src=C, dst=S, len=10) / UDP(),
        "ipv4-options-cut": Ether(type=0x0800) / Raw(b"\x4f\x00\x00\x50" + b"\0" * 30),
        "ipv6-short": Ether(type=0x86DD) / Raw(b"\x60" + b"\0" * 20),
        "ipv6-ext-exceeds": Ether() / IPv6(src="::1", dst="::2", plen=8, nh=0) / Raw(b"\x11\x05" + b"\0" * 6),
        "ipv6-ext-cut": Ether() / IPv6(src="::1", dst="::2", plen=4, nh=60) / Raw(b"\x11\x00\0\0"),
        "ipv6-jumbo": Ether() / IPv6(src="::1", dst="::2", plen=0) / UDP(sport=1, dport=2) / Raw(b"jumbo"),
        "udp-short": Ether() / IP(src=C, dst=S, proto=17) / Raw(b"\0\1\0"),
        "udp-wire-short": Ether() / IP(src=C, dst=S, proto=17, len=24) / Raw(b"\0\1\0\2\0\0\0\0"),
        "sctp-other": Ether() / IP(src=C, dst=S, proto=132) / Raw(b"sctpdata"),
        "mpls": Ether(type=0x8847) / MPLS(label=16, s=0) / MPLS(label=17, s=1) / IP(src=C, dst=S) / TCP(dport=80),
        "mpls-v6": Ether(type=0x8847) / MPLS(label=16, s=1) / IPv6(src="::1", dst="::2") / UDP(),
        "mpls-pw-cw": Ether() / Dot1Q(vlan=3) / MPLS(label=16, s=1) / Raw(b"\0\0\0\0") / Ether() / Dot1Q(vlan=8) / IP(src=C, dst=S) / TCP(dport=443),
        "mpls-pw-novlan": Ether(type=0x8847) / MPLS(label=16, s=1) / Raw(b"\0\0\0\0") / Ether() / Dot1Q(vlan=8) / IP(src=C, dst=S) / TCP(dport=443),
        "mpls-cut": Ether(type=0x8847) / Raw(b"\0\0\0"),
        "mpls-pw-cut": Ether(type=0x8847) / MPLS(label=16, s=1) / Raw(b"\0\0\0\0\1\2"),
        "pppoe": Ether() / PPPoE(sessionid=1) / PPP(proto=0x21) / IP(src=C, dst=S) / UDP(dport=53) / Raw(b"d"),
        "pppoe-lcp": Ether() / PPPoE(sessionid=1) / PPP(proto=0xC021) / Raw(b"\1\1\0\4"),
        "pppoe-cut": Ether(type=0x8864) / Raw(b"\x11\x00\x00"),
        "llc-snap": Ether(type=48) / Raw(b"\xaa\xaa\x03\x00\x00\x00\x08\x00") / IP(src=C, dst=S) / UDP(dport=9),
        "llc-stp": Ether(type=38) / Raw(b"\x42\x42\x03" + b"\0" * 35),
        "vxlan": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5555, dport=4789) / VXLAN(vni=7) / Ether() / Dot1Q(vlan=11) / IP(src=C, dst=S) / TCP(dport=443),
        "vxlan-not": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5555, dport=4789) / Raw(b"\0" * 30),
        "vxlan-arp": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5555, dport=8472) / VXLAN(vni=7) / Ether(type=0x0806) / Raw(b"\0" * 28),
        "geneve-eth": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5555, dport=6081) / Raw(b"\x01\x00\x65\x58\0\0\x07\0" + b"\0" * 4) / Ether() / IP(src=C, dst=S) / UDP(dport=53),
        "geneve-ip": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5555, dport=6081) / Raw(b"\x00\x00\x08\x00\0\0\x07\0") / IP(src=C, dst=S) / UDP(dport=53),
        "gtp": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=2152, dport=2152) / Raw(b"\x30\xff\x00\x20\x00\x00\x00\x01") / IP(src=C, dst=S) / TCP(dport=443),
        "gtp-ext": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=2152, dport=2152) / Raw(b"\x34\xff\x00\x20\x00\x00\x00\x01\x00\x00\x00\x85\x01\x00\x09\x00") / IP(src=C, dst=S) / TCP(dport=443),
        "gtp-bad-ext": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=2152, dport=2152) / Raw(b"\x34\xff\x00\x20\x00\x00\x00\x01\x00\x00\x00\x85\x00\x00\x09\x00"),
        "capwap-eth": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5247, dport=12345) / Raw(b"\x00\x10\x00\x00\0\0\0\0") / Ether() / IP(src=C, dst=S) / TCP(dport=80),
        "capwap-80211": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5247, dport=12345) / Raw(b"\x00\x10\x03\x00\0\0\0\0") / Raw(b"\x88\x01" + b"\0" * 22 + b"\0\0" + b"\xaa\xaa\x03\x00\x00\x00\x08\x00") / IP(src=C, dst=S) / TCP(dport=80),
        "capwap-80211-swapped": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5247, dport=12345) / Raw(b"\x00\x10\x03\x00\0\0\0\0") / Raw(b"\x03\x08" + b"\0" * 28 + b"\xaa\xaa\x03\x00\x00\x00\x86\xdd") / IPv6(src="::1", dst="::2") / UDP(),
        "teredo": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=3544, dport=40000) / IPv6(src="2001:0:4136:e378::1", dst="2001:db8::2") / TCP(dport=443),
        "teredo-origin": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=3544, dport=40000) / Raw(b"\0\0\x12\x34\x01\x02\x03\x04") / IPv6(src="2001:0:4136:e378::1", dst="2001:db8::2") / UDP(dport=53) / Raw(b"t"),
        "teredo-auth": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=3544) / Raw(b"\0\1\x02\x01ab" + b"c" + b"N" * 8 + b"\0") / IPv6(src="2001:0:4136:e378::1", dst="2001:db8::2") / UDP(dport=53),
        "teredo-bubble": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=3544, dport=40000) / IPv6(src="2001:0:4136:e378::1", dst="2001:db8::2", nh=59, plen=0),
        "teredo-garbage": Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=3544, dport=40000) / Raw(b"\x60" + b"\0" * 20),
        "dns": Ether() / IP(src=C, dst="8.8.8.8") / UDP(sport=5353, dport=53) / Raw(bytes.fromhex("6001010000010000000000000377777706676f6f676c6503636f6d0000010001")),
    }
    for name, p in P.items():
        single(name, p)
    # snaplen cut (ipv4): the IP total length still counts
    single("tcp-snaplen-cut", bytes(Ether() / IP(src=C, dst=S) / TCP(dport=443) / Raw(b"A" * 100))[:70])
    # link types
    inner = IP(src=C, dst=S) / TCP(sport=1234, dport=443) / Raw(b"payload")
    single("sll", bytes(CookedLinux(pkttype=4, proto=0x0800) / inner), 113)
    single("sll-vlan", bytes(CookedLinux(proto=0x8100)) + b"\x00\x05\x08\x00" + bytes(inner), 113)
    single("sll-short", b"\0" * 15, 113)
    single("sll2", struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 4, 6, b"\0" * 8) + bytes(inner), 276)
    single("sll2-short", b"\x08\x00" + b"\0" * 10, 276)
    single("null", struct.pack("<I", 2) + bytes(inner), 0)
    single("null-v6", struct.pack("<I", 30) + bytes(IPv6(src="::1", dst="::1") / UDP(sport=5000, dport=5353) / Raw(b"\0" * 12)), 0)
    single("null-other", struct.pack("<I", 7) + b"\x12" * 20, 0)
    single("null-short", b"\2\0\0\0", 0)
    single("loop", struct.pack(">I", 2) + bytes(inner), 108)
    for lt in (101, 12, 14, 228, 229):
        single(f"raw{lt}", inner, lt)
    single("raw-empty", b"", 101)
    single("ppp", b"\x00\x21" + bytes(inner), 9)
    single("ppp-hdlc", b"\xff\x03\x00\x21" + bytes(inner), 50)
    single("ppp-compressed", b"\x21" + bytes(inner), 9)
    single("ppp-dir", b"\x01\xff\x03\x00\x57" + bytes(IPv6(src="::1", dst="::2") / UDP()), 204)
    single("ppp-lcp", b"\xc0\x21\x01\x01", 9)
    single("ppp-empty", b"\xff\x03", 9)
    single("ppp-cut", b"\x00", 9)
    single("unsupported", b"\0" * 40, 147)
    single("ieee80211-unsupported", b"\0" * 40, 105)
    # PKTAP
    eth = Ether() / IP(src=C, dst=S) / TCP(sport=50000, dport=443) / Raw(b"hi")
    six = Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5353, dport=53) / Raw(b"q")
    raw_ip = bytes(IP(src=C, dst=S) / TCP(sport=50001, dport=443) / Raw(b"raw"))
    for lt in (258, 149):
        single(f"pktap{lt}-eth", hdr() + bytes(eth), lt)
        single(f"pktap{lt}-len120", hdr(length=120) + bytes(six), lt)
        single(f"pktap{lt}-raw", hdr(dlt=12) + raw_ip, lt)
        single(f"pktap{lt}-null", hdr(dlt=0) + struct.pack("<I", 2) + raw_ip, lt)
        single(f"pktap{lt}-short", hdr()[:60], lt)
        single(f"pktap{lt}-hlen-small", hdr(length=40) + b"\0" * 80, lt)
        single(f"pktap{lt}-hlen-past", struct.pack("<I", 5000) + hdr()[4:] + b"\0" * 80, lt)
        single(f"pktap{lt}-norec", hdr(rectype=0), lt)
        single(f"pktap{lt}-nested", hdr(dlt=258) + hdr() + bytes(eth), lt)
        single(f"pktap{lt}-inner-unsupported", hdr(dlt=147) + b"\0" * 40, lt)
        single(f"pktap{lt}-runt", hdr(dlt=1) + b"\x00\x01", lt)
    single("user2-not-pktap", b"\x01\x02\x03" * 50, 149)
    # fragments: one decoder per group
    g = "frag4"
    dec = SimpleDecoder()
    frags = fragment(IP(src=C, dst=S, id=77) / UDP(sport=53, dport=40000) / Raw(b"F" * 3000), fragsize=1000)
    for i, f in enumerate(frags):
        emit(g, dec, f"{g}-{i}", Ether() / f, ts=1.0 + i)
    g = "frag4-reverse-overlap"
    dec = SimpleDecoder()
    whole = IP(src=C, dst=S, id=78) / TCP(sport=1, dport=2) / Raw(bytes(range(256)) * 8)
    frags = fragment(whole, fragsize=512)
    dup = frags[1].copy()
    for i, f in enumerate([frags[-1], dup] + frags[::-1]):
        emit(g, dec, f"{g}-{i}", Ether() / f, ts=5.0)
    g = "frag4-timeout"
    dec = SimpleDecoder(frag_timeout=10.0)
    frags = fragment(IP(src=C, dst=S, id=79) / UDP(sport=5, dport=6) / Raw(b"T" * 2000), fragsize=1000)
    emit(g, dec, f"{g}-0", Ether() / frags[0], ts=100.0)
    emit(g, dec, f"{g}-1", Ether() / frags[1], ts=111.0)  # first expired: incomplete again
    emit(g, dec, f"{g}-2", Ether() / frags[2], ts=112.0)
    emit(g, dec, f"{g}-3", Ether() / frags[0], ts=113.0)
    g = "frag4-truncated"
    dec = SimpleDecoder()
    frags = fragment(IP(src=C, dst=S, id=80) / UDP(sport=5, dport=6) / Raw(b"C" * 2000), fragsize=1000)
    emit(g, dec, f"{g}-0", bytes(Ether() / frags[0])[:200])
    g = "frag6"
    dec = SimpleDecoder()
    pkt6 = IPv6(src="2001:db8::1", dst="2001:db8::2", fl=5) / IPv6ExtHdrFragment(id=9) / UDP(sport=1, dport=2) / Raw(b"S" * 3000)
    from scapy.all import fragment6
    for i, f in enumerate(fragment6(pkt6, 1280)):
        emit(g, dec, f"{g}-{i}", Ether() / f, ts=2.0)
    g = "frag6-atomic"
    dec = SimpleDecoder()
    emit(g, dec, g, Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=7, m=0, offset=0) / UDP(sport=1, dport=2) / Raw(b"z"))
    g = "frag-in-teredo"
    dec = SimpleDecoder()
    for i, f in enumerate(fragment6(IPv6(src="2001:0:1::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=3) / UDP(sport=1, dport=2) / Raw(b"U" * 1600), 1280)):
        emit(g, dec, f"{g}-{i}", Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=3544, dport=40000) / f)
    g = "frag-ipip"
    dec = SimpleDecoder()
    for i, f in enumerate(fragment(IP(src="10.0.0.1", dst="10.0.0.2", proto=4) / IP(src=C, dst=S) / TCP(sport=1, dport=2) / Raw(b"I" * 1500), fragsize=800)):
        emit(g, dec, f"{g}-{i}", Ether() / Dot1Q(vlan=4) / f)
    print("\n".join(out))


main()
