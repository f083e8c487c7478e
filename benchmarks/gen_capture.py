#!/usr/bin/env python3
"""Deterministic synthetic capture generator for the pcapaudit benchmarks.

Writes a classic little-endian pcap (Ethernet link type, microsecond timestamps)
or a pcapng file whose packet count is exactly --packets, with traffic that
resembles a corporate SPAN port full of Apple / MDM devices:

* TCP TLS flows to 443 / 5223 / 8443 (plus a few on 2197 and 5228): 3-way
  handshake, a ClientHello with a real SNI extension (some without SNI), about
  40 % of them split over two TCP segments (post-quantum key shares split at the
  MSS, the rest at an arbitrary offset, some with the SNI extension straddling
  the split), about 5 % of all TLS flows with the two segments delivered out of
  order, a TLS 1.3 server flight or a TLS 1.2 ServerHello + Certificate (real
  DER certificates, deterministic ECDSA), encrypted application data records in
  both directions with correct sequence / acknowledgement numbers, FIN or RST
  teardown (or left open), some reset by a "firewall" right after the
  ClientHello;
* DNS over UDP (A / AAAA / HTTPS / PTR, CNAME chains, NXDOMAIN, NODATA, a few
  unanswered) -- A / AAAA answers are the addresses the TLS / QUIC flows use;
* QUIC v1 over UDP 443 with real client Initials protected per RFC 9001
  (HKDF from the DCID with the v1 salt, AES-128-GCM payload protection,
  AES-ECB header protection) carrying a ClientHello with SNI, a real protected
  server Initial (ServerHello), opaque Handshake packets, then short-header
  1-RTT packets of random bytes;
* unanswered TCP SYNs with 1-3 retransmissions, SYN -> RST rejections, ICMP /
  ICMPv6 port unreachable for a few UDP flows, plain HTTP on port 80, NTP,
  and some flows already established before the capture started (no SYN);
* about 10 % IPv6, about 10 % of the devices behind 802.1Q VLAN tags.

All checksums (IPv4 header, TCP, UDP, ICMP, ICMPv6) are computed and correct;
consumers must not rely on that, real captures often carry offloaded (bad)
checksums.  Frames are never truncated (caplen == len).

The output is a pure function of (--packets, --seed, --format, --rate): the same
bytes on every run and machine (no wall clock, no hash-order dependence).

With --truth the generator writes a JSON file describing what is in the capture
(see README.md in this directory).  A TLS / QUIC flow is listed only if its
whole ClientHello / first Initial made it into the file: the file stops at
exactly --packets packets, mid-flow if need be.

Sizes with the default seed and rate (classic pcap; generation time measured on
2 Xeon cores, Python 3.11; the first seconds of every capture ramp up to the
rate while flows start):
    --packets 20000     ~ 9 MB,    ~1 s of capture time,   ~0.6 s to generate
    --packets 200000    ~ 115 MB,  ~6.5 s,                 ~3.5 s
    --packets 1000000   ~ 590 MB,  ~27 s,                  ~15 s
    --packets 2000000   ~ 1.17 GB, ~54 s,                  ~30 s (+4 s for --truth),
                                                           peak RSS ~0.4 GB
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import hmac
import ipaddress
import json
import os
import random
import struct
import sys
import time

try:  # cryptography is only needed for QUIC protection and certificates
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.x509.oid import NameOID
except ImportError as exc:  # pragma: no cover
    sys.exit(f"gen_capture.py needs the 'cryptography' package: {exc}")

GENERATOR_VERSION = 1
EPOCH0 = 1717405200  # 2024-06-03 09:00:00 UTC, start of every capture
DEFAULT_RATE = 40000  # target packets per second of capture time

# TCP ports the generator uses for TLS besides 443 (tshark needs "-d" for them)
TLS_EXTRA_PORTS = (5223, 8443, 5228, 2197)

QUIC_V1_SALT = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")

# TCP flags
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
M32 = 0xFFFFFFFF

# ----------------------------------------------------------------------------
# Host tables: name, weight, {port: weight}, ip group, cert group, profile
# ----------------------------------------------------------------------------

KANDJI_TENANTS = (
    "7f3c2a1e-9b4d-4c6a-8e2f-1a2b3c4d5e6f",
    "c0ffee00-1234-4abc-9def-0123456789ab",
    "5a6b7c8d-0e1f-4a2b-8c3d-4e5f60718293",
)

TLS_HOSTS = [
    ("gdmf.apple.com", 5, {443: 1}, "apple", "apple", "mdm"),
    ("mdmenrollment.apple.com", 2, {443: 1}, "apple", "apple", "mdm"),
    ("deviceenrollment.apple.com", 1.5, {443: 1}, "apple", "apple", "mdm"),
    ("iprofiles.apple.com", 1.5, {443: 1}, "apple", "apple", "mdm"),
    ("albert.apple.com", 1, {443: 1}, "apple", "apple", "mdm"),
    ("identity.apple.com", 1.5, {443: 1}, "apple", "apple", "api"),
    ("axm-adm-mdm.apple.com", 1, {443: 1}, "apple", "apple", "mdm"),
    ("gs.apple.com", 1, {443: 1}, "apple", "apple", "api"),
    ("ppq.apple.com", 1, {443: 1}, "apple", "apple", "api"),
    ("xp.apple.com", 2, {443: 1}, "apple", "apple", "api"),
    ("mesu.apple.com", 1, {443: 1}, "apple", "apple", "api"),
    ("swscan.apple.com", 1, {443: 1}, "apple", "apple", "api"),
    ("updates.cdn-apple.com", 0.3, {443: 1}, "apple", "apple", "bulk"),
    ("swcdn.apple.com", 0.15, {443: 1}, "apple", "apple", "bulk"),
    ("setup.icloud.com", 1, {443: 1}, "apple", "apple", "api"),
    ("gateway.icloud.com", 2, {443: 1}, "apple", "apple", "api"),
    ("vpp.itunes.apple.com", 1, {443: 1}, "apple", "apple", "api"),
    ("1-courier.push.apple.com", 3, {5223: 8, 443: 2}, "apple", "apple-push", "push"),
    ("17-courier.push.apple.com", 2.5, {5223: 8, 443: 2}, "apple", "apple-push", "push"),
    ("api.push.apple.com", 1, {443: 9, 2197: 1}, "apple", "apple-push", "api"),
    ("acme.jamfcloud.com", 4, {443: 6, 8443: 4}, "aws", "jamf", "mdm"),
    ("globex.jamfcloud.com", 2, {443: 6, 8443: 4}, "aws", "jamf", "mdm"),
    ("use1-jcds.services.jamfcloud.com", 0.3, {443: 1}, "aws", "jamf", "bulk"),
    ("jamf.corp.example.com", 1.5, {8443: 1}, "internal", "internal", "mdm"),
    (f"{KANDJI_TENANTS[0]}.web-api.kandji.io", 2, {443: 1}, "aws", "kandji", "mdm"),
    (f"{KANDJI_TENANTS[1]}.web-api.kandji.io", 1, {443: 1}, "aws", "kandji", "mdm"),
    (f"{KANDJI_TENANTS[2]}.web-api.kandji.io", 0.5, {443: 1}, "aws", "kandji", "mdm"),
    ("mtalk.google.com", 2, {5228: 7, 443: 3}, "google", "google", "push"),
    ("android.googleapis.com", 1.5, {443: 1}, "google", "google", "api"),
    ("fcm.googleapis.com", 1, {443: 1}, "google", "google", "api"),
    ("www.google.com", 1.5, {443: 1}, "google", "google", "web"),
    ("www.example.org", 1, {443: 1}, "example", "example", "web"),
    ("login.microsoftonline.com", 1.5, {443: 1}, "microsoft", "microsoft", "api"),
    ("outlook.office365.com", 1.5, {443: 1}, "microsoft", "microsoft", "api"),
]

QUIC_HOSTS = [
    ("www.google.com", 3, "google"),
    ("clients4.google.com", 1, "google"),
    ("fonts.gstatic.com", 1, "google"),
    ("www.youtube.com", 2, "google"),
    ("i.ytimg.com", 1, "google"),
    ("mask.icloud.com", 2, "apple"),
    ("mask-h2.icloud.com", 0.5, "apple"),
    ("cdnjs.cloudflare.com", 0.5, "cloudflare"),
]

HTTP_HOSTS = [
    ("captive.apple.com", 3, "apple"),
    ("updates-http.cdn-apple.com", 0.2, "apple"),
    ("connectivitycheck.gstatic.com", 1, "google"),
]

NXDOMAIN_NAMES = (
    "wpad.corp.example.com", "isatap.corp.example.com", "_ldap._tcp.dc._msdcs.corp.example.com",
    "jamf-old.corp.example.com", "gdmf.apple.co", "acme.jamfcloud.co",
)

V4_PATTERNS = {
    "apple": ("17.253.{}.{}", "17.57.{}.{}", "17.188.{}.{}", "17.32.{}.{}", "17.248.{}.{}"),
    "google": ("142.250.{}.{}", "172.217.{}.{}", "216.58.{}.{}", "74.125.{}.{}"),
    "aws": ("3.{}.{}.{}", "52.{}.{}.{}", "54.{}.{}.{}", "18.{}.{}.{}"),
    "microsoft": ("20.190.{}.{}", "40.126.{}.{}", "52.96.{}.{}"),
    "example": ("93.184.215.{}", "96.7.128.{}"),
    "cloudflare": ("104.16.{}.{}", "104.17.{}.{}"),
    "internal": ("10.50.1.{}",),
}
V6_PATTERNS = {
    "apple": ("2620:149:a44:{:x}::{:x}", "2a01:b740:a42:{:x}::{:x}"),
    "google": ("2607:f8b0:4005:{:x}::{:x}", "2a00:1450:4001:{:x}::{:x}"),
    "aws": ("2600:1f18:24e6:{:x}::{:x}",),
    "microsoft": ("2603:1036:303:{:x}::{:x}",),
    "example": ("2606:2800:21f:{:x}::{:x}",),
    "cloudflare": ("2606:4700::{:x}:{:x}",),
}

# certificate groups: (intermediate CN, intermediate O, root CN, leaf CN, extra SANs)
CERT_ISSUERS = {
    "apple": ("Apple Public Server ECC CA 12 - G1", "Apple Inc.", "Apple Root CA - G3"),
    "apple-push": ("Apple Public Server ECC CA 12 - G1", "Apple Inc.", "Apple Root CA - G3"),
    "google": ("WE2", "Google Trust Services", "GTS Root R4"),
    "jamf": ("Amazon ECDSA 256 M02", "Amazon", "Amazon Root CA 3"),
    "kandji": ("Amazon ECDSA 256 M02", "Amazon", "Amazon Root CA 3"),
    "example": ("DigiCert Global G3 TLS ECC SHA384 2020 CA1", "DigiCert Inc", "DigiCert Global Root G3"),
    "microsoft": ("Microsoft Azure ECC TLS Issuing CA 03", "Microsoft Corporation", "DigiCert Global Root G3"),
    "internal": ("Corp Example Issuing CA 1", "Corp Example", "Corp Example Root CA"),
    "inspection": ("Zscaler Intermediate Root CA (zscaler.net)", "Zscaler Inc.", "Zscaler Root CA"),
}

APPLE_OUIS = (b"\x3c\x22\xfb", b"\xa4\x83\xe7", b"\xf0\x18\x98", b"\x88\x66\x5a", b"\xbc\xd0\x74")
GATEWAY_MAC = b"\x00\x1c\x7f\x3a\x10\x01"


def weighted(items, weight_index=1):
    """Return (population, cumulative weights) for random.choices."""
    acc, cum = 0.0, []
    for it in items:
        acc += it[weight_index]
        cum.append(acc)
    return list(items), cum


# ----------------------------------------------------------------------------
# Checksums and packet builders
# ----------------------------------------------------------------------------

TCP4 = struct.Struct("!BBHHHBBH4s4sHHIIHHHH")
TCP6 = struct.Struct("!IHBB16s16sHHIIHHHH")
UDP4 = struct.Struct("!BBHHHBBH4s4sHHHH")
UDP6 = struct.Struct("!IHBB16s16sHHHH")
IP4 = struct.Struct("!BBHHHBBH4s4s")
IP6 = struct.Struct("!IHBB16s16s")
PCAP_REC = struct.Struct("<IIII")
EPB_HDR = struct.Struct("<IIIIIII")


def wsum(data: bytes) -> int:
    """Sum of the big-endian 16-bit words of data, modulo 0xffff (zero padded)."""
    v = int.from_bytes(data, "big")
    if len(data) & 1:
        v <<= 8
    return v % 0xFFFF


def csum_of(s: int) -> int:
    """Internet checksum for an (unfolded) word sum of non-zero data.

    s % 0xffff == 0 means the ones'-complement sum is 0xffff (-0), whose
    complement is 0x0000; 0xffff would be flagged by Wireshark (RFC 1624).
    UDP, where 0 means "no checksum", uses udp_csum() instead.
    """
    r = s % 0xFFFF
    return 0xFFFF - r if r else 0


def udp_csum(s: int) -> int:
    """UDP checksum: a computed 0x0000 is sent as 0xffff (RFC 768)."""
    return 0xFFFF - s % 0xFFFF


class Side:
    """One direction of a flow: link/IP/port template plus running IP id."""

    __slots__ = ("eth", "v6", "src", "dst", "sport", "dport", "ttl", "ipbase", "psum", "ipid", "vtf", "proto")

    def __init__(self, smac, dmac, vlan, src, dst, sport, dport, ttl, proto, ipid, flowlabel=0):
        self.v6 = len(src) == 16
        etype = b"\x86\xdd" if self.v6 else b"\x08\x00"
        if vlan:
            self.eth = dmac + smac + b"\x81\x00" + struct.pack("!H", vlan) + etype
        else:
            self.eth = dmac + smac + etype
        self.src, self.dst, self.sport, self.dport = src, dst, sport, dport
        self.ttl, self.proto, self.ipid = ttl, proto, ipid
        addr = wsum(src) + wsum(dst)
        self.ipbase = 0x4500 + 0x4000 + (ttl << 8 | proto) + addr
        self.psum = addr + proto + sport + dport
        self.vtf = 0x60000000 | flowlabel

    def tcp(self, seq, ack, flags, win, payload=b"", opts=b""):
        hl = 20 + len(opts)
        tl = hl + len(payload)
        seq &= M32
        ack &= M32
        of = (hl << 10) | flags
        body = opts + payload if opts else payload
        s = self.psum + tl + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF) + of + win
        if body:
            v = int.from_bytes(body, "big")
            if len(body) & 1:
                v <<= 8
            s += v
        c = csum_of(s)
        if self.v6:
            return self.eth + TCP6.pack(self.vtf, tl, 6, self.ttl, self.src, self.dst,
                                        self.sport, self.dport, seq, ack, of, win, c, 0) + body
        ipid = self.ipid = (self.ipid + 1) & 0xFFFF
        tot = tl + 20
        return self.eth + TCP4.pack(0x45, 0, tot, ipid, 0x4000, self.ttl, 6,
                                    csum_of(self.ipbase + tot + ipid),
                                    self.src, self.dst, self.sport, self.dport,
                                    seq, ack, of, win, c, 0) + body

    def udp(self, payload):
        ul = 8 + len(payload)
        v = int.from_bytes(payload, "big")
        if ul & 1:
            v <<= 8
        c = udp_csum(self.psum + ul + ul + v)
        if self.v6:
            return self.eth + UDP6.pack(self.vtf, ul, 17, self.ttl, self.src, self.dst,
                                        self.sport, self.dport, ul, c) + payload
        ipid = self.ipid = (self.ipid + 1) & 0xFFFF
        tot = ul + 20
        return self.eth + UDP4.pack(0x45, 0, tot, ipid, 0x4000, self.ttl, 17,
                                    csum_of(self.ipbase + tot + ipid),
                                    self.src, self.dst, self.sport, self.dport, ul, c) + payload

    def icmp(self, typ, code, data):
        """ICMP (v4) or ICMPv6 error message carrying data (the invoking packet)."""
        body = struct.pack("!BBHI", typ, code, 0, 0) + data
        if self.v6:
            s = wsum(self.src) + wsum(self.dst) + len(body) + 58 + wsum(body)
            body = body[:2] + struct.pack("!H", csum_of(s)) + body[4:]
            return self.eth + IP6.pack(self.vtf, len(body), 58, self.ttl, self.src, self.dst) + body
        body = body[:2] + struct.pack("!H", csum_of(wsum(body))) + body[4:]
        ipid = self.ipid = (self.ipid + 1) & 0xFFFF
        tot = 20 + len(body)
        base = 0x4500 + 0x4000 + (self.ttl << 8 | 1) + wsum(self.src) + wsum(self.dst)
        return self.eth + IP4.pack(0x45, 0, tot, ipid, 0x4000, self.ttl, 1,
                                   csum_of(base + tot + ipid), self.src, self.dst) + body


# ----------------------------------------------------------------------------
# TLS messages
# ----------------------------------------------------------------------------

GREASE = tuple(0x0A0A + 0x1010 * i for i in range(16))


def ext(etype: int, data: bytes) -> bytes:
    return struct.pack("!HH", etype, len(data)) + data


def tls_record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def hs_msg(htype: int, body: bytes) -> bytes:
    return bytes([htype]) + len(body).to_bytes(3, "big") + body


def client_hello(rng, sni, alpn, *, quic_tp=None, pq=False, shuffle=False, pad_to=0):
    """Build a ClientHello handshake message.

    Returns (message, (sni_start, sni_end)) with the SNI extension's offsets
    inside the message, or (message, None) when there is no SNI.
    """
    quic = quic_tp is not None
    grease = rng.random() < 0.6
    suites = [0x1301, 0x1302, 0x1303]
    if not quic:
        suites += [0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
    if grease:
        suites.insert(0, GREASE[rng.randrange(16)])
    groups = ([0x11EC] if pq else []) + [0x001D, 0x0017, 0x0018]
    if grease:
        groups.insert(0, GREASE[rng.randrange(16)])
    shares = b""
    if pq:
        shares += struct.pack("!HH", 0x11EC, 1216) + rng.randbytes(1216)
    shares += struct.pack("!HH", 0x001D, 32) + rng.randbytes(32)
    exts = []  # list of (etype, data)
    if sni:
        name = sni.encode("ascii")
        exts.append((0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name))
    exts.append((23, b""))
    exts.append((0xFF01, b"\x00"))
    exts.append((10, struct.pack("!H", 2 * len(groups)) + struct.pack(f"!{len(groups)}H", *groups)))
    if not quic:
        exts.append((11, b"\x01\x00"))
        exts.append((35, b""))
    if alpn:
        plist = b"".join(bytes([len(p)]) + p.encode() for p in alpn)
        exts.append((16, struct.pack("!H", len(plist)) + plist))
    exts.append((5, b"\x01\x00\x00\x00\x00"))
    sigalgs = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
    exts.append((13, struct.pack("!H", 16) + struct.pack("!8H", *sigalgs)))
    exts.append((18, b""))
    exts.append((51, struct.pack("!H", len(shares)) + shares))
    exts.append((45, b"\x01\x01"))
    exts.append((43, b"\x02\x03\x04" if quic else b"\x04\x03\x04\x03\x03"))
    exts.append((27, b"\x02\x00\x02"))
    if quic:
        exts.append((0x39, quic_tp))
    if shuffle:
        rng.shuffle(exts)
    if grease:
        exts.insert(0, (GREASE[rng.randrange(16)], b""))
        exts.append((GREASE[rng.randrange(16)], b"\x00"))
    sid = b"" if quic else rng.randbytes(32)
    head = (struct.pack("!H", 0x0303) + rng.randbytes(32) + bytes([len(sid)]) + sid
            + struct.pack("!H", 2 * len(suites)) + struct.pack(f"!{len(suites)}H", *suites) + b"\x01\x00")
    ext_bytes = b"".join(ext(t, d) for t, d in exts)
    if pad_to and not quic:
        cur = 4 + len(head) + 2 + len(ext_bytes)
        if cur + 4 < pad_to:
            ext_bytes += ext(21, bytes(pad_to - cur - 4))
    msg = hs_msg(1, head + struct.pack("!H", len(ext_bytes)) + ext_bytes)
    span = None
    if sni:
        off = 4 + len(head) + 2
        for t, d in exts:
            if t == 0:
                span = (off, off + 4 + len(d))
                break
            off += 4 + len(d)
    return msg, span


def server_hello(rng, tls13: bool, sid: bytes, suite: int, alpn=None) -> bytes:
    if tls13:
        exts = ext(43, b"\x03\x04") + ext(51, struct.pack("!HH", 0x001D, 32) + rng.randbytes(32))
    else:
        exts = ext(0xFF01, b"\x00") + ext(23, b"") + ext(11, b"\x01\x00")
        if alpn:
            exts += ext(16, struct.pack("!HB", len(alpn) + 1, len(alpn)) + alpn.encode())
    body = (struct.pack("!H", 0x0303) + rng.randbytes(32) + bytes([len(sid)]) + sid
            + struct.pack("!HB", suite, 0) + struct.pack("!H", len(exts)) + exts)
    return hs_msg(2, body)


# ----------------------------------------------------------------------------
# Certificates (deterministic: derived EC keys, RFC 6979 ECDSA signatures)
# ----------------------------------------------------------------------------

def _key(label: str):
    d = int.from_bytes(hashlib.sha256(b"pcapaudit-bench:" + label.encode()).digest(), "big")
    return ec.derive_private_key(d % (2 ** 255 - 19) + 1, ec.SECP256R1())


def _name(cn, org):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer, pubkey, signer, serial_label, sans=None, ca=False):
    import datetime
    nb = datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc)
    na = datetime.datetime(2025, 3, 1 if not ca else 2, tzinfo=datetime.timezone.utc)
    serial = int.from_bytes(hashlib.sha256(serial_label.encode()).digest()[:16], "big") >> 1
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pubkey)
         .serial_number(serial).not_valid_before(nb).not_valid_after(na)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    cert = b.sign(signer, hashes.SHA256(), ecdsa_deterministic=True)
    from cryptography.hazmat.primitives.serialization import Encoding
    return cert.public_bytes(Encoding.DER)


def build_certificates():
    """Return {group: (chain_der_list, leaf_cn, issuer_cn, issuer_o)}."""
    sans_by_group = {}
    for name, _w, _p, _ipg, cg, _prof in TLS_HOSTS:
        sans_by_group.setdefault(cg, []).append(name)
    leaf_names = {
        "apple": ["*.apple.com", "*.icloud.com", "*.cdn-apple.com", "*.itunes.apple.com"],
        "apple-push": ["*.push.apple.com"],
        "google": ["*.google.com", "*.googleapis.com", "mtalk.google.com"],
        "jamf": ["*.jamfcloud.com", "*.services.jamfcloud.com"],
        "kandji": ["*.web-api.kandji.io", "*.kandji.io"],
        "example": ["www.example.org", "example.org"],
        "microsoft": ["login.microsoftonline.com", "outlook.office365.com"],
        "internal": ["jamf.corp.example.com"],
    }
    out = {}
    for group, (icn, iorg, rcn) in CERT_ISSUERS.items():
        rkey, ikey = _key("root:" + rcn), _key("int:" + icn)
        int_der = _cert(_name(icn, iorg), _name(rcn, iorg), ikey.public_key(), rkey, "int:" + icn, ca=True)
        if group == "inspection":
            continue
        sans = leaf_names[group]
        lkey = _key("leaf:" + group)
        leaf_der = _cert(_name(sans[0], iorg if group != "internal" else "Corp Example"), _name(icn, iorg),
                         lkey.public_key(), ikey, "leaf:" + group, sans=sans)
        out[group] = ([leaf_der, int_der], sans[0], icn, iorg)
        # the same leaf names minted by a TLS-inspection proxy
        zcn, zorg, zroot = CERT_ISSUERS["inspection"]
        zk, zr = _key("int:" + zcn), _key("root:" + zroot)
        zint = _cert(_name(zcn, zorg), _name(zroot, zorg), zk.public_key(), zr, "int:" + zcn, ca=True)
        zleaf = _cert(_name(sans[0], zorg), _name(zcn, zorg), lkey.public_key(), zk, "zleaf:" + group, sans=sans)
        out["inspection:" + group] = ([zleaf, zint], sans[0], zcn, zorg)
    return out


def certificate_msg(chain) -> bytes:
    certs = b"".join(len(c).to_bytes(3, "big") + c for c in chain)
    return hs_msg(11, len(certs).to_bytes(3, "big") + certs)


# ----------------------------------------------------------------------------
# QUIC v1 (RFC 9000 / 9001)
# ----------------------------------------------------------------------------

def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def quic_initial_keys(dcid: bytes, server: bool):
    initial = hkdf_extract(QUIC_V1_SALT, dcid)
    secret = hkdf_expand_label(initial, b"server in" if server else b"client in", 32)
    return (hkdf_expand_label(secret, b"quic key", 16), hkdf_expand_label(secret, b"quic iv", 12),
            hkdf_expand_label(secret, b"quic hp", 16))


def varint(v: int) -> bytes:
    if v < 0x40:
        return bytes([v])
    if v < 0x4000:
        return struct.pack("!H", 0x4000 | v)
    if v < 0x40000000:
        return struct.pack("!I", 0x80000000 | v)
    return struct.pack("!Q", 0xC000000000000000 | v)


def quic_protect_long(ptype, dcid, scid, pn, pn_len, plain, keys, token=b"") -> bytes:
    """Build and protect a long-header packet (Initial: ptype 0)."""
    key, iv, hp = keys
    first = 0xC0 | (ptype << 4) | (pn_len - 1)
    hdr = bytes([first]) + b"\x00\x00\x00\x01" + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    if ptype == 0:
        hdr += varint(len(token)) + token
    hdr += struct.pack("!H", 0x4000 | (pn_len + len(plain) + 16))
    pn_off = len(hdr)
    hdr += pn.to_bytes(pn_len, "big")
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    ct = AESGCM(key).encrypt(nonce, plain, hdr)
    sample = ct[4 - pn_len:20 - pn_len]
    mask = Cipher(algorithms.AES(hp), modes.ECB()).encryptor().update(sample)
    out = bytearray(hdr + ct)
    out[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        out[pn_off + i] ^= mask[1 + i]
    return bytes(out)


def quic_transport_params(rng, scid: bytes) -> bytes:
    def tp(pid, val: bytes):
        return varint(pid) + varint(len(val)) + val
    return (tp(0x01, varint(30000)) + tp(0x03, varint(1472)) + tp(0x04, varint(15728640))
            + tp(0x05, varint(6291456)) + tp(0x06, varint(6291456)) + tp(0x07, varint(6291456))
            + tp(0x08, varint(100)) + tp(0x09, varint(103)) + tp(0x0F, scid)
            + tp(27 + 31 * rng.randrange(1, 60), rng.randbytes(rng.randrange(0, 9))))  # GREASE parameter


def quic_client_initial(rng, sni, dcid, scid, size=1250) -> bytes:
    """A protected client Initial carrying a ClientHello (padded to size bytes)."""
    ch, _span = client_hello(rng, sni, ["h3"], quic_tp=quic_transport_params(rng, scid),
                             shuffle=rng.random() < 0.5)
    crypto = b"\x06" + varint(0) + varint(len(ch)) + ch
    pn_len = 1 if rng.random() < 0.7 else 2
    pn = 0 if pn_len == 1 else rng.randrange(0, 256)
    hlen = 1 + 4 + 1 + len(dcid) + 1 + len(scid) + 1 + 2 + pn_len
    plain_len = max(size - hlen - 16, len(crypto) + 4)
    plain = crypto + bytes(plain_len - len(crypto))
    return quic_protect_long(0, dcid, scid, pn, pn_len, plain, quic_initial_keys(dcid, False))


def quic_server_initial(rng, odcid, client_scid, server_cid) -> bytes:
    sh = server_hello(rng, True, b"", 0x1301)
    ack = b"\x02\x00\x00\x00\x00"  # ACK largest 0, delay 0, 0 ranges, first range 0
    crypto = b"\x06" + varint(0) + varint(len(sh)) + sh
    return quic_protect_long(0, client_scid, server_cid, 0, 1, ack + crypto, quic_initial_keys(odcid, True))


def quic_opaque_long(rng, ptype, dcid, scid, size) -> bytes:
    """A long-header packet (e.g. Handshake) whose protected part is random bytes."""
    first = 0xC0 | (ptype << 4) | rng.randrange(16)
    hdr = bytes([first]) + b"\x00\x00\x00\x01" + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    rest = max(size - len(hdr) - 2, 24)
    return hdr + struct.pack("!H", 0x4000 | rest) + rng.randbytes(rest)


# ----------------------------------------------------------------------------
# DNS
# ----------------------------------------------------------------------------

def dns_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def dns_query(qid, name, qtype, edns) -> bytes:
    msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns else 0) + dns_name(name) + struct.pack("!HH", qtype, 1)
    if edns:
        msg += b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    return msg


def dns_response(qid, name, qtype, rcode, cname, addrs, ttl, edns) -> bytes:
    q = dns_name(name) + struct.pack("!HH", qtype, 1)
    ans = b""
    count = 0
    ptr = 0xC00C
    if rcode == 0 and addrs:
        if cname:
            ans += struct.pack("!HHHIH", ptr, 5, 1, ttl, len(dns_name(cname))) + dns_name(cname)
            ptr = 0xC000 | (12 + len(q) + 12)
            count += 1
        for a in addrs:
            ans += struct.pack("!HHHIH", ptr, 28 if len(a) == 16 else 1, 1, ttl, len(a)) + a
            count += 1
    flags = 0x8180 | rcode
    msg = struct.pack("!HHHHHH", qid, flags, 1, count, 0, 1 if edns else 0) + q + ans
    if edns:
        msg += b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    return msg


# ----------------------------------------------------------------------------
# The generator
# ----------------------------------------------------------------------------

class Client:
    __slots__ = ("mac", "v4", "v6", "vlan")


class Gen:
    def __init__(self, seed: int, rate: int):
        self.rng = rng = random.Random(seed)
        self.rate = rate
        self.rb = rng.randbytes(1 << 20)  # random bytes for opaque payloads
        self.used = set()
        self.flows = []  # truth records of flows (non-DNS), in creation order
        self.dns = []  # truth records of DNS queries
        self.counts = {}
        # clients
        self.clients = []
        for i in range(1500):
            c = Client()
            c.mac = APPLE_OUIS[rng.randrange(len(APPLE_OUIS))] + rng.randbytes(3)
            r = rng.random()
            net, c.vlan = (20, 0) if r < 0.9 else ((30, 30) if r < 0.95 else (40, 40))
            c.v4 = bytes([10, net, i // 240, 10 + i % 240])
            c.v6 = (ipaddress.IPv6Address(f"2001:db8:{net}::").packed[:8] + rng.randbytes(8)) if rng.random() < 0.6 else None
            self.clients.append(c)
        self.client_cum = []
        acc = 0.0
        for _ in self.clients:
            acc += rng.paretovariate(1.5)
            self.client_cum.append(acc)
        # server addresses per host name
        self.addrs = {}
        for name, _w, _p, ipg, _cg, _prof in TLS_HOSTS:
            self._assign(name, ipg)
        for name, _w, ipg in QUIC_HOSTS + HTTP_HOSTS:
            self._assign(name, ipg)
        self._assign("time.apple.com", "apple")
        self.cnames = {n: (n.split(".")[0] + ".g.aaplimg.com" if n.endswith(("apple.com", "icloud.com", "cdn-apple.com"))
                           else None) for n in self.addrs}
        self.certs = build_certificates()
        self.tls_pop, self.tls_cum = weighted(TLS_HOSTS)
        self.quic_pop, self.quic_cum = weighted(QUIC_HOSTS)
        self.http_pop, self.http_cum = weighted(HTTP_HOSTS)
        self.resolver4 = bytes([10, 10, 0, 53])
        self.resolver6 = ipaddress.IPv6Address("fd00:10::53").packed

    def _assign(self, name, ipg):
        if name in self.addrs:
            return
        rng = self.rng
        v4 = []
        for _ in range(4 if ipg != "internal" else 1):
            pat = V4_PATTERNS[ipg][rng.randrange(len(V4_PATTERNS[ipg]))]
            n = pat.count("{}")
            vals = [rng.randrange(1, 255) for _ in range(n)]
            v4.append(ipaddress.IPv4Address(pat.format(*vals)).packed)
        if ipg == "internal":
            v4 = [bytes([10, 50, 1, 10])]
        v6 = []
        if ipg in V6_PATTERNS:
            for _ in range(2):
                pat = V6_PATTERNS[ipg][rng.randrange(len(V6_PATTERNS[ipg]))]
                v6.append(ipaddress.IPv6Address(pat.format(rng.randrange(1, 0xFFFF), rng.randrange(1, 0xFFFF))).packed)
        self.addrs[name] = (v4, v6)

    # -- helpers ---------------------------------------------------------
    def client(self):
        return self.rng.choices(self.clients, cum_weights=self.client_cum)[0]

    def rb_slice(self, n):
        o = self.rng.randrange(0, len(self.rb) - n)
        return self.rb[o:o + n]

    def tuple_for(self, proto, cip, sip, sport):
        """Pick an unused client port for (proto, cip, sip, sport)."""
        rng = self.rng
        while True:
            cport = rng.randrange(49152, 65536)
            key = (proto, cip, cport, sip, sport)
            if key not in self.used:
                self.used.add(key)
                return cport

    def sides(self, cl, cip, sip, cport, sport, proto, server_ttl=None):
        rng = self.rng
        fl = rng.randrange(1 << 20) if len(cip) == 16 else 0
        c2s = Side(cl.mac, GATEWAY_MAC, cl.vlan, cip, sip, cport, sport, 64, proto, rng.randrange(65536), fl)
        ttl = server_ttl or rng.choice((52, 55, 56, 57, 58, 116, 118, 244))
        s2c = Side(GATEWAY_MAC, cl.mac, cl.vlan, sip, cip, sport, cport, ttl, proto, rng.randrange(65536),
                   rng.randrange(1 << 20) if len(cip) == 16 else 0)
        return c2s, s2c

    def rtt(self, internal=False):
        if internal:
            return int(self.rng.uniform(300, 3000))
        return int(min(300000, max(1500, self.rng.lognormvariate(10.0, 0.7))))  # median ~22 ms

    def rec(self, kind, proto, cip, cport, sip, sport, cl, **kw):
        r = {"kind": kind, "proto": proto,
             "client_ip": str(ipaddress.ip_address(cip)), "client_port": cport,
             "server_ip": str(ipaddress.ip_address(sip)), "server_port": sport}
        if cl.vlan:
            r["vlan"] = cl.vlan
        r.update(kw)
        self.flows.append(r)
        return r

    def pick_addr(self, name, want_v6):
        v4, v6 = self.addrs[name]
        if want_v6 and v6:
            return v6[self.rng.randrange(len(v6))]
        return v4[self.rng.randrange(len(v4))]

    # -- traffic generators: each yields (delay_us, frame, tag) ----------------
    def dns_lookup(self, cl, name, qtypes, use_v6_transport, rcode=0):
        """Plan one or more queries (each its own source port) and their answers.

        The truth records are created now; the returned generator emits the
        packets.  self.last_dns_delay is set to the time from the first query
        to the last answer (None if some query goes unanswered).
        """
        rng = self.rng
        edns = rng.random() < 0.5
        sip = self.resolver6 if (use_v6_transport and cl.v6) else self.resolver4
        cip = cl.v6 if len(sip) == 16 else cl.v4
        pending = []
        for qtype in qtypes:
            cport = self.tuple_for(17, cip, sip, 53)
            c2s, s2c = self.sides(cl, cip, sip, cport, 53, 17, server_ttl=63)
            qid = rng.randrange(65536)
            v4, v6 = self.addrs.get(name, ([], []))
            addrs = v4[:] if qtype == 1 else v6[:] if qtype == 28 else []
            if rcode:
                addrs = []
            if len(addrs) > 1:
                rng.shuffle(addrs)
                addrs = addrs[:rng.randrange(1, len(addrs) + 1)]
            cname = self.cnames.get(name) if addrs else None
            ttl = rng.choice((20, 60, 300, 3600))
            unanswered = rng.random() < 0.01
            t = {"client_ip": str(ipaddress.ip_address(cip)), "client_port": cport,
                 "server_ip": str(ipaddress.ip_address(sip)), "qname": name, "qtype": qtype,
                 "rcode": None if unanswered else rcode,
                 "answers": [] if unanswered else [str(ipaddress.ip_address(a)) for a in addrs]}
            if cname and not unanswered:
                t["cname"] = cname
            if cl.vlan:
                t["vlan"] = cl.vlan
            self.dns.append(t)
            q = c2s.udp(dns_query(qid, name, qtype, edns))
            r = None if unanswered else s2c.udp(dns_response(qid, name, qtype, rcode, cname, addrs, ttl, edns))
            pending.append((q, r, t))
        # queries back to back, answers after the resolver's RTT
        rtt = int(rng.uniform(300, 25000)) if rng.random() < 0.8 else int(rng.uniform(25000, 120000))
        gaps = [int(rng.uniform(20, 400)) for _ in pending[1:]]
        answer_gaps = [int(rng.uniform(50, 3000)) for _ in pending[1:]]
        answered = all(r is not None for _q, r, _t in pending)
        self.last_dns_delay = (sum(gaps) + rtt + sum(answer_gaps)) if answered else None
        return self._dns_emit(pending, rtt, gaps, answer_gaps)

    @staticmethod
    def _dns_emit(pending, rtt, gaps, answer_gaps):
        for i, (q, _r, t) in enumerate(pending):
            yield (gaps[i - 1] if i else 0, q, (t, "_q"))
        d = rtt
        for i, (_q, r, t) in enumerate(pending):
            if r is not None:
                yield (d, r, (t, "_r"))
            if i < len(answer_gaps):
                d = answer_gaps[i] + (d if r is None else 0)

    def standalone_dns(self):
        rng = self.rng
        cl = self.client()
        v6t = rng.random() < 0.12
        r = rng.random()
        if r < 0.55:
            name = self.tls_pop[rng.randrange(len(self.tls_pop))][0]
            yield from self.dns_lookup(cl, name, (1, 28), v6t)
        elif r < 0.7:
            name = self.quic_pop[rng.randrange(len(self.quic_pop))][0]
            yield from self.dns_lookup(cl, name, (65,), v6t)
        elif r < 0.88:
            if rng.random() < 0.5:
                name = NXDOMAIN_NAMES[rng.randrange(len(NXDOMAIN_NAMES))]
            else:  # Chrome-style random intranet probe
                name = "".join(chr(97 + rng.randrange(26)) for _ in range(rng.randrange(7, 16)))
            yield from self.dns_lookup(cl, name, (1,), v6t, rcode=3)
        else:
            ip = rng.randrange(1, 255)
            name = f"{ip}.{rng.randrange(256)}.20.10.in-addr.arpa"
            yield from self.dns_lookup(cl, name, (12,), v6t, rcode=3)

    def tcp_handshake(self, c, s, isn_c, isn_s, rtt, mss):
        syn_opts = struct.pack("!BBH", 2, 4, mss) + b"\x01\x03\x03\x06\x01\x01\x04\x02"
        sa_opts = struct.pack("!BBH", 2, 4, mss) + b"\x01\x01\x04\x02\x01\x03\x03\x07"
        yield (0, c.tcp(isn_c, 0, SYN, 65535, b"", syn_opts), None)
        yield (rtt, s.tcp(isn_s, isn_c + 1, SYN | ACK, 65535, b"", sa_opts), None)
        yield (int(self.rng.uniform(30, 300)), c.tcp(isn_c + 1, isn_s + 1, ACK, 2058), None)

    def app_records(self, total, first_small=False):
        """Bytes of TLS application data records carrying `total` plaintext-ish bytes."""
        rng = self.rng
        parts = []
        left = total
        rec_max = 1400 if first_small else 16384
        while left > 0:
            n = min(left, rec_max, 16384)
            body = self.rb_slice(n + 17)
            parts.append(struct.pack("!BHH", 23, 0x0303, len(body)) + body)
            left -= n
            if rec_max < 16384 and rng.random() < 0.5:
                rec_max = 16384
        return b"".join(parts)

    def segments(self, side, seq, ack, data, mss, win, psh_last=True):
        """Frames for `data` sent from `side`, segmented at mss; returns (frames, new_seq)."""
        frames = []
        n = len(data)
        for off in range(0, n, mss):
            chunk = data[off:off + mss]
            fl = ACK | PSH if (psh_last and off + mss >= n) else ACK
            frames.append(side.tcp(seq + off, ack, fl, win, chunk))
        return frames, seq + n

    def tls_flow(self, cl=None, host=None, midstream=False):
        rng = self.rng
        cl = cl or self.client()
        if host is None:
            host = rng.choices(self.tls_pop, cum_weights=self.tls_cum)[0]
        name, _w, ports, ipg, cgroup, profile = host
        pl = list(ports.items())
        sport = rng.choices([p for p, _ in pl], weights=[w for _, w in pl])[0]
        v4, v6 = self.addrs[name]
        use6 = bool(cl.v6 and v6 and rng.random() < 0.25)
        internal = ipg == "internal"
        sip = self.pick_addr(name, use6)
        cip = cl.v6 if use6 else cl.v4
        cport = self.tuple_for(6, cip, sip, sport)
        c, s = self.sides(cl, cip, sip, cport, sport, 6, server_ttl=63 if internal else None)
        mss = 1440 if use6 else 1460
        rtt = self.rtt(internal)
        isn_c, isn_s = rng.randrange(1 << 32), rng.randrange(1 << 32)
        win_c, win_s = rng.choice((2048, 2058, 4096, 8192)), rng.choice((501, 1024, 2048, 65535))
        start_delay = 0
        dns_name_used = None
        if not midstream and rng.random() < (0.3 if internal else 0.45):
            # resolve first (A + AAAA from the same device); connect to an address of the answer
            qtypes = (1, 28) if (use6 or rng.random() < 0.8) else (1,)
            dns_name_used = name
            self.spawn_later(0, self.dns_lookup(cl, name, qtypes, rng.random() < 0.1))
            answers = [a for d in self.dns[-len(qtypes):] for a in d["answers"]]
            matching = [a for a in answers if (":" in a) == use6]
            if matching:
                new_sip = ipaddress.ip_address(matching[rng.randrange(len(matching))]).packed
                if new_sip != sip:
                    self.used.discard((6, cip, cport, sip, sport))
                    sip = new_sip
                    cport = self.tuple_for(6, cip, sip, sport)
                    c, s = self.sides(cl, cip, sip, cport, sport, 6, server_ttl=63 if internal else None)
            if self.last_dns_delay is None:  # no answer: the app retries after a second
                start_delay = 1000000 + int(rng.uniform(0, 50000))
            else:
                start_delay = self.last_dns_delay + int(rng.uniform(200, 20000))
        if midstream:
            rec = self.rec("midstream", "tcp", cip, cport, sip, sport, cl, sni=None)
            yield from self.tls_data_phase(rec, c, s, isn_c, isn_s, mss, win_c, win_s, rtt, profile,
                                           first_tag=(rec, "_start"), midstream=True)
            return
        # ClientHello shape
        pq = rng.random() < 0.22
        no_sni = rng.random() < 0.02
        sni = None if no_sni else name
        alpn = ["h2", "http/1.1"] if profile in ("web", "api", "mdm", "bulk") else None
        ch, span = client_hello(rng, sni, alpn, pq=pq, shuffle=rng.random() < 0.35,
                                pad_to=517 if rng.random() < 0.4 else 0)
        record = tls_record(22, ch, 0x0301)
        sni_span = (span[0] + 5, span[1] + 5) if span else None
        if len(record) > mss:
            split_at = mss
        elif rng.random() < 0.23:
            r = rng.random()
            if sni_span and r < 0.4:
                split_at = rng.randrange(sni_span[0] + 1, sni_span[1])
            elif r < 0.5:
                split_at = rng.randrange(1, 6)
            else:
                split_at = rng.randrange(6, len(record))
        else:
            split_at = None
        ooo = split_at is not None and rng.random() < 0.125
        outcome_r = rng.random()
        outcome = "rst_after_ch" if outcome_r < 0.02 else None
        kw = {"sni": sni, "split": split_at is not None, "out_of_order": ooo,
              "sni_straddles_split": bool(split_at and sni_span and sni_span[0] < split_at < sni_span[1]),
              "ch_len": len(record), "split_at": split_at, "pq_key_share": pq}
        if dns_name_used:
            kw["dns_resolved"] = True
        rec = self.rec("tls", "tcp", cip, cport, sip, sport, cl, **kw)
        rec["_need"] = 2 if split_at else 1
        # --- handshake
        first = True
        for d, fr, _ in self.tcp_handshake(c, s, isn_c, isn_s, rtt, mss):
            yield (start_delay + d if first else d, fr, (rec, "_start") if first else None)
            first = False
        seq = isn_c + 1
        ack = isn_s + 1
        gap = int(rng.uniform(100, 3000))
        if split_at is None:
            yield (gap, c.tcp(seq, ack, ACK | PSH, win_c, record), (rec, "_ch"))
        else:
            f1 = c.tcp(seq, ack, ACK, win_c, record[:split_at])
            f2 = c.tcp(seq + split_at, ack, ACK | PSH, win_c, record[split_at:])
            if ooo:
                yield (gap, f2, (rec, "_ch"))
                yield (int(rng.uniform(40, 3000)), f1, (rec, "_ch"))
            else:
                yield (gap, f1, (rec, "_ch"))
                yield (int(rng.uniform(10, 400)), f2, (rec, "_ch"))
        seq += len(record)
        if outcome == "rst_after_ch":
            rec["outcome"] = "rst_after_ch"
            yield (int(rng.uniform(200, 5000)), s.tcp(ack, seq, RST | ACK, 0), None)
            return
        # --- server flight
        tls13 = rng.random() < 0.65
        if tls13:
            sh = server_hello(rng, True, ch[39:39 + 32] if ch[38] == 32 else b"", 0x1301)
            flight = (tls_record(22, sh) + tls_record(20, b"\x01")
                      + tls_record(23, self.rb_slice(int(rng.uniform(1800, 4500)))))
            rec["tls_version"] = "1.3"
        else:
            inspected = rng.random() < 0.04 and not internal
            cg = ("inspection:" + cgroup) if inspected else cgroup
            chain, leaf_cn, icn, iorg = self.certs[cg]
            sh = server_hello(rng, False, rng.randbytes(32), 0xC02B, "h2" if alpn else None)
            ske = hs_msg(12, b"\x03\x00\x1d\x20" + rng.randbytes(32) + b"\x04\x03\x00\x48\x30\x46\x02\x21\x00"
                         + rng.randbytes(32) + b"\x02\x21\x00" + rng.randbytes(32))
            flight = (tls_record(22, sh) + tls_record(22, certificate_msg(chain)) + tls_record(22, ske)
                      + tls_record(22, hs_msg(14, b"")))
            rec["tls_version"] = "1.2"
            rec["cert_subject_cn"] = leaf_cn
            rec["cert_issuer_cn"] = icn
            rec["cert_issuer_o"] = iorg
            if inspected:
                rec["tls_inspected"] = True
        frames, ack2 = self.segments(s, ack, seq, flight, mss, win_s)
        d = rtt
        for i, fr in enumerate(frames):
            yield (d, fr, (rec, "_srv") if i == len(frames) - 1 else None)
            d = int(rng.uniform(20, 300))
            if i & 1 and i != len(frames) - 1:
                yield (int(rng.uniform(30, 200)), c.tcp(seq, ack + (i + 1) * mss, ACK, win_c), None)
        ack = ack2
        # client finishes the handshake
        if tls13:
            fin = tls_record(20, b"\x01") + tls_record(23, self.rb_slice(53))
        else:
            fin = (tls_record(22, hs_msg(16, b"\x20" + rng.randbytes(32))) + tls_record(20, b"\x01")
                   + tls_record(22, rng.randbytes(40)))
        yield (int(rng.uniform(200, 5000)), c.tcp(seq, ack, ACK | PSH, win_c, fin), None)
        seq += len(fin)
        if not tls13:
            sfin = tls_record(20, b"\x01") + tls_record(22, rng.randbytes(40))
            yield (rtt, s.tcp(ack, seq, ACK | PSH, win_s, sfin), None)
            ack += len(sfin)
        yield from self.tls_data_phase(rec, c, s, seq, ack, mss, win_c, win_s, rtt, profile)

    def tls_data_phase(self, rec, c, s, seq, ack, mss, win_c, win_s, rtt, profile, first_tag=None, midstream=False):
        """Request/response rounds then teardown; seq/ack are the client's/server's next seq."""
        rng = self.rng
        if profile == "push":
            rounds = rng.randrange(1, 6)
        elif profile == "bulk":
            rounds = rng.randrange(1, 3)
        else:
            rounds = min(int(rng.expovariate(1 / 3.0)) + 1, 25)
        tag = first_tag
        for rnd in range(rounds):
            if profile == "push":
                think = int(rng.uniform(2e6, 15e6))
                req, resp = int(rng.uniform(30, 200)), int(rng.uniform(30, 300))
            elif profile == "bulk":
                think = int(rng.expovariate(1 / 400000))
                req, resp = int(rng.uniform(300, 900)), int(min(rng.lognormvariate(11.6, 1.0), 3e6))
            else:
                think = int(rng.expovariate(1 / 900000)) if rnd else int(rng.uniform(1000, 20000))
                req = int(rng.uniform(100, 1800)) if rng.random() < 0.9 else int(rng.uniform(2000, 12000))
                resp = int(min(rng.lognormvariate(7.3, 1.3), 400000))
            if midstream and rnd == 0:
                think = int(rng.uniform(0, 5e6))
            rdata = self.app_records(req, True)
            frames, seq2 = self.segments(c, seq, ack, rdata, mss, win_c)
            d = think
            for fr in frames:
                yield (d, fr, tag)
                tag = None
                d = int(rng.uniform(10, 200))
            seq = seq2
            sdata = self.app_records(resp, rnd == 0)
            frames, ack2 = self.segments(s, ack, seq, sdata, mss, win_s)
            d = rtt + int(rng.uniform(200, 20000))
            spacing = (int(rng.uniform(15, 60)), int(rng.uniform(60, 400)))
            for i, fr in enumerate(frames):
                yield (d, fr, None)
                d = int(rng.uniform(*spacing))
                if i & 1:
                    yield (int(rng.uniform(20, 150)), c.tcp(seq, ack + min((i + 1) * mss, len(sdata)), ACK, win_c), None)
            ack = ack2
            if len(frames) & 1:
                yield (int(rng.uniform(20000, 45000)), c.tcp(seq, ack, ACK, win_c), None)  # delayed ACK
        # teardown
        r = rng.random()
        if r < 0.45:  # client closes
            yield (int(rng.uniform(1000, 2e6)), c.tcp(seq, ack, FIN | ACK, win_c), None)
            yield (rtt, s.tcp(ack, seq + 1, FIN | ACK, win_s), None)
            yield (int(rng.uniform(30, 300)), c.tcp(seq + 1, ack + 1, ACK, win_c), None)
            rec["outcome"] = "fin"
        elif r < 0.65:  # server closes
            yield (int(rng.uniform(1000, 2e6)), s.tcp(ack, seq, FIN | ACK, win_s), None)
            yield (int(rng.uniform(30, 300)), c.tcp(seq, ack + 1, ACK, win_c), None)
            yield (int(rng.uniform(100, 5000)), c.tcp(seq, ack + 1, FIN | ACK, win_c), None)
            yield (rtt, s.tcp(ack + 1, seq + 1, ACK, win_s), None)
            rec["outcome"] = "fin"
        elif r < 0.85:
            yield (int(rng.uniform(1000, 2e6)), c.tcp(seq, ack, RST | ACK, 0), None)
            rec["outcome"] = "rst"
        else:
            rec["outcome"] = "open"  # idle until the capture ends

    def quic_flow(self):
        rng = self.rng
        cl = self.client()
        name, _w, _ipg = rng.choices(self.quic_pop, cum_weights=self.quic_cum)[0]
        v4, v6 = self.addrs[name]
        use6 = bool(cl.v6 and v6 and rng.random() < 0.3)
        sip = self.pick_addr(name, use6)
        cip = cl.v6 if use6 else cl.v4
        cport = self.tuple_for(17, cip, sip, 443)
        c, s = self.sides(cl, cip, sip, cport, 443, 17)
        rtt = self.rtt()
        dcid = rng.randbytes(8)
        scid = b"" if rng.random() < 0.5 else rng.randbytes(8)
        server_cid = rng.randbytes(8)
        blocked = rng.random() < 0.01
        rec = self.rec("quic", "udp", cip, cport, sip, 443, cl, sni=name, dcid=dcid.hex(), scid=scid.hex())
        rec["_need"] = 1
        init = quic_client_initial(rng, name, dcid, scid, 1250 if rng.random() < 0.7 else 1200)
        yield (0, c.udp(init), (rec, "_ch"))
        if blocked:
            rec["outcome"] = "icmp_unreachable"
            yield from self.icmp_unreachable(s, c.udp(init), use6)
            return
        # server: Initial (ServerHello) coalesced with an opaque Handshake packet, then more Handshake
        sinit = quic_server_initial(rng, dcid, scid, server_cid)
        dgram = sinit + quic_opaque_long(rng, 2, scid, server_cid, 1200 - len(sinit))
        yield (rtt, s.udp(dgram), None)
        for _ in range(rng.randrange(1, 3)):
            yield (int(rng.uniform(20, 300)), s.udp(quic_opaque_long(rng, 2, scid, server_cid, int(rng.uniform(300, 1200)))), None)
        yield (int(rng.uniform(500, 5000)), c.udp(quic_opaque_long(rng, 2, server_cid, scid, int(rng.uniform(80, 120)))), None)
        rounds = min(int(rng.expovariate(1 / 2.5)) + 1, 12)
        for rnd in range(rounds):
            d = int(rng.uniform(1000, 20000)) if rnd == 0 else int(rng.expovariate(1 / 1e6))
            for _ in range(rng.randrange(1, 3)):
                yield (d, c.udp(self.short_header(server_cid, int(rng.uniform(60, 700)))), None)
                d = int(rng.uniform(20, 200))
            n = max(1, int(rng.lognormvariate(1.6, 1.0)))
            d = rtt + int(rng.uniform(500, 10000))
            for i in range(min(n, 120)):
                size = 1350 if i < n - 1 else int(rng.uniform(60, 1350))
                yield (d, s.udp(self.short_header(scid, size)), None)
                d = int(rng.uniform(30, 400))
                if i & 1:
                    yield (int(rng.uniform(20, 200)), c.udp(self.short_header(server_cid, int(rng.uniform(35, 60)))), None)
        rec["outcome"] = "open"

    def short_header(self, dcid, size):
        first = 0x40 | self.rng.randrange(64)
        return bytes([first]) + dcid + self.rb_slice(max(size - 1 - len(dcid), 20))

    def icmp_unreachable(self, s, invoking_frame, v6):
        """ICMP port unreachable from the server side quoting the invoking datagram."""
        eth_len = len(s.eth)
        ip_packet = invoking_frame[eth_len:]
        if v6:
            yield (int(self.rng.uniform(1000, 30000)), s.icmp(1, 4, ip_packet[:1232]), None)
        else:
            yield (int(self.rng.uniform(1000, 30000)), s.icmp(3, 3, ip_packet[:28]), None)

    def udp_unreachable(self):
        """NTP / syslog datagrams to a closed port answered by ICMP port unreachable."""
        rng = self.rng
        cl = self.client()
        use6 = bool(cl.v6 and rng.random() < 0.3)
        if rng.random() < 0.5:
            sport, sip = 123, self.pick_addr("time.apple.com", use6)
        else:
            sport = 514
            sip = ipaddress.IPv6Address("fd00:10::514").packed if use6 else bytes([10, 10, 0, 14])
        cip = cl.v6 if use6 else cl.v4
        cport = self.tuple_for(17, cip, sip, sport)
        c, s = self.sides(cl, cip, sip, cport, sport, 17)
        rec = self.rec("icmp_unreachable", "udp", cip, cport, sip, sport, cl, sni=None)
        payload = ntp_packet(rng, 3) if sport == 123 else b"<14>Jun  3 09:00:00 mac-01 mdmclient[412]: check-in"
        for i in range(rng.randrange(1, 3)):
            fr = c.udp(payload)
            yield (0 if i == 0 else int(rng.uniform(1e5, 1e6)), fr, (rec, "_start") if i == 0 else None)
            yield from self.icmp_unreachable(s, fr, use6)

    def ntp_flow(self):
        rng = self.rng
        cl = self.client()
        use6 = bool(cl.v6 and rng.random() < 0.3)
        sip = self.pick_addr("time.apple.com", use6)
        cip = cl.v6 if use6 else cl.v4
        cport = 123 if rng.random() < 0.3 else None
        if cport is None or (17, cip, 123, sip, 123) in self.used:
            cport = self.tuple_for(17, cip, sip, 123)
        else:
            self.used.add((17, cip, 123, sip, 123))
        c, s = self.sides(cl, cip, sip, cport, 123, 17)
        rec = self.rec("ntp", "udp", cip, cport, sip, 123, cl, sni=None)
        yield (0, c.udp(ntp_packet(rng, 3)), (rec, "_start"))
        yield (self.rtt(), s.udp(ntp_packet(rng, 4)), None)

    def syn_unanswered(self):
        rng = self.rng
        cl = self.client()
        r = rng.random()
        if r < 0.35:
            name, sport = "1-courier.push.apple.com", 5223
        elif r < 0.5:
            name, sport = "api.push.apple.com", 2197
        elif r < 0.65:
            name, sport = "mtalk.google.com", 5228
        elif r < 0.8:
            name, sport = "acme.jamfcloud.com", 8443
        else:
            name, sport = self.tls_pop[rng.randrange(len(self.tls_pop))][0], 443
        use6 = bool(cl.v6 and self.addrs[name][1] and rng.random() < 0.2)
        sip = self.pick_addr(name, use6)
        cip = cl.v6 if use6 else cl.v4
        cport = self.tuple_for(6, cip, sip, sport)
        c, _s = self.sides(cl, cip, sip, cport, sport, 6)
        retx = rng.randrange(1, 4)
        rec = self.rec("unanswered_syn", "tcp", cip, cport, sip, sport, cl, sni=None, syn_count=1 + retx)
        isn = rng.randrange(1 << 32)
        mss = 1440 if use6 else 1460
        opts = struct.pack("!BBH", 2, 4, mss) + b"\x01\x03\x03\x06\x01\x01\x04\x02"
        syn = c.tcp(isn, 0, SYN, 65535, b"", opts)
        yield (0, syn, (rec, "_start"))
        timeout = 1000000
        for _ in range(retx):
            yield (timeout + int(rng.uniform(0, 2000)), c.tcp(isn, 0, SYN, 65535, b"", opts), None)
            timeout *= 2

    def syn_rst(self):
        rng = self.rng
        cl = self.client()
        r = rng.random()
        if r < 0.5:
            sip, sport = bytes([10, 50, 1, 10]), rng.choice((8443, 443, 9443))
        else:
            name = self.tls_pop[rng.randrange(len(self.tls_pop))][0]
            sip, sport = self.pick_addr(name, False), rng.choice((2197, 5223, 8443))
        cip = cl.v4
        cport = self.tuple_for(6, cip, sip, sport)
        c, s = self.sides(cl, cip, sip, cport, sport, 6)
        rec = self.rec("rst_rejected", "tcp", cip, cport, sip, sport, cl, sni=None)
        isn = rng.randrange(1 << 32)
        opts = struct.pack("!BBH", 2, 4, 1460) + b"\x01\x03\x03\x06\x01\x01\x04\x02"
        yield (0, c.tcp(isn, 0, SYN, 65535, b"", opts), (rec, "_start"))
        yield (self.rtt(sip[0] == 10), s.tcp(0, isn + 1, RST | ACK, 0), None)

    def http_flow(self):
        rng = self.rng
        cl = self.client()
        name, _w, _ipg = rng.choices(self.http_pop, cum_weights=self.http_cum)[0]
        sip = self.pick_addr(name, False)
        cip = cl.v4
        cport = self.tuple_for(6, cip, sip, 80)
        c, s = self.sides(cl, cip, sip, cport, 80, 6)
        rtt = self.rtt()
        rec = self.rec("http", "tcp", cip, cport, sip, 80, cl, sni=None, http_host=name)
        isn_c, isn_s = rng.randrange(1 << 32), rng.randrange(1 << 32)
        first = True
        for d, fr, _ in self.tcp_handshake(c, s, isn_c, isn_s, rtt, 1460):
            yield (d, fr, (rec, "_start") if first else None)
            first = False
        seq, ack = isn_c + 1, isn_s + 1
        if name == "captive.apple.com":
            path, ua = "/hotspot-detect.html", "CaptiveNetworkSupport-481.0.1 wispr"
            body = b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
        elif name == "connectivitycheck.gstatic.com":
            path, ua = "/generate_204", "Dalvik/2.1.0 (Linux; U; Android 14)"
            body = b""
            head = b"HTTP/1.1 204 No Content\r\n"
        else:
            path, ua = f"/2024/mac/{rng.randrange(10**6):06d}/update.pkg", "com.apple.appstored/1.0"
            body = self.rb_slice(int(rng.uniform(10000, 150000)))
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        req = (f"GET {path} HTTP/1.1\r\nHost: {name}\r\nAccept: */*\r\nUser-Agent: {ua}\r\n"
               f"Connection: close\r\n\r\n").encode()
        yield (int(rng.uniform(100, 2000)), c.tcp(seq, ack, ACK | PSH, 2058, req), None)
        seq += len(req)
        resp = head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        frames, ack2 = self.segments(s, ack, seq, resp, 1460, 501)
        d = rtt
        for i, fr in enumerate(frames):
            yield (d, fr, None)
            d = int(rng.uniform(20, 300))
            if i & 1:
                yield (int(rng.uniform(20, 150)), c.tcp(seq, ack + min((i + 1) * 1460, len(resp)), ACK, 2058), None)
        ack = ack2
        yield (int(rng.uniform(100, 2000)), s.tcp(ack, seq, FIN | ACK, 501), None)
        yield (int(rng.uniform(30, 300)), c.tcp(seq, ack + 1, ACK, 2058), None)
        yield (int(rng.uniform(100, 3000)), c.tcp(seq, ack + 1, FIN | ACK, 2058), None)
        yield (rtt, s.tcp(ack + 1, seq + 1, ACK, 501), None)
        rec["outcome"] = "fin"

    # -- scheduling --------------------------------------------------------
    def spawn_later(self, delay, gen):
        self._pending_spawns.append((delay, gen))

    ARRIVAL_KINDS = (("tls", 2.1), ("quic", 0.29), ("dns", 4.9), ("syn", 2.1), ("rst", 0.35),
                     ("http", 0.12), ("ntp", 0.7), ("icmp", 0.06))

    def new_flow(self):
        kinds, cum = self._arrival
        self.arrivals += 1
        k = self.rng.choices(kinds, cum_weights=cum)[0]
        if k == "tls":
            return self.tls_flow()
        if k == "quic":
            return self.quic_flow()
        if k == "dns":
            return self.standalone_dns()
        if k == "syn":
            return self.syn_unanswered()
        if k == "rst":
            return self.syn_rst()
        if k == "http":
            return self.http_flow()
        if k == "ntp":
            return self.ntp_flow()
        return self.udp_unreachable()

    def run(self, out, npackets: int, fmt: str):
        """Write npackets frames to the binary file object out."""
        rng = self.rng
        self._pending_spawns = []
        self.arrivals = 0
        kinds = [k for k, _ in self.ARRIVAL_KINDS]
        acc, cum = 0.0, []
        for _k, w in self.ARRIVAL_KINDS:
            acc += w
            cum.append(acc)
        self._arrival = (kinds, cum)
        pkts_per_arrival = 11.0  # measured average (2M packets); sets the arrival rate
        mean_gap = 1e6 * pkts_per_arrival / self.rate
        heap = []
        seq = 0
        t0 = EPOCH0 * 1000000

        def push(t, gen):
            nonlocal seq
            try:
                d, fr, tag = next(gen)
            except StopIteration:
                return
            # a generator may have spawned helpers (DNS before TLS) while producing its first packet
            if self._pending_spawns:
                sp = self._pending_spawns
                self._pending_spawns = []
                for dd, g in sp:
                    push(t + dd, g)
            seq += 1
            heapq.heappush(heap, (t + d, seq, fr, tag, gen))

        # flows that were already established when the capture started
        for _ in range(max(1, min(200, npackets // 400))):
            push(t0, self.tls_flow(midstream=True))
        seq += 1
        heapq.heappush(heap, (t0, seq, None, None, None))  # first arrival

        if fmt == "pcapng":
            shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
            out.write(struct.pack("<II", 0x0A0D0D0A, 12 + len(shb_body)) + shb_body + struct.pack("<I", 12 + len(shb_body)))
            idb_body = struct.pack("<HHI", 1, 0, 262144)
            out.write(struct.pack("<II", 1, 12 + len(idb_body)) + idb_body + struct.pack("<I", 12 + len(idb_body)))
        else:
            out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))

        parts = []
        written = 0
        nbytes = 0
        flush_at = 1 << 22
        pack_rec = PCAP_REC.pack
        pack_epb = EPB_HDR.pack
        heappop, heappush = heapq.heappop, heapq.heappush
        expo = rng.expovariate
        last_t = t0
        while written < npackets:
            t, _s, fr, tag, gen = heappop(heap)
            if gen is None:  # flow arrival
                push(t, self.new_flow())
                seq += 1
                heappush(heap, (t + int(expo(1.0 / mean_gap)), seq, None, None, None))
                continue
            n = len(fr)
            if fmt == "pcapng":
                pad = (-n) & 3
                tl = 32 + n + pad
                parts.append(pack_epb(6, tl, 0, t >> 32, t & M32, n, n))
                parts.append(fr)
                parts.append(b"\x00" * pad + struct.pack("<I", tl))
                nbytes += tl
            else:
                parts.append(pack_rec(t // 1000000, t % 1000000, n, n))
                parts.append(fr)
                nbytes += n + 16
            written += 1
            last_t = t
            if tag is not None:
                r, key = tag
                r[key] = r.get(key, 0) + 1
                if "_t0" not in r:
                    r["_t0"] = t
            if nbytes >= flush_at:
                out.write(b"".join(parts))
                parts.clear()
                nbytes = 0
            push(t, gen)  # the flow's next packet
        out.write(b"".join(parts))
        self.first_ts, self.last_ts = t0, last_t
        self.active_at_end = len(heap)

    # -- truth ----------------------------------------------------------------
    def truth(self, npackets, fmt, seed):
        flows = []
        summary = {"packets": npackets, "flows": 0, "tls_flows": 0, "tls_flows_ch_incomplete": 0,
                   "tls_sni_flows": 0, "tls_split": 0, "tls_out_of_order": 0, "tls_sni_straddles_split": 0,
                   "tls_rst_after_ch": 0, "tls_inspected": 0, "quic_flows": 0, "dns_queries": 0,
                   "dns_answered": 0, "dns_nxdomain": 0, "unanswered_syn_flows": 0, "rst_rejected_flows": 0,
                   "icmp_unreachable_flows": 0, "http_flows": 0, "ntp_flows": 0, "midstream_flows": 0,
                   "ipv6_flows": 0, "vlan_flows": 0}
        for r in self.flows:
            kind = r["kind"]
            if kind in ("tls", "quic"):
                started = "_ch" in r or "_start" in r
                if not started:
                    continue
                summary["flows"] += 1
                if r.get("_ch", 0) < r["_need"]:
                    if kind == "tls":
                        summary["tls_flows"] += 1
                        summary["tls_flows_ch_incomplete"] += 1
                    continue
            elif "_start" not in r:
                continue
            else:
                summary["flows"] += 1
            out = {k: v for k, v in r.items() if not k.startswith("_") and v is not None or k == "sni"}
            if "tls_version" in r:  # the server's first flight (ServerHello ... Certificate) is all in the file
                out["server_flight_written"] = "_srv" in r
            out["first_ts"] = round(r["_t0"] / 1e6, 6)
            flows.append(out)
            if ":" in r["client_ip"]:
                summary["ipv6_flows"] += 1
            if r.get("vlan"):
                summary["vlan_flows"] += 1
            if kind == "tls":
                summary["tls_flows"] += 1
                summary["tls_sni_flows"] += r["sni"] is not None
                summary["tls_split"] += r["split"]
                summary["tls_out_of_order"] += r["out_of_order"]
                summary["tls_sni_straddles_split"] += r["sni_straddles_split"]
                summary["tls_rst_after_ch"] += r.get("outcome") == "rst_after_ch"
                summary["tls_inspected"] += bool(r.get("tls_inspected"))
            elif kind == "quic":
                summary["quic_flows"] += 1
            elif kind == "unanswered_syn":
                summary["unanswered_syn_flows"] += 1
            elif kind == "rst_rejected":
                summary["rst_rejected_flows"] += 1
            elif kind == "icmp_unreachable":
                summary["icmp_unreachable_flows"] += 1
            elif kind == "http":
                summary["http_flows"] += 1
            elif kind == "ntp":
                summary["ntp_flows"] += 1
            elif kind == "midstream":
                summary["midstream_flows"] += 1
        for r in flows:
            if r["kind"] in ("tls", "midstream") and "outcome" not in r:
                r["outcome"] = "truncated"
        flows.sort(key=lambda r: r["first_ts"])
        dns = []
        for d in self.dns:
            if "_q" not in d:
                continue
            summary["flows"] += 1
            summary["dns_queries"] += 1
            e = {k: v for k, v in d.items() if not k.startswith("_")}
            e["ts"] = round(d["_t0"] / 1e6, 6)
            if "_r" not in d:
                e["answered"] = False
                e["answers"] = []
                if d["rcode"] is not None:
                    e["rcode"] = None  # the answer fell after the end of the capture
            else:
                e["answered"] = True
                summary["dns_answered"] += 1
                summary["dns_nxdomain"] += d["rcode"] == 3
            dns.append(e)
        dns.sort(key=lambda e: e["ts"])
        return {
            "generator": {"name": "pcapaudit benchmarks/gen_capture.py", "version": GENERATOR_VERSION,
                          "seed": seed, "packets": npackets, "format": fmt, "rate": self.rate,
                          "first_ts": self.first_ts / 1e6, "last_ts": self.last_ts / 1e6,
                          "checksums": "IPv4 header, TCP, UDP and ICMP checksums are all correct",
                          "flow_key": "proto, client_ip, client_port, server_ip, server_port"},
            "summary": summary,
            "flows": flows,
            "dns": dns,
        }


def ntp_packet(rng, mode):
    if mode == 3:
        return b"\x23" + bytes(39) + rng.randbytes(8)
    return (bytes([0x24, 1, 0, 0xE9]) + bytes(8) + b"GPSs" + rng.randbytes(8) + bytes(8)
            + rng.randbytes(8) + rng.randbytes(8))


# ----------------------------------------------------------------------------
# Self test against RFC 9001 Appendix A
# ----------------------------------------------------------------------------

def selftest() -> None:
    dcid = bytes.fromhex("8394c8f03e515708")
    key, iv, hp = quic_initial_keys(dcid, False)
    assert key.hex() == "1f369613dd76d5467730efcbe3b1a22d", key.hex()
    assert iv.hex() == "fa044b2f42a3fd3b46fb255c", iv.hex()
    assert hp.hex() == "9f50449e04a0e810283a1e9933adedd2", hp.hex()
    skey, siv, shp = quic_initial_keys(dcid, True)
    assert skey.hex() == "cf3a5331653c364c88f0f379b6067e37", skey.hex()
    assert shp.hex() == "c206b8d9b9f0f37644430b490eeaa314", shp.hex()
    # RFC 9001 A.2: header protection of the client Initial (pn 2, 4-byte pn)
    crypto = bytes.fromhex(
        "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
        "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
        "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
        "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
        "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
        "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
        "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
        "75300901100f088394c8f03e51570806048000ffff")
    plain = crypto + bytes(1162 - len(crypto))
    pkt = quic_protect_long(0, dcid, b"", 2, 4, plain, (key, iv, hp))
    assert pkt[:22].hex() == "c000000001088394c8f03e5157080000449e7b9aec34", pkt[:22].hex()
    assert pkt[22:38].hex() == "d1b1c98dd7689fb8ec11d242b123dc9b", pkt[22:38].hex()
    assert len(pkt) == 1200
    # checksum helper against the classic RFC 1071 example
    assert csum_of(wsum(bytes.fromhex("0001f203f4f5f6f7"))) == 0x220D
    assert csum_of(0xFFFF) == 0 and udp_csum(0xFFFF) == 0xFFFF  # -0 sums (RFC 1624 / RFC 768)
    print("selftest ok (RFC 9001 Appendix A keys and client Initial, RFC 1071 checksum)")


# ----------------------------------------------------------------------------

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", help="output capture file (.pcap or .pcapng)")
    p.add_argument("--packets", type=int, default=2000000, help="exact number of packets to write (default 2000000)")
    p.add_argument("--seed", type=int, default=1, help="random seed; same seed -> same bytes (default 1)")
    p.add_argument("--truth", metavar="FILE", help="write the ground-truth JSON here")
    p.add_argument("--format", choices=("pcap", "pcapng"), default=None,
                   help="default: pcapng if OUT ends in .pcapng, else pcap")
    p.add_argument("--rate", type=int, default=DEFAULT_RATE,
                   help=f"target packets per second of capture time (default {DEFAULT_RATE})")
    p.add_argument("--selftest", action="store_true", help="check QUIC key derivation / protection against RFC 9001 and exit")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.selftest:
        selftest()
        return 0
    if not a.out:
        p.error("OUT is required")
    if a.packets < 1:
        p.error("--packets must be >= 1")
    fmt = a.format or ("pcapng" if a.out.endswith(".pcapng") else "pcap")
    t_start = time.perf_counter()
    g = Gen(a.seed, a.rate)
    tmp = a.out + ".part"
    with open(tmp, "wb", buffering=1 << 20) as f:
        g.run(f, a.packets, fmt)
    os.replace(tmp, a.out)
    gen_time = time.perf_counter() - t_start
    truth = g.truth(a.packets, fmt, a.seed)
    if a.truth:
        with open(a.truth + ".part", "w") as f:
            json.dump(truth, f, separators=(",", ":"))
        os.replace(a.truth + ".part", a.truth)
    if not a.quiet:
        size = os.path.getsize(a.out)
        dur = (g.last_ts - g.first_ts) / 1e6
        s = truth["summary"]
        print(f"wrote {a.out}: {a.packets} packets, {size / 1e6:.1f} MB, {dur:.1f} s of capture time "
              f"({a.packets / max(dur, 1e-9):.0f} pkt/s), {g.arrivals} flow arrivals "
              f"({a.packets / max(g.arrivals, 1):.2f} pkt/arrival), {g.active_at_end} flows active at the end; "
              f"generated in {gen_time:.1f} s", file=sys.stderr)
        print("summary: " + ", ".join(f"{k}={v}" for k, v in s.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
