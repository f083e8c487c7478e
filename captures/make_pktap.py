#!/usr/bin/env python3
"""Make captures/enrollment-mac-pktap.pcap: the demo session as the Mac itself would have captured it with
``sudo tcpdump -i pktap,en0 -w ...`` (Apple PKTAP link type), each packet tagged with its process.

    python3 captures/make_pktap.py        (no root, no network; record_demo.py runs it after recording)

Input: captures/enrollment-troubleshooting.pcap and its truth file. Output: every frame to or from the Mac
(192.168.50.10), unchanged, behind a 108-byte PKTAP v1 header (little-endian, as macOS writes it): interface
en0, direction flag, protocol family, and the process fields (pid, command, effective pid and command).
Frames of other hosts (the Android phone, the on-prem server port of the SPAN) are left out: a Mac's own
capture does not see them.

The process of each exchange is the lab actor the recorder logged for it (truth ``actor``), under the name
macOS gives that program, truncated to 16 characters like the kernel's ``p_comm``. The browser exchange is
attributed the way macOS does it: WebKit's networking process (command ``com.apple.WebKit``) for Safari (the
effective process). Frames of no exchange (ARP) carry pid 0 and no command, as the kernel leaves them.
The pids are fixed numbers chosen here; a real Mac would show its own. Everything else about the frames is
what the lab recorded. tshark reads the file (``tshark -r ... -T fields -e pktap.cmdname -e pktap.pid``)
and ``tests/unit/test_pktap.py`` checks pcapaudit's per-flow process against the truth and against tshark.
"""
from __future__ import annotations

import ipaddress
import os
import struct
import sys

import dpkt
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = "enrollment-troubleshooting"
NAME = "enrollment-mac-pktap"
MAC = "192.168.50.10"
LINKTYPE_PKTAP = 258
DLT_EN10MB = 1
PTH_FLAG_DIR_IN, PTH_FLAG_DIR_OUT = 0x1, 0x2
AF_INET, AF_INET6_DARWIN = 2, 30
IFT_ETHER = 6
MAXCOMLEN = 16

# truth actor (its first word, lower case) -> (command, pid, effective command, effective pid)
PROCESSES = {
    "mdnsresponder": ("mDNSResponder", 191, None, None),
    "captive": ("captiveagent", 402, None, None),
    "timed": ("timed", 233, None, None),
    "mobileactivationd": ("mobileactivationd", 588, None, None),
    "cloudconfigurationd": ("cloudconfigurationd", 611, None, None),
    "mdmclient": ("mdmclient", 640, None, None),
    "apsd": ("apsd", 178, None, None),
    "kandji": ("Kandji Daemon", 733, None, None),
    "safari": ("com.apple.WebKit.Networking", 1204, "Safari", 1187),
}


def pktap_header(pid: int, comm: str, epid: int, ecomm: str, outbound: bool, family: int) -> bytes:
    """A PKTAP v1 header (struct pktap_header, 108 bytes, little-endian) for an Ethernet frame on en0."""
    def cstr(s: str) -> bytes:
        return s.encode()[:MAXCOMLEN].ljust(20, b"\0")  # char[MAXCOMLEN + 1], padded to 20 bytes

    return struct.pack(
        "<III24sIIIIi20sIHHi20s", 108, 1, DLT_EN10MB, b"en0", PTH_FLAG_DIR_OUT if outbound else PTH_FLAG_DIR_IN,
        family, 14, 0, pid, cstr(comm), 0, IFT_ETHER, 0, epid, cstr(ecomm),
    )


def exchanges(truth: dict) -> dict[tuple, tuple]:
    """(transport, client, client port, server, server port) -> process tuple, for the Mac's exchanges."""
    out = {}
    for e in truth["dns"] + truth["connections"]:
        if e["client"] != MAC:
            continue
        key = e["actor"].split()[0].lower()
        out[(e["transport"], e["client"], e["client_port"], e.get("server_ip") or e["server"],
             e.get("server_port", 53))] = PROCESSES[key]
    return out


def five_tuple(eth: dpkt.ethernet.Ethernet) -> tuple[str, str, str, int, int] | None:
    ip = eth.data
    if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
        return None
    l4 = ip.data
    if not isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
        return None
    proto = "tcp" if isinstance(l4, dpkt.tcp.TCP) else "udp"
    return proto, str(ipaddress.ip_address(ip.src)), str(ipaddress.ip_address(ip.dst)), l4.sport, l4.dport


def make(src: str, truth_path: str, out: str) -> tuple[int, int]:
    """Write ``out``; returns (frames written, frames with a process)."""
    with open(truth_path) as f:
        procs = exchanges(yaml.safe_load(f))
    written = attributed = 0
    with open(src, "rb") as fi, open(out, "wb") as fo:
        reader = dpkt.pcap.Reader(fi)
        fo.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, LINKTYPE_PKTAP))
        for ts, frame in reader:
            eth = dpkt.ethernet.Ethernet(frame)
            ip = eth.data
            if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                src_ip, dst_ip = str(ipaddress.ip_address(ip.src)), str(ipaddress.ip_address(ip.dst))
                if MAC not in (src_ip, dst_ip):
                    continue
                outbound = src_ip == MAC
                family = AF_INET if isinstance(ip, dpkt.ip.IP) else AF_INET6_DARWIN
            elif isinstance(ip, dpkt.arp.ARP):
                if MAC not in (str(ipaddress.ip_address(ip.spa)), str(ipaddress.ip_address(ip.tpa))):
                    continue
                outbound, family = str(ipaddress.ip_address(ip.spa)) == MAC, 0
            else:
                continue
            ft = five_tuple(eth)
            proc = None
            if ft is not None:
                proto, a, b, pa, pb = ft
                proc = procs.get((proto, a, pa, b, pb)) or procs.get((proto, b, pb, a, pa))
            comm, pid, ecomm, epid = proc if proc else ("", 0, None, None)
            hdr = pktap_header(pid, comm, epid or pid, ecomm or comm, outbound, family)
            sec, usec = divmod(round(ts * 1_000_000), 1_000_000)
            rec = hdr + frame
            fo.write(struct.pack("<IIII", sec, usec, len(rec), len(rec)))
            fo.write(rec)
            written += 1
            attributed += proc is not None
    return written, attributed


def main_counts() -> tuple[int, int]:
    """Make the file next to this script; returns (frames, frames with a process)."""
    out = os.path.join(HERE, f"{NAME}.pcap")
    n, k = make(os.path.join(HERE, f"{SOURCE}.pcap"), os.path.join(HERE, f"{SOURCE}.truth.yaml"), out)
    print(f"{NAME}.pcap: {n} frames, {k} with a process")
    return n, k


def main() -> int:
    main_counts()
    return 0


if __name__ == "__main__":
    sys.exit(main())
