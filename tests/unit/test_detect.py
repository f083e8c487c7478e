"""Detection edge cases found by crafting captures: proxies, IPv6, ICMP, STARTTLS, LDAP binds."""

from __future__ import annotations

import pytest

from pcapaudit.audit import AuditOptions, Auditor
from pcapaudit.classify import classify
from pcapaudit.findings import _detect
from pcapaudit.model import FlowRecord, Transport

LAB = AuditOptions(trust_issuers=("pcapaudit Lab Trust Services",))


def _flow(**kw) -> FlowRecord:
    base = dict(
        uid="C1", ts=1_700_000_000.0, ts_last=1_700_000_001.0, transport=Transport.TCP, src_ip="192.168.50.10",
        src_port=50000, dst_ip="17.57.146.20", dst_port=443, ip_version=4, pkts_c2s=8, pkts_s2c=8,
        bytes_c2s=900, bytes_s2c=4000, payload_c2s=600, payload_s2c=3500, conn_state="SF", state="closed",
        history="ShADadFf",
    )  # fmt: skip
    base.update(kw)
    return FlowRecord(**base)


def _codes(rec: FlowRecord, opts: AuditOptions = LAB) -> set[str]:
    a = Auditor(opts)
    cls = classify(rec, a.index, a._prefer)
    return {fd.code for fd in _detect(rec, cls, a.ctx.rule(cls.rule_id), a.ctx)}


def test_apns_through_a_proxy_is_not_outside_apples_range():
    """Through a proxy the server address is the proxy's: never in 17.0.0.0/8, and no sign of anything."""
    rec = _flow(dst_ip="192.168.50.3", dst_port=3128, connect_host="1-courier.push.apple.com", connect_port=443,
                http_method="CONNECT", http_status=200, sni="1-courier.push.apple.com", app_protocol="tls")  # fmt: skip
    codes = _codes(rec)
    assert "server_outside_vendor_range" not in codes and "server_not_in_dns_answer" not in codes, codes
    # the same session direct to a server outside 17/8 is still one
    assert "server_outside_vendor_range" in _codes(_flow(dst_ip="203.0.113.50", sni="1-courier.push.apple.com",
                                                         app_protocol="tls"))  # fmt: skip


def test_an_ipv6_apns_server_is_not_judged_against_an_ipv4_range():
    """The documents give Apple's 17.0.0.0/8 and no IPv6 block: an IPv6 server is neither in nor out."""
    syn = _flow(dst_ip="2620:149:a44::20", ip_version=6, dst_port=5223, sni="1-courier.push.apple.com",
                conn_state="S0", state="no_reply", history="S", pkts_s2c=0, bytes_s2c=0, payload_c2s=0,
                payload_s2c=0, syn_count=3)  # fmt: skip
    codes = _codes(syn)
    assert "server_outside_vendor_range" not in codes and "syn_no_reply" in codes, codes


def _audit_frames(tmp_path, pkts):
    import pcapaudit
    from tests.craft import write

    return pcapaudit.audit(write(tmp_path / "c.pcap", pkts))


def _codes_of(result) -> list[str]:
    return sorted(f.code for f, _ in result.finding_records)


def test_an_unreachable_the_flow_recovered_from_blocks_nothing_and_costs_no_parsing(tmp_path):
    """A router's host-unreachable for the first SYN, then the retried SYN gets through: the session's
    SNI is still read (the error used to stop all parsing of the flow) and nothing was blocked."""
    from scapy.all import ICMP, IP, Ether, Raw

    from tests.craft import at, client_hello, server_hello, tcp_session

    c, s = "192.168.50.10", "17.253.21.211"
    session = tcp_session(c, s, 51102, 443, [client_hello("gdmf.apple.com")], [server_hello(0x0303)], t0=10)
    first_syn = at(session[0].copy(), 1.0)
    unreach = at(Ether() / IP(src="192.168.50.1", dst=c) / ICMP(type=3, code=1) / Raw(bytes(first_syn[IP])[:28]), 1.01)
    r = _audit_frames(tmp_path, [first_syn, unreach] + [at(p, 10 + i * 0.01) for i, p in enumerate(session)])
    flow = r.flows[r.flows["dst_port"] == 443].iloc[0]
    assert flow["sni"] == "gdmf.apple.com" and flow["rule_id"] == "apple.gdmf", flow.to_dict()
    assert "icmp_unreachable" not in _codes_of(r)
    # without the retry it is a block
    r = _audit_frames(tmp_path, [first_syn, unreach])
    assert _codes_of(r) == ["icmp_unreachable"]


def test_fragmentation_needed_is_path_mtu_discovery_not_a_block(tmp_path):
    from scapy.all import ICMP, IP, TCP, Ether, Raw

    from tests.craft import at

    c, s = "192.168.50.10", "17.253.21.210"
    syn = at(Ether() / IP(src=c, dst=s) / TCP(sport=51100, dport=443, flags="S"), 1.0)
    for code, blocked in ((4, False), (13, True)):  # fragmentation needed; administratively prohibited
        err = at(Ether() / IP(src="192.168.50.1", dst=c) / ICMP(type=3, code=code, nexthopmtu=1400)
                 / Raw(bytes(syn[IP])[:28]), 1.01)  # fmt: skip
        assert ("icmp_unreachable" in _codes_of(_audit_frames(tmp_path, [syn, err]))) is blocked, code


def test_a_connect_to_an_ip_literal_is_judged_by_that_address():
    """CONNECT 17.57.146.21:8443 is a flow to Apple's 17/8 on a port APNs does not list, as the same flow
    sent directly is; not an on-premises REST API found by its port alone."""
    a = Auditor(AuditOptions())
    proxied = _flow(dst_ip="192.168.50.3", dst_port=3128, connect_host="17.57.146.21", connect_port=8443,
                    http_method="CONNECT", http_status=200)  # fmt: skip
    direct = _flow(dst_ip="17.57.146.21", dst_port=8443)
    got = [classify(r, a.index, a._prefer) for r in (proxied, direct)]
    assert [(c.rule_id, c.verdict) for c in got] == [("apple.apns", "unlisted_port")] * 2, got
    # to a name, the proxy's address still says nothing
    named = _flow(dst_ip="192.168.50.3", dst_port=3128, connect_host="example.org", connect_port=8443,
                  http_method="CONNECT", http_status=200)  # fmt: skip
    assert classify(named, a.index, a._prefer).matched_by != "cidr"


def test_a_proxy_challenge_answered_on_the_same_connection_is_not_a_block(tmp_path):
    """CONNECT, 407 (with a body), CONNECT again with credentials, 200, then TLS: the flow reaches its
    target, and its SNI is read after the second request."""
    from tests.craft import client_hello, server_hello, tcp_session

    ask = b"CONNECT gdmf.apple.com:443 HTTP/1.1\r\nHost: gdmf.apple.com:443\r\n\r\n"
    auth = b"CONNECT gdmf.apple.com:443 HTTP/1.1\r\nHost: gdmf.apple.com:443\r\nProxy-Authorization: Basic eDp5\r\n\r\n"
    body = b"<html>HTTP/1.1 407 Proxy Authentication Required</html>"  # a status line in the body is no response
    challenge = (b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
    ok = b"HTTP/1.1 200 Connection established\r\n\r\n"
    r = _audit_frames(tmp_path, tcp_session("192.168.50.10", "192.168.50.3", 50000, 3128,
                                            [ask, auth, client_hello("gdmf.apple.com", versions=(0x0303,))],
                                            [challenge, ok, server_hello(0x0303)]))  # fmt: skip
    (flow,) = r.flows.itertuples()
    assert (flow.connect_host, flow.http_status, flow.sni) == ("gdmf.apple.com", 200, "gdmf.apple.com")
    assert "proxy_auth_required" not in _codes_of(r)
    # refused for good: the challenge stays the flow's last word
    r = _audit_frames(tmp_path, tcp_session("192.168.50.10", "192.168.50.3", 50001, 3128, [ask], [challenge]))
    assert "proxy_auth_required" in _codes_of(r)


def test_a_proxy_refusing_a_plain_http_request_is_a_block(tmp_path):
    """GET http://crl.apple.com/... (absolute form: only ever sent to a proxy) answered 407: the CRL check
    is blocked as surely as a CONNECT answered 407."""
    from tests.craft import tcp_session

    get = b"GET http://crl.apple.com/root.crl HTTP/1.1\r\nHost: crl.apple.com\r\n\r\n"
    refused = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
    r = _audit_frames(tmp_path, tcp_session("192.168.50.10", "192.168.50.3", 50002, 8080, [get], [refused]))
    rows = [f for f, _ in r.finding_records if f.code == "proxy_auth_required"]
    assert len(rows) == 1 and "answered GET http://crl.apple.com/root.crl with 407" in rows[0].message
    assert rows[0].rule_id == "apple.crl-apple"
    # a server's own 403 to an origin-form request is no proxy's doing
    direct = b"GET /root.crl HTTP/1.1\r\nHost: crl.apple.com\r\n\r\n"
    r = _audit_frames(tmp_path, tcp_session("192.168.50.10", "17.253.21.201", 50003, 80, [direct],
                                            [refused.replace(b"407 Proxy Authentication Required", b"403 Forbidden")]))  # fmt: skip
    assert "proxy_denied" not in _codes_of(r)


# -- TLS evidence ----------------------------------------------------------------------------------
def _cert(issuer_cn, issuer_org, subject_cn="1-courier.push.apple.com", san=("*.push.apple.com",),
          not_before="2023-01-01T00:00:00+00:00", not_after="2030-01-01T00:00:00+00:00", sha="ab"):  # fmt: skip
    from pcapaudit.model import CertInfo

    return CertInfo(subject=f"CN={subject_cn}", issuer=f"CN={issuer_cn},O={issuer_org}", subject_cn=subject_cn,
                    issuer_cn=issuer_cn, issuer_org=issuer_org, sha256=sha, self_signed=issuer_cn == subject_cn,
                    not_before=not_before, not_after=not_after, san=san)  # fmt: skip


DIGICERT = ("DigiCert Global G2 TLS RSA SHA256 2020 CA1", "DigiCert Inc")
APNS_TLS12 = dict(sni="1-courier.push.apple.com", app_protocol="tls", tls_version="TLSv1.2", tls_server_version="TLSv1.2",
                  tls_handshake="complete")  # fmt: skip


def test_an_intermediate_issued_by_an_inspection_ca_is_an_interception():
    """The leaf names Apple's usual issuer, but that issuer's certificate in the chain comes from Zscaler."""
    leaf = _cert(*DIGICERT)
    fake_ca = _cert("Zscaler Root CA", "Zscaler Inc.", subject_cn=DIGICERT[0], san=(), sha="cd")
    assert "issuer_mismatch" in _codes(_flow(certs=(leaf, fake_ca), **APNS_TLS12))
    real_ca = _cert("DigiCert Global Root G2", "DigiCert Inc", subject_cn=DIGICERT[0], san=(), sha="ef")
    assert "issuer_mismatch" not in _codes(_flow(certs=(leaf, real_ca), **APNS_TLS12))


def test_a_certificate_not_yet_valid_is_reported():
    early = _cert(*DIGICERT, not_before="2030-01-01T00:00:00+00:00", not_after="2031-01-01T00:00:00+00:00")
    assert "certificate_not_yet_valid" in _codes(_flow(certs=(early,), **APNS_TLS12))  # the flow is in 2023
    assert "certificate_not_yet_valid" not in _codes(_flow(certs=(_cert(*DIGICERT),), **APNS_TLS12))


def test_an_inspection_ca_where_the_rules_allow_inspection_is_a_note_not_an_alarm():
    """Kandji's S3 hosts may be inspected (only the device domains may not): a Zscaler leaf there is LOW."""
    a = Auditor(LAB)
    rec = _flow(dst_ip="52.217.1.1", sni="kandji-prd.s3.amazonaws.com", app_protocol="tls", tls_version="TLSv1.2",
                tls_server_version="TLSv1.2", tls_handshake="complete",
                certs=(_cert("Zscaler Intermediate Root CA", "Zscaler Inc.", subject_cn="kandji-prd.s3.amazonaws.com",
                             san=("*.s3.amazonaws.com",)),))  # fmt: skip
    cls = classify(rec, a.index, a._prefer)
    assert a.ctx.rule(cls.rule_id).tls_inspection_allowed, cls
    got = {fd.code: fd.severity.name for fd in _detect(rec, cls, a.ctx.rule(cls.rule_id), a.ctx)}
    assert got == {"inspection_ca_seen": "LOW"}, got


def test_a_resumed_tls12_session_says_evidence_unavailable():
    """No Certificate message (an abbreviated handshake): not an interception, not a silent pass either."""
    assert _codes(_flow(**APNS_TLS12)) == {"evidence_unavailable"}


def test_a_certificate_alert_at_warning_level_is_still_a_rejection():
    from pcapaudit.model import TlsAlert

    alerts = (TlsAlert("client", 1, 48, True),)  # unknown_ca at level warning: "always fatal" (RFC 5246)
    assert "client_rejected_certificate" in _codes(_flow(certs=(_cert(*DIGICERT),), alerts=alerts, **APNS_TLS12))


def test_a_hello_retry_request_with_compatibility_ccs_is_a_complete_handshake(tmp_path):
    """TLS 1.3: ClientHello, HelloRetryRequest, CCS + second ClientHello, ServerHello, Finished, data. The
    second ClientHello used to fill the client's record budget, and the flow read as an abort."""
    from tests.craft import client_hello, server_hello, tcp_session

    ch = client_hello("1-courier.push.apple.com", versions=(0x0304,))
    ccs = b"\x14\x03\x03\x00\x01\x01"

    def enc(n):
        return b"\x17\x03\x03" + n.to_bytes(2, "big") + bytes(n)

    r = _audit_frames(tmp_path, tcp_session("192.168.50.10", "17.57.146.20", 50010, 443,
                                            [ch, ccs + ch, enc(53), enc(200)],
                                            [server_hello(0x0304, 0x1301) + ccs, server_hello(0x0304, 0x1301) + enc(900),
                                             enc(300)]))  # fmt: skip
    (flow,) = r.flows.itertuples()
    assert flow.tls_handshake == "complete", flow.tls_handshake
    assert "handshake_aborted_after_server_reply" not in _codes_of(r)


def test_a_server_flight_in_many_small_records_is_read(tmp_path):
    """A chain sent in 512-byte records (max_fragment_length) is still parsed: the Zscaler leaf shows."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from tests.craft import certificate, client_hello, server_hello, tcp_session

    key = ec.generate_private_key(ec.SECP256R1())

    def name(cn, org):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])

    import datetime as dt

    cert = (x509.CertificateBuilder().subject_name(name("1-courier.push.apple.com", "Apple Inc."))
            .issuer_name(name("Zscaler Intermediate Root CA", "Zscaler Inc.")).public_key(key.public_key())
            .serial_number(7).not_valid_before(dt.datetime(2023, 1, 1)).not_valid_after(dt.datetime(2030, 1, 1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.push.apple.com")]), critical=False)
            .sign(key, hashes.SHA256()))  # fmt: skip
    der = cert.public_bytes(__import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER)
    records = _records(server_hello(0x0303)[5:] + certificate([der] * 20)[5:] + b"\x0e\x00\x00\x00", 512)
    assert len(records) > 8  # one per segment: each read alone (8 records were the old budget)
    r = _audit_frames(tmp_path, tcp_session("192.168.50.10", "17.57.146.20", 50011, 443,
                                            [client_hello("1-courier.push.apple.com", versions=(0x0303,))], records))  # fmt: skip
    assert "issuer_mismatch" in _codes_of(r)


def _records(handshake: bytes, size: int) -> list[bytes]:
    """Handshake bytes cut into TLS records of ``size`` bytes."""
    return [b"\x16\x03\x03" + len(c).to_bytes(2, "big") + c for c in (handshake[i:i + size] for i in range(0, len(handshake), size))]


# -- classification and the checklist --------------------------------------------------------------
def test_a_known_host_on_an_unlisted_port_meets_no_requirement():
    """NTP over TCP, or a push host on udp/5223, is the host tried, not its requirement met."""
    a = Auditor(LAB)
    rec = _flow(dst_ip="17.253.4.126", dst_port=123, dns_names=("time.apple.com",), dns_name="time.apple.com")
    cls = classify(rec, a.index, a._prefer)
    assert cls.verdict == "unlisted_port" and cls.rule_id == "apple.ntp-time", cls
    assert a.coverage.rules_for_flow(rec, cls) == frozenset()


def test_an_address_matched_by_network_is_said_to_be_in_the_network_only():
    a = Auditor(AuditOptions(vendors=("apple",)))
    cls = classify(_flow(dst_ip="17.253.5.6"), a.index, a._prefer)
    assert cls.matched_by == "cidr" and cls.reason == "17.253.5.6 is in 17.0.0.0/8", cls.reason


@pytest.mark.parametrize(
    ("dst", "local_only"),
    [("52.3.100.255", False), ("192.168.50.255", True), ("255.255.255.255", True), ("169.254.10.20", True),
     ("fe80::1", True), ("224.0.0.251", True), ("8.8.8.8", False)],
)
def test_only_local_traffic_is_exempt_from_not_allowed(dst, local_only):
    """.255 is a subnet broadcast in a local network, an ordinary host in a public /16; link-local
    traffic never leaves the link."""
    from pcapaudit.classify import is_multicast_or_broadcast

    assert is_multicast_or_broadcast(dst) is local_only
    rec = _flow(dst_ip=dst, dst_port=9999, ip_version=6 if ":" in dst else 4, sni=None)
    assert ("not_allowed" in _codes(rec, AuditOptions())) is not local_only


def test_quic_to_a_push_host_is_not_https_to_it():
    from pcapaudit.classify import quic_as_https

    a = Auditor(AuditOptions(vendors=("apple",)))
    assert not quic_as_https(a.ctx.rule("apple.apns"), 443)
    assert quic_as_https(a.ctx.rule("apple.gdmf"), 443)


def test_a_table_cell_stays_one_line():
    from pcapaudit.report.render import _cell

    assert _cell("Corp CA\nfake line\tx", None) == "Corp CA\\x0afake line\\x09x"


def test_an_apple_address_on_a_web_port_is_not_apns_evidence():
    """No name, 17.x on 443: Apple's 17.0.0.0/8 allow rule, not APNs (whose rule also names
    *.push.apple.com); on 5223, APNs's own port, the address says APNs."""
    a = Auditor(AuditOptions(vendors=("apple",)))
    web = _flow(dst_ip="17.253.5.6", dst_port=443)
    cls = classify(web, a.index, a._prefer)
    assert cls.rule_id == "apple.firewall-17-8" and "apple.apns" not in a.coverage.rules_for_flow(web, cls)
    push = _flow(dst_ip="17.57.146.20", dst_port=5223)
    cls = classify(push, a.index, a._prefer)
    assert cls.rule_id == "apple.apns" and "apple.apns" in a.coverage.rules_for_flow(push, cls)


def test_a_client_that_answers_the_flight_with_close_notify_aborted_it(tmp_path):
    """TLS 1.2: the server's flight, then the client's close_notify (a warning) and FIN, no key exchange:
    the client walked away, as when it closes with nothing."""
    from tests.craft import alert, client_hello, server_hello, tcp_session

    r = _audit_frames(tmp_path, tcp_session("192.168.50.10", "17.57.146.20", 50012, 443,
                                            [client_hello("1-courier.push.apple.com", versions=(0x0303,)), alert(1, 0)],
                                            [server_hello(0x0303)]))  # fmt: skip
    (flow,) = r.flows.itertuples()
    assert flow.tls_handshake == "client_abort_after_server_flight", flow.tls_handshake
    assert "handshake_aborted_after_server_reply" in _codes_of(r)


def test_a_server_alert_after_the_clients_key_exchange_is_read(tmp_path):
    """TLS 1.2: the server's flight, the client's key exchange (and, say, its certificate), then the
    server's fatal alert in a later segment: the server refused the handshake (a client certificate it
    did not accept)."""
    from tests.craft import alert, client_hello, server_hello, tcp_session

    cke = b"\x16\x03\x03\x00\x25\x10\x00\x00\x21\x20" + bytes(32)
    r = _audit_frames(tmp_path, tcp_session("192.168.50.10", "17.57.146.20", 50013, 443,
                                            [client_hello("1-courier.push.apple.com", versions=(0x0303,)), cke],
                                            [server_hello(0x0303) + b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00", alert(2, 42)],
                                            close="rst_server"))  # fmt: skip
    (flow,) = r.flows.itertuples()
    assert flow.tls_handshake == "server_alert", flow.tls_handshake
    assert "tls_server_alert" in _codes_of(r)


# -- DNS -------------------------------------------------------------------------------------------
def _dns_answer(name: str, addr: str, rcode: int = 0, sport: int = 53, server: str = "192.168.50.1",
                client: str = "192.168.50.10", ts: float = 1.0):  # fmt: skip
    from scapy.all import DNS, DNSQR, DNSRR, IP, UDP, Ether

    from tests.craft import at

    an = [DNSRR(rrname=name, type="A", rdata=addr, ttl=60)] if rcode == 0 else []
    return at(Ether() / IP(src=server, dst=client) / UDP(sport=sport, dport=40000)
              / DNS(id=7, qr=1, rd=1, ra=1, rcode=rcode, qd=[DNSQR(qname=name)], an=an), ts)  # fmt: skip


def test_a_vendor_seen_only_in_failed_lookups_gets_its_checklist(tmp_path):
    """Every lookup of an Apple name failed (NXDOMAIN): no flow ever started, yet the capture is about
    Apple, and its checklist says the lookup was blocked."""
    r = _audit_frames(tmp_path, [_dns_answer("gdmf.apple.com", "0.0.0.0", rcode=3)])
    assert r.vendors == ("apple",)
    row = r.coverage.set_index("rule_id").loc["apple.gdmf"]
    assert row["status"] == "blocked" and "dns_nxdomain" in row["note"]


def test_mdns_and_llmnr_answers_name_no_flow(tmp_path):
    """Any host on the link may answer mDNS or LLMNR: only a resolver's answers name internet flows."""
    from scapy.all import IP, TCP, Ether

    from tests.craft import at

    syn = at(Ether() / IP(src="192.168.50.10", dst="17.6.6.6") / TCP(sport=50100, dport=443, flags="S"), 2.0)
    for sport, named in ((5353, False), (5355, False), (53, True)):
        r = _audit_frames(tmp_path, [_dns_answer("gdmf.apple.com", "17.6.6.6", sport=sport), syn])
        flow = r.flows[r.flows["dst_port"] == 443].iloc[0]
        assert (flow["dns_name"] if isinstance(flow["dns_name"], str) else None) == ("gdmf.apple.com" if named else None), sport


def test_jamf_cloud_without_its_instance_configured_still_meets_its_requirements():
    """acme.jamfcloud.com matches the tenant pattern {instance}.jamfcloud.com and the wildcard
    *.jamfcloud.com (Jamf-hosted utilities): the checklist's Jamf Cloud rows count it either way."""
    a = Auditor(AuditOptions())
    rec = _flow(dst_ip="34.1.1.1", sni="acme.jamfcloud.com", app_protocol="tls")
    cls = classify(rec, a.index, a._prefer)
    assert {"jamf-pro.web-app-cloud", "jamf-pro.device-enrollment-checkin-cloud"} <= a.coverage.rules_for_flow(rec, cls)


def test_a_link_local_resolver_is_a_resolver_but_a_multicast_lookup_is_not(tmp_path):
    """An IPv6 router may be the resolver at fe80::1: its lookups count in the checklist. An mDNS query
    to 224.0.0.251 asks the link, not a resolver, and does not."""
    from scapy.all import DNS, DNSQR, IP, UDP, Ether, IPv6

    from tests.craft import at

    def query(l3, sport):
        return at(Ether() / l3 / UDP(sport=sport, dport=53 if sport != 5353 else 5353)
                  / DNS(id=9, rd=1, qd=[DNSQR(qname="gdmf.apple.com")]), 1.0)  # fmt: skip

    resolver = query(IPv6(src="fe80::10", dst="fe80::1"), 40001)
    r = _audit_frames(tmp_path, [resolver])
    assert r.coverage.set_index("rule_id").loc["apple.gdmf", "status"] == "tried, not reached"
    mdns = query(IP(src="192.168.50.10", dst="224.0.0.251"), 5353)
    r = _audit_frames(tmp_path, [mdns])
    assert "apple.gdmf" not in set(r.coverage["rule_id"]) or (
        r.coverage.set_index("rule_id").loc["apple.gdmf", "status"] == "never seen")
