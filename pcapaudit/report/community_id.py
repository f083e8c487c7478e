"""Community ID v1 flow hashing (https://github.com/corelight/community-id-spec): a flow identifier
Zeek, Suricata, Arkime, Wireshark and Elastic compute the same way, to join pcapaudit's flows to theirs.

``1:`` + base64(SHA-1(seed . saddr . daddr . proto . 0 . sport . dport)), all in network byte order,
the endpoints ordered so the smaller address (then port) comes first. Protocols without ports hash
without them. ICMP would take its type and code as ports; the flows table does not record them, so its
ICMP (and other-protocol) flows have no Community ID, as the spec allows.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import socket
import struct

PROTO_NUMBERS = {"tcp": 6, "udp": 17}
_PAD = {p: struct.pack("!BB", p, 0) for p in range(256)}
_PORTS = struct.Struct("!HH")


@functools.lru_cache(maxsize=1 << 16)  # a capture's flows share few addresses: most lookups are hits
def _packed(ip: str) -> bytes | None:
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    except (OSError, TypeError, ValueError):
        return None


def community_id(proto: int, saddr: str, daddr: str, sport: int | None = None, dport: int | None = None,
                 seed: int = 0, one_way: bool = False) -> str | None:  # fmt: skip
    """The Community ID v1 of a flow; None when an address is not one (or the two are of different
    families). ``one_way``: keep the endpoints' order (one-way ICMP messages)."""
    a, b = _packed(saddr), _packed(daddr)
    if a is None or b is None or len(a) != len(b):
        return None
    ports = sport is not None and dport is not None
    if not one_way and (b < a or (a == b and ports and dport < sport)):
        a, b, sport, dport = b, a, dport, sport
    data = (seed & 0xFFFF).to_bytes(2, "big") + a + b + _PAD[proto & 0xFF]
    if ports:
        data += _PORTS.pack(sport, dport)
    return "1:" + binascii.b2a_base64(hashlib.sha1(data).digest(), newline=False).decode("ascii")


def flow_community_id(transport: str, src_ip: str | None, dst_ip: str | None, src_port, dst_port) -> str | None:
    """The Community ID of a TCP or UDP flow of the flows table (None for ICMP and other protocols)."""
    proto = PROTO_NUMBERS.get(transport)
    if proto is None or not src_ip or not dst_ip or src_port is None or dst_port is None:
        return None
    return community_id(proto, src_ip, dst_ip, int(src_port), int(dst_port))
