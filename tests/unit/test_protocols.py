"""TLS, DNS, QUIC, HTTP, ICMP and application sniffers, including hostile inputs."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcapaudit.decode import app, dns, http, icmp, quic, tls
from pcapaudit.reassembly import Stream
from tests.craft import alert, certificate, client_hello, server_hello


# -- TLS -----------------------------------------------------------------------------------------------
def test_client_hello_fields():
    rec = client_hello("Gdmf.Apple.COM.", alpn=("h2", "http/1.1"), versions=(0x0A0A, 0x0304, 0x0303))
    s = tls.TlsStream(is_client=True)
    s.feed(rec)
    ch = s.client_hello
    assert ch.sni == "gdmf.apple.com"
    assert ch.alpn == ("h2", "http/1.1")
    assert ch.max_version == 0x0304  # GREASE ignored
    assert tls.version_name(ch.max_version) == "TLSv1.3"


def test_client_hello_split_over_records_and_bytes():
    rec = client_hello("a.example")
    hs = rec[5:]
    # the handshake message split over two records, each fed one byte at a time
    r1 = b"\x16\x03\x01" + struct.pack(">H", 10) + hs[:10]
    r2 = b"\x16\x03\x01" + struct.pack(">H", len(hs) - 10) + hs[10:]
    stream = r1 + r2
    s = tls.TlsStream(is_client=True)
    for i in range(1, len(stream) + 1):
        s.feed(stream[:i])
    assert s.client_hello.sni == "a.example"
    assert s.records == [(22, 10), (22, len(hs) - 10)]


def test_sni_with_control_and_non_ascii_bytes_is_escaped():
    s = tls.TlsStream(is_client=True)
    s.feed(client_hello("evil\x1b[31m.com".encode() + b"\xff"))  # type: ignore[arg-type]
    assert "\x1b" not in s.client_hello.sni and "\\x1b" in s.client_hello.sni


def test_server_flight_tls12_with_certificate_and_alert():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Corporate Inspection CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Corp Security")])  # fmt: skip
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))  # fmt: skip
    der = cert.public_bytes(__import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER)
    srv = tls.TlsStream(is_client=False)
    srv.feed(server_hello(0x0303) + certificate([der]) + b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00")
    assert srv.server_hello.version == 0x0303 and srv.server_hello_done
    info = tls.cert_info(srv.certs[0])
    assert info.issuer_cn == "Corporate Inspection CA" and info.issuer_org == "Example Corp Security"
    assert info.self_signed
    cli = tls.TlsStream(is_client=True)
    cli.feed(client_hello("x.example") + alert(2, 48))
    assert cli.alerts == [(2, 48, 1)]


def test_tls13_server_hello_stops_clear_parsing():
    srv = tls.TlsStream(is_client=False)
    srv.feed(server_hello(0x0304) + b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
    assert srv.server_hello.version == 0x0304 and srv.encrypted and srv.certs == []
    assert [t for t, _ in srv.records] == [22, 20, 23]


def test_garbage_is_an_error_not_an_exception():
    s = tls.TlsStream(is_client=True)
    s.feed(b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00")
    assert s.error and s.client_hello is None
    s2 = tls.TlsStream(is_client=True)
    s2.feed(b"\x16\x03\x01\xff\xff" + b"\x00" * 10)
    assert "exceeds" in s2.error


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_tls_stream_never_raises(data):
    for is_client in (True, False):
        s = tls.TlsStream(is_client=is_client)
        s.feed(b"\x16\x03\x01" + data)
        s.feed(data)


# -- DNS -----------------------------------------------------------------------------------------------
def dns_response(qname: bytes, answers: list[bytes], rcode=0, tid=0x1234) -> bytes:
    hdr = struct.pack(">HHHHHH", tid, 0x8180 | rcode, 1, len(answers), 0, 0)
    return hdr + qname + b"\x00\x01\x00\x01" + b"".join(answers)


def name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"


def test_dns_cname_chain_and_answers():
    q = name(b"gdmf", b"apple", b"com")
    cname = b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 60, 2) + b"\xc0\x0c"  # silly but valid: alias to itself
    a = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([17, 1, 2, 3])
    m = dns.parse(dns_response(q, [cname, a]))
    assert m.questions == (("gdmf.apple.com", 1),) and m.is_response
    assert ("gdmf.apple.com", 1, "17.1.2.3", 60) in m.answers


def test_dns_pointer_loop_and_forward_pointer():
    loop = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    with pytest.raises(dns.DnsError, match="loop"):
        dns.parse(loop)
    fwd = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\xff"
    with pytest.raises(dns.DnsError):
        dns.parse(fwd)


def test_dns_non_utf8_and_dots_in_labels():
    q = name(b"\xff\xfe", b"a.b", b"com")
    m = dns.parse(struct.pack(">HHHHHH", 2, 0x0100, 1, 0, 0, 0) + q + b"\x00\x01\x00\x01")
    assert m.questions[0][0] == "\\255\\254.a\\.b.com"


def test_dns_absurd_counts_and_short():
    with pytest.raises(dns.DnsError, match="absurd"):
        dns.parse(struct.pack(">HHHHHH", 1, 0, 65535, 65535, 0, 0))
    m = dns.parse(struct.pack(">HHHHHH", 1, 0, 1, 18176, 0, 0) + name(b"x", b"dk") + b"\x00\x21\x00\x01")
    assert m.questions == (("x.dk", 33),) and "absurd" in m.error
    with pytest.raises(dns.DnsError):
        dns.parse(b"\x00" * 5)


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=12, max_size=300))
def test_dns_parse_raises_only_dnserror(data):
    try:
        dns.parse(data)
    except dns.DnsError:
        pass


def test_answer_names_follow_cname_to_the_query():
    from pcapaudit.enrich import DnsMap, answer_names

    ans = [("gdmf.apple.com", 5, "gdmf.apple.com.akadns.net", 60), ("gdmf.apple.com.akadns.net", 1, "17.1.1.1", 60)]
    assert answer_names(ans) == [("17.1.1.1", "gdmf.apple.com")]
    m = DnsMap()
    m.add(10.0, "17.1.1.1", "gdmf.apple.com")
    assert m.lookup("17.1.1.1", 9.0) == ()
    assert m.lookup("17.1.1.1", 10.0) == ("gdmf.apple.com",)
    assert m.addresses("gdmf.apple.com") == {"17.1.1.1"}


def test_dns_map_keeps_when_a_name_first_mapped():
    """Another client resolving the same name later must not hide that it mapped before a flow began
    (this hid the DNS name of most flows to shared CDN addresses on busy captures)."""
    from pcapaudit.enrich import DnsMap

    m = DnsMap()
    m.add(1.0, "17.1.1.1", "gdmf.apple.com")
    m.add(2.0, "17.1.1.1", "mesu.apple.com")
    m.add(5.0, "17.1.1.1", "gdmf.apple.com")  # re-resolved later by someone else
    assert m.lookup("17.1.1.1", 3.0) == ("gdmf.apple.com", "mesu.apple.com")
    assert m.lookup("17.1.1.1", 0.5) == ()
    assert m.lookup("17.1.1.1", 6.0)[0] == "gdmf.apple.com"  # the most recently confirmed name first


# -- QUIC ----------------------------------------------------------------------------------------------
def test_quic_initial_keys_rfc9001_appendix_a():
    key, iv, hp = quic.initial_keys(1, bytes.fromhex("8394c8f03e515708"))
    assert (key.hex(), iv.hex(), hp.hex()) == (
        "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2")


def test_quic_v2_keys_rfc9369():
    key, iv, hp = quic.initial_keys(0x6B3343CF, bytes.fromhex("8394c8f03e515708"))
    assert (key.hex(), iv.hex(), hp.hex()) == (
        "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9")


def _protect(version: int, dcid: bytes, frames: bytes, pn: int = 2) -> bytes:
    """Build a protected client Initial (RFC 9001 5.3/5.4) around ``frames``."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key, iv, hp = quic.initial_keys(version, dcid)
    payload = frames + b"\x00" * max(0, 1162 - len(frames))
    pn_bytes = pn.to_bytes(4, "big")
    first = 0xC3 if version != 0x6B3343CF else 0xD3
    length = len(payload) + 16 + 4
    hdr = bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid + b"\x00" + b"\x00" + \
        bytes([0x40 | (length >> 8), length & 0xFF]) + pn_bytes
    nonce = iv[:4] + (int.from_bytes(iv[4:], "big") ^ pn).to_bytes(8, "big")
    ct = AESGCM(key).encrypt(nonce, payload, hdr)
    pn_off = len(hdr) - 4
    sample = ct[4 - 4 : 4 - 4 + 16]
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(sample) + enc.finalize()
    out = bytearray(hdr + ct)
    out[0] ^= mask[0] & 0x0F
    for i in range(4):
        out[pn_off + i] ^= mask[1 + i]
    return bytes(out)


def _crypto(off: int, data: bytes) -> bytes:
    def vi(n):
        return bytes([0x80 | (n >> 24), (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])
    return b"\x06" + vi(off) + vi(len(data)) + data


@pytest.mark.parametrize("version", [1, 0x6B3343CF, 0xFF00001D])
def test_quic_client_hello_split_out_of_order(version):
    ch = client_hello("push.example.net")[5:]  # the handshake message without the TLS record header
    dcid = bytes(range(8))
    st_ = quic.QuicClientState()
    st_.feed(_protect(version, dcid, _crypto(40, ch[40:]), pn=1))
    assert st_.client_hello is None
    st_.feed(_protect(version, dcid, _crypto(0, ch[:40]), pn=0))
    assert st_.sni == "push.example.net" and st_.done


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=400))
def test_quic_state_never_raises(data):
    st_ = quic.QuicClientState()
    st_.feed(b"\xc3\x00\x00\x00\x01" + data)
    st_.feed(data)


# -- HTTP / ICMP / sniffers --------------------------------------------------------------------------------
def test_http_connect_and_status():
    req = http.parse_request(b"CONNECT mdmenrollment.apple.com:443 HTTP/1.1\r\nHost: mdmenrollment.apple.com:443\r\n\r\n\x16\x03")
    assert req.method == "CONNECT" and req.connect_target == ("mdmenrollment.apple.com", 443)
    assert http.parse_status(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n") == (407, 46)
    get = http.parse_request(b"GET http://ocsp.apple.com/ocsp HTTP/1.1\r\n\r\n")
    assert get.host == "ocsp.apple.com"
    assert http.parse_request(b"GET / HTTP/1.1\r\nHost: captive.apple.com\r\n") is None  # head not complete
    assert http.split_authority("[2001:db8::1]:8443") == ("2001:db8::1", 8443)


def test_icmp_quote():
    from scapy.all import IP, UDP

    q = icmp.parse_quoted(bytes(IP(src="10.0.0.1", dst="142.250.1.1") / UDP(sport=4000, dport=5228))[:28])
    assert (q.proto, q.sport, q.dport) == (17, 4000, 5228)
    assert icmp.describe(4, 3, 3) == "port unreachable"
    assert icmp.describe(4, 3, 13) == "administratively prohibited"
    with pytest.raises(ValueError):
        icmp.parse_quoted(b"\x45\x00")


def test_ldap_simple_bind_and_starttls():
    dn, pw = b"cn=admin,dc=example", b"secret"
    op = b"\x02\x01\x03" + b"\x04" + bytes([len(dn)]) + dn + b"\x80" + bytes([len(pw)]) + pw
    msg = b"\x02\x01\x01" + b"\x60" + bytes([len(op)]) + op
    bind = b"\x30" + bytes([len(msg)]) + msg
    assert app.sniff_client(bind, 389) == "ldap"
    assert app.ldap_scan(bind) == (True, True, False, False)
    starttls = bytes.fromhex("301d02010177188016") + b"1.3.6.1.4.1.1466.20037"
    assert app.ldap_scan(starttls) == (False, False, True, False)  # taken as upgraded until the client goes on
    assert app.ldap_scan(starttls + b"\x16\x03\x01\x00\x05hello") == (False, False, True, True)  # TLS followed
    # the server refused (resultCode 2): the client binds in clear on the same connection
    assert app.ldap_scan(starttls + bind) == (True, True, False, False)
    anonymous = b"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00"
    assert app.ldap_scan(anonymous)[:2] == (True, False)


def test_smtp_starttls():
    assert app.smtp_scan(b"EHLO x\r\nSTARTTLS\r\n") is True
    assert app.smtp_scan(b"EHLO x\r\nSTARTTLS\r\n\x16\x03\x01\x02\x00") is True
    assert app.smtp_scan(b"EHLO x\r\nMAIL FROM:<a@b>\r\n") is False
    assert app.smtp_scan(b"EHLO x\r\nAUTH PLAIN AGEAYg==\r\n") is False  # a login in clear
    assert app.smtp_scan(b"AUTH LOGIN\r\n") is False
    assert app.smtp_scan(b"EHLO x\r\n") is None
    # "454 TLS not available": the client goes on in clear
    assert app.smtp_scan(b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a@b>\r\n") is False


# -- reassembly ----------------------------------------------------------------------------------------
def test_stream_out_of_order_overlap_and_wrap():
    s = Stream(cap=1000)
    isn = 0xFFFFFFF0
    s.syn(isn)
    assert not s.add((isn + 1 + 10) % 2**32, b"KLMNOPQRST")
    assert s.add((isn + 1) % 2**32, b"ABCDEFGHIJ")
    assert bytes(s.data) == b"ABCDEFGHIJKLMNOPQRST"
    assert not s.add((isn + 1 + 5) % 2**32, b"FGHIJ")  # retransmission
    assert s.add((isn + 1 + 15) % 2**32, b"PQRSTUVW")  # overlapping extension
    assert bytes(s.data).endswith(b"UVW")


def test_stream_without_syn_rebases_on_earlier_segment():
    s = Stream(cap=100)
    s.add(1010, b"world")
    s.add(1000, b"hello-----")
    assert bytes(s.data) == b"hello-----world"


def test_stream_cap():
    s = Stream(cap=8)
    s.syn(0)
    s.add(1, b"0123456789")
    assert bytes(s.data) == b"01234567" and s.full


def test_stream_second_synack_with_other_isn():
    # the first SYN-ACK is the real one (kept)...
    s = Stream(cap=100)
    s.syn(1000)
    s.syn(900_000)
    assert s.add(1001, b"real") and bytes(s.data) == b"real"
    # ...or the data follows the second one (a retried handshake)
    s2 = Stream(cap=100)
    s2.syn(1000)
    s2.syn(900_000)
    assert s2.add(900_001, b"retry") and bytes(s2.data) == b"retry"


def test_dns_map_stays_bounded_under_a_flood_of_answers():
    """Random names for random addresses (a hostile or huge capture) cannot grow the map past its
    entry budget; the most recent answers are the ones kept."""
    from pcapaudit.enrich import DnsMap

    m = DnsMap(max_addresses=1000, max_entries=100)
    for i in range(5000):
        k = i % 300
        m.add(float(i), f"10.0.{k // 256}.{k % 256}", f"n{i}.example")
    assert m._entries <= 100 and m._name_entries <= 100
    assert m.lookup("10.0.0.135", 1e9)[0] == "n4935.example"  # 4935 % 300 == 135: the newest answer
    assert m.addresses("n4999.example") == {"10.0.0.199"}  # 4999 % 300 == 199
    assert m.evicted > 0


def _der_with_extensions():
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Corporate Inspection CA")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    ku = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(ku, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))  # fmt: skip
    return cert.public_bytes(serialization.Encoding.DER)


def test_cert_info_survives_hostile_certificates():
    # found by mutation fuzzing: cryptography raises DuplicateExtension and InvalidVersion, which are not
    # ValueErrors, and both ended the whole audit with a traceback
    der = _der_with_extensions()
    ku, eku = bytes.fromhex("0603551d0f"), bytes.fromhex("0603551d25")
    assert der.count(ku) == 1 and der.count(eku) == 1
    duplicate = der.replace(eku, ku)  # two key-usage extensions (the signature no longer matters here)
    info = tls.cert_info(duplicate)
    assert info.subject == "CN=Corporate Inspection CA" and info.san == ()  # names kept, extensions dropped
    v3 = bytes.fromhex("a003020102")
    assert der.count(v3) == 1
    info = tls.cert_info(der.replace(v3, bytes.fromhex("a003020122")))  # version 34
    assert info.subject == "<unparsable certificate: InvalidVersion>" and len(info.sha256) == 64


@pytest.mark.parametrize("authority", ["host.example:44\u00b3", "host.example:\u0663", "[::1]:\u00b2"])
def test_split_authority_refuses_non_ascii_digits(authority):
    # "³".isdigit() is True but int("³") raises: a CONNECT to "host:44³" ended the audit (fuzzing)
    from pcapaudit.decode.http import split_authority

    host, port = split_authority(authority)
    assert port is None and host in ("host.example", "::1")


def test_a_quic_flow_has_its_sni_and_no_tcp_handshake_outcome(tmp_path):
    """The TLS handshake outcome is judged from TCP records; a QUIC flow named by its Initial's SNI said
    "no_client_hello" beside it."""
    from scapy.all import IP, UDP, Ether

    import pcapaudit
    from tests.craft import at, write

    ch = client_hello("gdmf.apple.com")[5:]
    initial = _protect(1, bytes(range(8)), _crypto(0, ch), pn=0)
    pkt = at(Ether() / IP(src="192.168.50.10", dst="17.253.21.210") / UDP(sport=50000, dport=443) / initial, 1.0)
    r = pcapaudit.audit(write(tmp_path / "q.pcap", [pkt]))
    (flow,) = r.flows.itertuples()
    assert (flow.sni, flow.app_protocol, flow.rule_id) == ("gdmf.apple.com", "quic", "apple.gdmf")
    import pandas as pd

    assert pd.isna(flow.tls_handshake)
