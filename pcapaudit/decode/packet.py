"""The simple path: decode one packet at a time, handling every case the fast path hands over.

Link layers (Ethernet with 802.1Q/QinQ, MPLS, PPPoE and LLC/SNAP; Linux SLL/SLL2; BSD null/loopback;
raw IP; PPP), IPv4 options and fragments (reassembled), IPv6 extension headers and fragments, and
tunnels (IPIP, 6in4, GRE/ERSPAN, Teredo, VXLAN, Geneve, GTP-U, CAPWAP data with 802.11 or 802.3
frames). The innermost IP packet is what becomes a flow; tunnels are recorded in ``tunnel``.

Malformed input raises ``DecodeError`` with a short weird name; ``decode.__init__`` turns it into a
``Weird`` row. Nothing else here catches exceptions.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from typing import NamedTuple


class DecodeError(Exception):
    """Malformed packet. ``args[0]`` is a weird name such as ``truncated_tcp_header``."""

    def __init__(self, name: str, detail: str = ""):
        super().__init__(name, detail)
        self.name = name
        self.detail = detail


class NotIP(Exception):
    """The frame carries no IP packet (ARP, LLDP, STP...). Counted, not a weird."""


class Fragment(Exception):
    """An IP fragment was stored; the datagram is not complete yet."""


class PacketFields(NamedTuple):
    """Header fields of one (innermost) IP packet."""

    ipver: int
    proto: int
    src: bytes
    dst: bytes
    sport: int
    dport: int
    flags: int
    seq: int
    payload: bytes  # captured L4 payload (ICMP: the quoted datagram)
    plen: int  # payload length on the wire
    iplen: int  # IP-layer bytes on the wire
    vlan: int  # -1, the 802.1Q id, or QINQ | outer << 12 | inner
    icmp_type: int  # -1 unless ICMP/ICMPv6
    icmp_code: int
    tunnel: str | None
    fragments: int  # >1 when reassembled from fragments
    weird: tuple[str, str] | None = None  # accounted to its flow, but something was wrong with it
    ident: int = 0  # IPv4 ID (IPv6: flow label) << 32 | the transport header's second word (decode.vector)


ETH_VLAN = (0x8100, 0x88A8, 0x9100)
QINQ = 1 << 24  # vlan value for two tags: QINQ | outer << 12 | inner (same as decode.vector)
V6_EXT = (0, 43, 60, 135, 139, 140)
MAX_DEPTH = 4

_be16 = struct.Struct(">H").unpack_from
_be32 = struct.Struct(">I").unpack_from


class SimpleDecoder:
    """Per-packet decoder with a bounded IP fragment reassembly cache."""

    def __init__(self, max_datagrams: int = 1024, frag_timeout: float = 60.0):
        self._frags: OrderedDict[tuple, _Datagram] = OrderedDict()
        self._max = max_datagrams
        self._timeout = frag_timeout
        self.expired_fragments = 0

    # -- entry point -----------------------------------------------------------------------------
    def decode(self, data: bytes, linktype: int, ts: float) -> PacketFields:
        """Decode one captured frame. Raises DecodeError, NotIP or Fragment."""
        ip, vlan = self._link(data, linktype)
        return self._ip(ip, vlan, ts, 0, None)

    # -- link layer ------------------------------------------------------------------------------
    def _link(self, d: bytes, lt: int) -> tuple[bytes, int]:
        if lt == 1:
            return self._ethernet(d, 0)
        if lt == 113:  # Linux cooked v1
            if len(d) < 16:
                raise DecodeError("truncated_link_header", "SLL")
            return self._ethertype(d, _be16(d, 14)[0], 16, -1, 0)
        if lt == 276:  # Linux cooked v2
            if len(d) < 20:
                raise DecodeError("truncated_link_header", "SLL2")
            return self._ethertype(d, _be16(d, 0)[0], 20, -1, 0)
        if lt in (258, 149):  # Apple PKTAP (149: macOS's run-time DLT for it): header, then the inner frame
            return self._pktap(d, lt)
        if lt in (0, 108):  # BSD null / OpenBSD loop
            if len(d) < 5:
                raise DecodeError("truncated_link_header", "loopback")
            # the family field's byte order and AF_INET6 value depend on the capturing OS: go by the
            # IP version nibble (as decode.vector does)
            if d[4] >> 4 in (4, 6):
                return d[4:], -1
            raise NotIP
        if lt in (101, 12, 14, 228, 229):
            return d, -1
        if lt in (9, 50, 204):  # PPP, PPP in HDLC framing, PPP with direction
            off = 1 if lt == 204 else 0
            if d[off : off + 2] == b"\xff\x03":
                off += 2
            if len(d) < off + 1:
                raise DecodeError("truncated_link_header", "PPP")
            proto = d[off]
            if proto & 1:  # compressed one-byte protocol field
                off += 1
            else:
                if len(d) < off + 2:
                    raise DecodeError("truncated_link_header", "PPP")
                proto = _be16(d, off)[0]
                off += 2
            if proto in (0x21, 0x57):
                return d[off:], -1
            raise NotIP
        raise DecodeError("unsupported_linktype", f"link type {lt}")

    def _pktap(self, d: bytes, lt: int) -> tuple[bytes, int]:
        hlen = struct.unpack_from("<I", d, 0)[0] if len(d) >= 4 else 0
        if lt == 149 and not 108 <= hlen <= len(d):  # DLT_USER2 is also anybody's private link type
            raise DecodeError("unsupported_linktype", "link type 149 (USER2) without an Apple PKTAP header")
        if len(d) < 108:
            raise DecodeError("truncated_link_header", "PKTAP")
        hlen, rectype, dlt = struct.unpack_from("<III", d, 0)
        if hlen < 108 or hlen > len(d):
            raise DecodeError("bad_pktap_header", f"header length {hlen} (frame {len(d)} bytes)")
        if rectype != 1:  # PKT_REC_NONE: metadata without a packet
            raise NotIP
        if dlt in (258, 149):
            raise DecodeError("bad_pktap_header", "PKTAP inside PKTAP")
        return self._link(d[hlen:], dlt)

    def _ethernet(self, d: bytes, depth: int) -> tuple[bytes, int]:
        if len(d) < 14:
            raise DecodeError("truncated_link_header", "Ethernet")
        return self._ethertype(d, _be16(d, 12)[0], 14, -1, depth)

    def _ethertype(self, d: bytes, et: int, off: int, vlan: int, depth: int) -> tuple[bytes, int]:
        for _ in range(8):
            if et in ETH_VLAN:
                if len(d) < off + 4:
                    raise DecodeError("truncated_link_header", "802.1Q tag")
                vid = _be16(d, off)[0] & 0x0FFF
                if vlan < 0:
                    vlan = vid
                elif vlan < QINQ:
                    vlan = QINQ | (vlan << 12) | vid
                et = _be16(d, off + 2)[0]
                off += 4
            elif et in (0x8847, 0x8848):  # MPLS: pop labels until bottom of stack
                while True:
                    if len(d) < off + 4:
                        raise DecodeError("truncated_link_header", "MPLS")
                    bottom = d[off + 2] & 1
                    off += 4
                    if bottom:
                        break
                if len(d) <= off:
                    raise DecodeError("truncated_link_header", "MPLS")
                nib = d[off] >> 4
                if nib == 4:
                    et = 0x0800
                elif nib == 6:
                    et = 0x86DD
                else:  # pseudowire with control word, carrying Ethernet
                    if d[off : off + 2] == b"\x00\x00":
                        off += 4
                    ip, v = self._ethernet(d[off:], depth + 1)
                    return ip, vlan if vlan >= 0 else v
            elif et == 0x8864:  # PPPoE session
                if len(d) < off + 8:
                    raise DecodeError("truncated_link_header", "PPPoE")
                proto = _be16(d, off + 6)[0]
                off += 8
                if proto == 0x21:
                    et = 0x0800
                elif proto == 0x57:
                    et = 0x86DD
                else:
                    raise NotIP
            elif et < 0x600:  # 802.3 length field: LLC/SNAP
                if d[off : off + 3] == b"\xaa\xaa\x03" and len(d) >= off + 8:
                    et = _be16(d, off + 6)[0]
                    off += 8
                else:
                    raise NotIP
            else:
                break
        if et in (0x0800, 0x86DD):
            return d[off:], vlan
        raise NotIP

    # -- IP --------------------------------------------------------------------------------------
    def _ip(self, d: bytes, vlan: int, ts: float, depth: int, tunnel: str | None) -> PacketFields:
        if depth > MAX_DEPTH:
            raise DecodeError("tunnel_too_deep", f"{depth} nested encapsulations")
        if not d:
            raise DecodeError("truncated_ip_header", "no IP header")
        ver = d[0] >> 4
        if ver == 4:
            return self._ipv4(d, vlan, ts, depth, tunnel)
        if ver == 6:
            return self._ipv6(d, vlan, ts, depth, tunnel)
        raise DecodeError("bad_ip_version", f"version {ver}")

    def _ipv4(self, d: bytes, vlan: int, ts: float, depth: int, tunnel: str | None) -> PacketFields:
        if len(d) < 20:
            raise DecodeError("truncated_ip_header", f"{len(d)} bytes of IPv4 header")
        ihl = (d[0] & 0x0F) * 4
        total = _be16(d, 2)[0]
        if ihl < 20:
            raise DecodeError("bad_ip_header_length", f"IHL {ihl}")
        if total == 0:  # TCP segmentation offload: length unknown, use what was captured
            total = len(d)
        if total < ihl:
            raise DecodeError("bad_ip_total_length", f"total length {total} < header {ihl}")
        if len(d) < ihl:
            raise DecodeError("truncated_ip_header", "IPv4 options cut off")
        ident = _be16(d, 4)[0]
        fo = _be16(d, 6)[0]
        more, offset = bool(fo & 0x2000), (fo & 0x1FFF) * 8
        proto = d[9]
        src, dst = d[12:16], d[16:20]
        body = d[ihl:total]
        nfrag = 1
        if more or offset:
            body, nfrag = self._defrag((4, src, dst, proto, ident), offset, more, body, total - ihl, ts)
            total = ihl + len(body)
        return self._l4(4, proto, src, dst, body, total - ihl, total, vlan, ts, depth, tunnel, nfrag, ident)

    def _ipv6(self, d: bytes, vlan: int, ts: float, depth: int, tunnel: str | None) -> PacketFields:
        if len(d) < 40:
            raise DecodeError("truncated_ip_header", f"{len(d)} bytes of IPv6 header")
        plen = _be16(d, 4)[0]
        nh = d[6]
        src, dst = d[8:24], d[24:40]
        if plen == 0:  # jumbogram or TSO: use what was captured
            plen = len(d) - 40
        body = d[40 : 40 + plen]
        wire = plen
        nfrag = 1
        for _ in range(8):
            if nh in V6_EXT:
                if len(body) < 8:
                    raise DecodeError("truncated_ip_header", "IPv6 extension header")
                hlen = (body[1] + 1) * 8
                nh = body[0]
                body = body[hlen:]
                wire -= hlen
            elif nh == 44:  # fragment header
                if len(body) < 8:
                    raise DecodeError("truncated_ip_header", "IPv6 fragment header")
                nxt = body[0]
                fo = _be16(body, 2)[0]
                ident = _be32(body, 4)[0]
                body = body[8:]
                wire -= 8
                nh = nxt
                more, offset = bool(fo & 1), fo & 0xFFF8
                if more or offset:
                    body, nfrag = self._defrag((6, src, dst, nxt, ident), offset, more, body, wire, ts)
                    wire = len(body)
                break
            else:
                break
        if wire < 0:
            raise DecodeError("bad_ip_total_length", "IPv6 extension headers exceed payload length")
        return self._l4(6, nh, src, dst, body, wire, plen + 40, vlan, ts, depth, tunnel, nfrag,
                        _be32(d, 0)[0] & 0xFFFFF)  # fmt: skip

    def _defrag(self, key, offset, more, body, wire, ts) -> tuple[bytes, int]:
        if len(body) < wire:
            raise DecodeError("truncated_fragment", "fragment cut by the capture length")
        now = ts
        while self._frags:  # expire old datagrams (oldest first)
            k, dg = next(iter(self._frags.items()))
            if now - dg.ts <= self._timeout and len(self._frags) < self._max:
                break
            del self._frags[k]
            self.expired_fragments += 1
        dg = self._frags.get(key)
        if dg is None:
            dg = self._frags[key] = _Datagram(ts)
        dg.parts.append((offset, body))
        if not more:
            dg.end = offset + len(body)
        if dg.end is None:
            raise Fragment
        parts = sorted(dg.parts)
        pos = 0
        out = bytearray()
        for off, data in parts:
            if off > pos:
                raise Fragment  # a hole remains
            if off + len(data) > pos:
                out += data[pos - off :]
                pos = off + len(data)
        if pos < dg.end:
            raise Fragment
        del self._frags[key]
        if len(out) > 65535:
            raise DecodeError("fragment_overflow", f"reassembled datagram of {len(out)} bytes")
        return bytes(out[: dg.end]), len(dg.parts)

    # -- transport -------------------------------------------------------------------------------
    def _l4(self, ver, proto, src, dst, body, wire, iplen, vlan, ts, depth, tunnel, nfrag, ipid=0) -> PacketFields:
        ident = ipid << 32 | (_be32(body, 4)[0] if proto in (17, 1, 58) and len(body) >= 8 else
                              _be32(body, 8)[0] if proto == 6 and len(body) >= 12 else 0)  # fmt: skip
        if proto == 6:
            if len(body) < 20:
                raise DecodeError("truncated_tcp_header", f"{len(body)} bytes")
            sport, dport = struct.unpack_from(">HH", body)
            seq = _be32(body, 4)[0]
            doff = (body[12] >> 4) * 4
            if doff < 20 or doff > wire:
                # the ports and flags are still there: count the packet, ignore its payload
                return PacketFields(ver, 6, src, dst, sport, dport, body[13], seq, b"", 0, iplen, vlan, -1, -1,
                                    tunnel, nfrag, ("bad_tcp_header_length", f"data offset {doff}"), ident)  # fmt: skip
            if len(body) < doff:
                raise DecodeError("truncated_tcp_header", "TCP options cut off")
            return PacketFields(ver, 6, src, dst, sport, dport, body[13], seq, body[doff:], wire - doff,
                                iplen, vlan, -1, -1, tunnel, nfrag, ident=ident)  # fmt: skip
        if proto == 17:
            if len(body) < 8 or wire < 8:
                raise DecodeError("truncated_udp_header", f"{len(body)} bytes")
            sport, dport = struct.unpack_from(">HH", body)
            payload = body[8:]
            inner = self._udp_tunnel(sport, dport, payload, vlan, ts, depth)
            if inner is not None:
                return inner
            return PacketFields(ver, 17, src, dst, sport, dport, 0, 0, payload, wire - 8, iplen, vlan,
                                -1, -1, tunnel, nfrag, ident=ident)  # fmt: skip
        if proto in (1, 58):
            if len(body) < 8:
                raise DecodeError("truncated_icmp_header", f"{len(body)} bytes")
            return PacketFields(ver, proto, src, dst, 0, 0, 0, 0, body[8:], wire - 8, iplen, vlan,
                                body[0], body[1], tunnel, nfrag, ident=ident)  # fmt: skip
        if proto == 4:
            return self._ipv4(body, vlan, ts, depth + 1, "ipip")
        if proto == 41:
            return self._ipv6(body, vlan, ts, depth + 1, "6in4")
        if proto == 47:
            return self._gre(body, vlan, ts, depth)
        return PacketFields(ver, proto, src, dst, 0, 0, 0, 0, body, wire, iplen, vlan, -1, -1, tunnel, nfrag,
                            ident=ident)  # fmt: skip

    def _gre(self, d: bytes, vlan: int, ts: float, depth: int) -> PacketFields:
        if len(d) < 4:
            raise DecodeError("truncated_gre_header")
        flags, ptype = struct.unpack_from(">HH", d)
        off = 4 + 4 * (bool(flags & 0x8000) + bool(flags & 0x2000) + bool(flags & 0x1000))
        if ptype == 0x88BE:  # ERSPAN type II
            off += 8
            ptype = 0x6558
        inner = d[off:]
        if ptype in (0x0800, 0x86DD):
            return self._ip(inner, vlan, ts, depth + 1, "gre")
        if ptype == 0x6558:
            ip, v = self._ethernet(inner, depth + 1)
            return self._ip(ip, vlan if vlan >= 0 else v, ts, depth + 1, "gre")
        raise NotIP

    def _udp_tunnel(self, sport, dport, p: bytes, vlan, ts, depth) -> PacketFields | None:
        """Decapsulate well-known UDP tunnels; None when the payload does not look like one."""
        ports = (sport, dport)
        try:
            if 3544 in ports:  # Teredo (RFC 4380): optional auth / origin indication, then IPv6
                off = 0
                if p[:2] == b"\x00\x01" and len(p) >= 4:
                    off = 4 + p[2] + p[3] + 8 + 1
                if p[off : off + 2] == b"\x00\x00":
                    off += 8
                if len(p) >= off + 40 and p[off] >> 4 == 6:
                    return self._ipv6(p[off:], vlan, ts, depth + 1, "teredo")
            elif 4789 in ports or 8472 in ports:  # VXLAN
                if len(p) >= 22 and p[0] & 0x08:
                    ip, v = self._ethernet(p[8:], depth + 1)
                    return self._ip(ip, vlan if vlan >= 0 else v, ts, depth + 1, "vxlan")
            elif 6081 in ports:  # Geneve
                if len(p) >= 8:
                    off = 8 + (p[0] & 0x3F) * 4
                    ptype = _be16(p, 2)[0]
                    if ptype == 0x6558:
                        ip, v = self._ethernet(p[off:], depth + 1)
                        return self._ip(ip, vlan if vlan >= 0 else v, ts, depth + 1, "geneve")
                    if ptype in (0x0800, 0x86DD):
                        return self._ip(p[off:], vlan, ts, depth + 1, "geneve")
            elif 2152 in ports:  # GTP-U G-PDU
                if len(p) >= 8 and p[0] >> 5 == 1 and p[1] == 0xFF:
                    off = 8
                    if p[0] & 0x07:
                        off = 12
                        nxt = p[11] if len(p) >= 12 else 0
                        while nxt and len(p) > off:
                            elen = p[off] * 4
                            if elen == 0 or len(p) < off + elen:
                                raise DecodeError("bad_gtp_extension")
                            nxt = p[off + elen - 1]
                            off += elen
                    if len(p) > off and p[off] >> 4 in (4, 6):
                        return self._ip(p[off:], vlan, ts, depth + 1, "gtp")
            elif 5247 in ports:  # CAPWAP data channel (RFC 5415)
                if len(p) >= 8 and p[0] == 0:
                    hlen = (p[1] >> 3) * 4
                    tbit = p[2] & 0x01
                    frame = p[hlen:]
                    if tbit and (p[2] >> 1) & 0x1F == 1:  # native frame format, WBID 1 = IEEE 802.11
                        ip = _ieee80211_to_ip(frame)
                        if ip is not None:
                            return self._ip(ip, vlan, ts, depth + 1, "capwap")
                    elif not tbit and len(frame) >= 14:
                        ip, v = self._ethernet(frame, depth + 1)
                        return self._ip(ip, vlan if vlan >= 0 else v, ts, depth + 1, "capwap")
        except NotIP:
            return None
        except DecodeError:
            return None  # not a well-formed tunnel: keep the outer UDP datagram
        return None


def _ieee80211_to_ip(f: bytes) -> bytes | None:
    """Return the IP packet inside an 802.11 data frame with LLC/SNAP, or None."""
    if len(f) < 24:
        return None
    fc, fflags = f[0], f[1]
    if (fc >> 2) & 3 != 2 and (fflags >> 2) & 3 == 2:
        fc, fflags = fflags, fc  # Cisco access points send the Frame Control field byte-swapped
    if (fc >> 2) & 3 != 2:  # not a data frame
        return None
    hdr = 24
    if fflags & 0x03 == 0x03:  # to-DS and from-DS: 4 addresses
        hdr += 6
    if fc & 0x80:  # QoS data
        hdr += 2
    if fflags & 0x80:  # HT control (order bit)
        hdr += 4
    llc = f[hdr : hdr + 8]
    if len(llc) == 8 and llc[:3] == b"\xaa\xaa\x03":
        et = _be16(llc, 6)[0]
        if et in (0x0800, 0x86DD):
            return f[hdr + 8 :]
    return None


class _Datagram:
    __slots__ = ("ts", "parts", "end")

    def __init__(self, ts: float):
        self.ts = ts
        self.parts: list[tuple[int, bytes]] = []
        self.end: int | None = None
