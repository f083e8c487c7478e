"""Build small captures for tests with scapy (one function call per scenario, timestamps explicit)."""

from __future__ import annotations

import struct
from pathlib import Path

from scapy.all import IP, IPv6, TCP, UDP, Ether, Raw, wrpcap  # noqa: F401  (re-exported for tests)
from scapy.layers.dns import DNS, DNSQR, DNSRR  # noqa: F401

CLIENT, SERVER = "192.168.50.10", "17.57.146.20"


def write(path: Path | str, packets, t0: float = 1_700_000_000.0, step: float = 0.01) -> Path:
    """Write packets (scapy objects) to a pcap with increasing timestamps unless a packet has .time set."""
    out = []
    for i, p in enumerate(packets):
        if not hasattr(p, "_ts"):
            p.time = t0 + i * step
        else:
            p.time = p._ts
        out.append(p)
    wrpcap(str(path), out)
    return Path(path)


def at(pkt, ts: float):
    """Give a packet an explicit timestamp."""
    pkt._ts = ts
    return pkt


def client_hello(sni: str | None, alpn: tuple[str, ...] = ("h2",), versions=(0x0304, 0x0303), extra_ext: bytes = b"") -> bytes:
    """A syntactically complete TLS ClientHello record (not a real handshake)."""
    exts = b""
    if sni is not None:
        name = sni.encode() if isinstance(sni, str) else sni
        sn = b"\x00" + struct.pack(">H", len(name)) + name
        exts += struct.pack(">HH", 0, len(sn) + 2) + struct.pack(">H", len(sn)) + sn
    if alpn:
        lst = b"".join(bytes([len(a)]) + a.encode() for a in alpn)
        exts += struct.pack(">HHH", 16, len(lst) + 2, len(lst)) + lst
    if versions:
        vs = b"".join(struct.pack(">H", v) for v in versions)
        exts += struct.pack(">HHB", 43, len(vs) + 1, len(vs)) + vs
    exts += extra_ext
    body = b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00" + struct.pack(">H", len(exts)) + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


def server_hello(version: int = 0x0303, cipher: int = 0xC02F) -> bytes:
    """A TLS ServerHello record (TLS 1.3 when version is 0x0304, via supported_versions)."""
    exts = b""
    if version == 0x0304:
        exts = struct.pack(">HHH", 43, 2, 0x0304)
    body = b"\x03\x03" + b"\x22" * 32 + b"\x00" + struct.pack(">H", cipher) + b"\x00" + struct.pack(">H", len(exts)) + exts
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack(">H", len(hs)) + hs


def certificate(ders: list[bytes]) -> bytes:
    """A TLS 1.2 Certificate record."""
    lst = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    body = len(lst).to_bytes(3, "big") + lst
    hs = b"\x0b" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack(">H", len(hs)) + hs


def alert(level: int, desc: int) -> bytes:
    """A clear-text TLS alert record."""
    return b"\x15\x03\x03\x00\x02" + bytes([level, desc])


def tcp_session(client, server, sport, dport, c_payloads=(), s_payloads=(), close="fin", t0=1_700_000_000.0,
                handshake=True, isn=1000, isn_s=5000, v6=False):
    """A TCP conversation: handshake, alternating client/server payloads, then FIN/RST/none."""
    L3 = IPv6 if v6 else IP
    pkts = []
    t = t0
    c_seq, s_seq = isn, isn_s

    def add(p):
        nonlocal t
        pkts.append(at(Ether() / p, t))
        t += 0.01

    if handshake:
        add(L3(src=client, dst=server) / TCP(sport=sport, dport=dport, flags="S", seq=c_seq))
        add(L3(src=server, dst=client) / TCP(sport=dport, dport=sport, flags="SA", seq=s_seq, ack=c_seq + 1))
        c_seq += 1
        s_seq += 1
        add(L3(src=client, dst=server) / TCP(sport=sport, dport=dport, flags="A", seq=c_seq, ack=s_seq))
    n = max(len(c_payloads), len(s_payloads))
    for i in range(n):
        if i < len(c_payloads) and c_payloads[i]:
            add(L3(src=client, dst=server) / TCP(sport=sport, dport=dport, flags="PA", seq=c_seq, ack=s_seq) / Raw(c_payloads[i]))
            c_seq += len(c_payloads[i])
        if i < len(s_payloads) and s_payloads[i]:
            add(L3(src=server, dst=client) / TCP(sport=dport, dport=sport, flags="PA", seq=s_seq, ack=c_seq) / Raw(s_payloads[i]))
            s_seq += len(s_payloads[i])
    if close == "fin":
        add(L3(src=client, dst=server) / TCP(sport=sport, dport=dport, flags="FA", seq=c_seq, ack=s_seq))
        add(L3(src=server, dst=client) / TCP(sport=dport, dport=sport, flags="FA", seq=s_seq, ack=c_seq + 1))
        add(L3(src=client, dst=server) / TCP(sport=sport, dport=dport, flags="A", seq=c_seq + 1, ack=s_seq + 1))
    elif close == "rst_server":
        add(L3(src=server, dst=client) / TCP(sport=dport, dport=sport, flags="R", seq=s_seq))
    elif close == "rst_client":
        add(L3(src=client, dst=server) / TCP(sport=sport, dport=dport, flags="R", seq=c_seq))
    return pkts


def write_raw(path: Path | str, frames: list[bytes], linktype: int, t0: float = 1_700_000_000.0,
              times: list[float] | None = None) -> Path:
    """A classic pcap of raw frames with any link type (scapy guesses link types from layers); frame i at
    ``times[i]`` when given, else 10 ms apart from ``t0``."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    for i, fr in enumerate(frames):
        ts = times[i] if times is not None else t0 + i * 0.01
        out += struct.pack("<IIII", int(ts), int((ts % 1) * 1e6), len(fr), len(fr)) + fr
    Path(path).write_bytes(out)
    return Path(path)


def tcp_frame(src: str, dst: str, sport: int, dport: int, flags: int, seq: int = 1, ack: int = 0) -> bytes:
    """One Ethernet/IPv4/TCP frame without payload, built with struct (fast enough for thousands)."""
    import ipaddress

    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 1024, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, ipaddress.IPv4Address(src).packed,
                     ipaddress.IPv4Address(dst).packed)  # fmt: skip
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + ip + tcp


def syn_scan(scanner: str, hosts: list[str], ports: range, rst_every: int = 3, sport: int | None = None) -> list[bytes]:
    """A SYN scan: one SYN per host and port from a new source port (or always ``sport``, as nmap -g does);
    every ``rst_every``-th port answers with RST/ACK, the rest never answer."""
    frames = []
    fixed = sport
    for h in hosts:
        for i, port in enumerate(ports):
            sport = fixed if fixed is not None else 50000 + i
            frames.append(tcp_frame(scanner, h, sport, port, 0x02))
            if i % rst_every == 0:
                frames.append(tcp_frame(h, scanner, port, sport, 0x14, 0, 2))
    return frames


def icmp_port_unreachable(reporter: str, client: str, dst: str, sport: int, dport: int) -> bytes:
    """An ICMP port unreachable from ``reporter`` to ``client`` quoting a UDP datagram client -> dst."""
    import ipaddress

    def ip4(src, dst_, proto, payload):
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                           ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst_).packed) + payload  # fmt: skip

    quoted = ip4(client, dst, 17, struct.pack("!HHHH", sport, dport, 8, 0))
    icmp = struct.pack("!BBHI", 3, 3, 0, 0) + quoted
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + ip4(reporter, client, 1, icmp)


def pcapng_block(btype: int, body: bytes, endian: str = "<") -> bytes:
    """One pcapng block: type, total length, the body padded to 4 bytes, total length again."""
    body += b"\0" * (-len(body) % 4)
    total = 12 + len(body)
    return struct.pack(endian + "II", btype, total) + body + struct.pack(endian + "I", total)


def pcapng_option(code: int, value: bytes, endian: str = "<") -> bytes:
    """One pcapng option: code, length, the value padded to 4 bytes."""
    return struct.pack(endian + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def pcapng_file(path: Path | str, items: list[tuple], endian: str = "<") -> Path:
    """A pcapng file from ("idb", linktype, name or None), ("epb", iface, time, frame), ("spb", frame) and
    ("raw", block type, body) items, in order."""

    def block(btype, body):
        return pcapng_block(btype, body, endian)

    def opt(code, value):
        return pcapng_option(code, value, endian)

    out = block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    for it in items:
        if it[0] == "idb":
            opts = opt(2, it[2].encode()) + opt(0, b"") if it[2] else b""
            out += block(1, struct.pack(endian + "HHI", it[1], 0, 262144) + opts)
        elif it[0] == "epb":
            _, iface, ts, frame = it
            t = round(ts * 1e6)
            head = struct.pack(endian + "IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(frame), len(frame))
            out += block(6, head + frame)
        elif it[0] == "spb":
            out += block(3, struct.pack(endian + "I", len(it[1])) + it[1])
        else:  # ("raw", block type, body)
            out += block(it[1], it[2])
    Path(path).write_bytes(out)
    return Path(path)


def darwin_pcapng(path: Path | str, packets: list[tuple[float, bytes, tuple | None]], endian: str = "<",
                  linktype: int = 1) -> Path:  # fmt: skip
    """A pcapng file as Apple's tcpdump writes process metadata: Darwin process info blocks (type
    0x80000001: pid, then option 2 = name) before the packets that use them, and enhanced packet blocks
    with options 0x8001 / 0x8003 = the position of the process's / effective process's block in the section
    (Wireshark's wiretap/pcapng-darwin-custom.c reads them the same way). ``packets``: (time, frame,
    (pid, name, effective pid or None, effective name or None) or None)."""

    def block(btype: int, body: bytes) -> bytes:
        return pcapng_block(btype, body, endian)

    def opt(code: int, value: bytes) -> bytes:
        return pcapng_option(code, value, endian)

    out = block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack(endian + "HHI", linktype, 0, 262144))
    dpib: dict[tuple[int, str], int] = {}

    def dpib_id(pid: int, name: str) -> int:
        nonlocal out
        if (pid, name) not in dpib:
            dpib[(pid, name)] = len(dpib)
            out += block(0x80000001, struct.pack(endian + "I", pid) + opt(2, name.encode()) + opt(0, b""))
        return dpib[(pid, name)]

    for ts, frame, proc in packets:
        opts = b""
        if proc is not None:
            pid, name, epid, ename = proc
            opts = opt(0x8001, struct.pack(endian + "I", dpib_id(pid, name)))
            if epid is not None:
                opts += opt(0x8003, struct.pack(endian + "I", dpib_id(epid, ename)))
            opts += opt(0, b"")
        t = round(ts * 1_000_000)
        body = struct.pack(endian + "IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(frame), len(frame)) + frame
        body += b"\0" * (-len(body) % 4) + opts
        out += block(6, body)
    Path(path).write_bytes(out)
    return Path(path)


def self_signed_der(cn: str) -> bytes:
    """A real self-signed certificate (DER) for ``cn``, made with ``cryptography``."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(dt.datetime(2024, 1, 1)).not_valid_after(dt.datetime(2034, 1, 1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(key, hashes.SHA256()))  # fmt: skip
    return cert.public_bytes(serialization.Encoding.DER)


_XMPP_NS = b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'"
_LDAP_STARTTLS = bytes.fromhex("301d02010177188016") + b"1.3.6.1.4.1.1466.20037"
# (port, [(client, server) clear-text exchanges before the upgrade], last (command, accepted answer, refused answer),
#  what the client sends in clear after a refusal)
UPGRADES = {
    "smtp": (25, [(b"", b"220 mx.example.com ESMTP\r\n"), (b"EHLO c.example\r\n", b"250-mx.example.com\r\n250 STARTTLS\r\n")],
             (b"STARTTLS\r\n", b"220 2.0.0 Ready to start TLS\r\n", b"454 4.7.0 TLS not available\r\n"),
             b"MAIL FROM:<a@c.example>\r\n"),
    "ftp": (21, [(b"", b"220 ftp.example.com FTP server ready\r\n")],
            (b"AUTH TLS\r\n", b"234 AUTH TLS successful\r\n", b"502 Command not implemented\r\n"), b"USER anonymous\r\n"),
    "imap": (143, [(b"", b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n")],
             (b"a1 STARTTLS\r\n", b"a1 OK Begin TLS negotiation now\r\n", b"a1 BAD not now\r\n"), b"a2 LOGIN u p\r\n"),
    "pop3": (110, [(b"", b"+OK POP3 ready\r\n")], (b"STLS\r\n", b"+OK Begin TLS\r\n", b"-ERR no TLS\r\n"), b"USER u\r\n"),
    "xmpp": (5222, [(b"<?xml version='1.0'?><stream:stream to='example.com' " + _XMPP_NS + b">",
                     b"<?xml version='1.0'?><stream:stream from='example.com' id='1' " + _XMPP_NS + b">"
                     b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
                     b"</stream:features>")],
             (b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
              b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>"),
             b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>"),
    "ldap": (389, [], (_LDAP_STARTTLS, bytes.fromhex("300c02010178070a010004000400"),
                       bytes.fromhex("300c02010178070a013404000400")),
             bytes.fromhex("300c020102600702010304008000")),
    # X.224 Connection Request with RDP_NEG_REQ (TLS | CredSSP), Confirm with RDP_NEG_RSP selecting TLS (1) or
    # standard RDP security (0)
    "rdp": (3389, [], (bytes.fromhex("030000130ee000000000000100080003000000"),
                       bytes.fromhex("030000130ed000001234000200080001000000"),
                       bytes.fromhex("030000130ed000001234000200080000000000")),
            bytes.fromhex("0300000802f080")),
    "http": (631, [], (b"OPTIONS * HTTP/1.1\r\nHost: printer.example\r\nUpgrade: TLS/1.2\r\nConnection: Upgrade\r\n\r\n",
                       b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.2, HTTP/1.1\r\nConnection: Upgrade\r\n\r\n",
                       b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
             b"GET / HTTP/1.1\r\nHost: printer.example\r\n\r\n"),
}


def upgrade_session(kind: str, sni: str, der: bytes, accepted: bool = True, sport: int = 50100, t0: float = 1_700_000_000.0):
    """A clear-text session of ``kind`` (a key of UPGRADES) that asks for TLS; accepted: a real TLS 1.2
    ClientHello (``sni``), ServerHello and Certificate (``der``) follow the accepting answer; refused: the
    server says no and the client goes on in clear."""
    port, before, (cmd, ok, no), clear = UPGRADES[kind]
    cs = [c for c, _ in before] + [cmd]
    ss = [s for _, s in before] + [ok if accepted else no]
    if accepted:
        cs.append(client_hello(sni, alpn=(), versions=(0x0303,)))
        ss.append(server_hello(0x0303) + certificate([der]))
    else:
        cs.append(clear)
    return tcp_session(CLIENT, SERVER, sport, port, cs, ss, t0=t0)
