"""Detection edge cases found by crafting captures: proxies, IPv6, ICMP, STARTTLS, LDAP binds."""

from __future__ import annotations

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
