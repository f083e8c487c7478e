"""ICMP/ICMPv6 error messages: the quoted datagram tells which flow the error is about.

RFC 792 / RFC 4443: an error message quotes the offending packet's IP header and at least the first
8 bytes of its payload, which hold the TCP/UDP ports.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

# type -> name for the error types the auditor ties back to flows
ICMP4_ERRORS = {3: "unreachable", 11: "time_exceeded", 12: "parameter_problem", 5: "redirect"}
ICMP6_ERRORS = {1: "unreachable", 2: "packet_too_big", 3: "time_exceeded", 4: "parameter_problem"}

UNREACH4 = {0: "net", 1: "host", 2: "protocol", 3: "port", 4: "fragmentation needed", 9: "net prohibited",
            10: "host prohibited", 13: "administratively prohibited"}  # fmt: skip
UNREACH6 = {0: "no route", 1: "administratively prohibited", 3: "address", 4: "port", 5: "policy",
            6: "reject route"}  # fmt: skip


class Quoted(NamedTuple):
    """The 5-tuple of the packet an ICMP error quotes (as the original sender sent it)."""

    ipver: int
    proto: int
    src: bytes
    dst: bytes
    sport: int
    dport: int


def is_error(ipver: int, icmp_type: int) -> bool:
    """True for ICMP types that quote a datagram."""
    return icmp_type in (ICMP4_ERRORS if ipver == 4 else ICMP6_ERRORS)


def is_unreachable(ipver: int, icmp_type: int) -> bool:
    """Destination unreachable (v4 type 3, v6 type 1)."""
    return icmp_type == (3 if ipver == 4 else 1)


def blocks(ipver: int, icmp_type: int, code: int) -> bool:
    """A destination unreachable that says the path refused the packet: every code but IPv4's
    "fragmentation needed" (code 4, path MTU discovery, like IPv6's Packet Too Big: a size, not a block)."""
    return is_unreachable(ipver, icmp_type) and not (ipver == 4 and code == 4)


def describe(ipver: int, icmp_type: int, code: int) -> str:
    """'port unreachable', 'administratively prohibited'..."""
    if is_unreachable(ipver, icmp_type):
        name = (UNREACH4 if ipver == 4 else UNREACH6).get(code, f"code {code}")
        return name if "prohibited" in name else f"{name} unreachable"
    names = ICMP4_ERRORS if ipver == 4 else ICMP6_ERRORS
    return f"{names.get(icmp_type, f'type {icmp_type}')} (code {code})"


def parse_quoted(q: bytes) -> Quoted:
    """Parse the quoted IP header + 8 bytes. Raises ValueError when too short or not IP."""
    if len(q) < 1:
        raise ValueError("empty quoted datagram")
    ver = q[0] >> 4
    if ver == 4:
        ihl = (q[0] & 0x0F) * 4
        if ihl < 20 or len(q) < ihl + 4:
            raise ValueError("quoted IPv4 header truncated")
        proto = q[9]
        src, dst = q[12:16], q[16:20]
        l4 = q[ihl:]
    elif ver == 6:
        if len(q) < 44:
            raise ValueError("quoted IPv6 header truncated")
        proto = q[6]
        src, dst = q[8:24], q[24:40]
        l4 = q[40:]
    else:
        raise ValueError(f"quoted datagram has IP version {ver}")
    sport = dport = 0
    if proto in (6, 17, 132) and len(l4) >= 4:
        sport, dport = struct.unpack_from(">HH", l4)
    return Quoted(ver, proto, bytes(src), bytes(dst), sport, dport)
