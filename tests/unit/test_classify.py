"""classify: the port the rules are checked against, and the vendor a shared destination goes to."""

from __future__ import annotations

import pytest

from pcapaudit.classify import flow_target
from pcapaudit.model import FlowRecord, Transport


def _flow(**kw) -> FlowRecord:
    base = dict(
        uid="C1", ts=0.0, ts_last=1.0, transport=Transport.TCP, src_ip="10.0.0.2", src_port=50000,
        dst_ip="10.0.0.1", dst_port=3128, ip_version=4, pkts_c2s=1, pkts_s2c=1, bytes_c2s=1, bytes_s2c=1,
        payload_c2s=1, payload_s2c=1, conn_state="SF", state="closed", history="ShADadFf",
    )  # fmt: skip
    base.update(kw)
    return FlowRecord(**base)


def test_a_direct_flow_is_checked_on_its_destination_port():
    t = flow_target(_flow(dst_port=443))
    assert (t.port, t.via_proxy) == (443, False)


def test_connect_uses_the_connect_port():
    t = flow_target(_flow(connect_host="gdmf.apple.com", connect_port=8443))
    assert (t.port, t.via_proxy) == (8443, True)


@pytest.mark.parametrize(
    ("uri", "port"),
    [
        ("http://captive.apple.com/hotspot-detect.html", 80),
        ("https://gdmf.apple.com/v2/pmv", 443),
        ("HTTP://Example.COM:8080/x", 8080),
        ("http://[2001:db8::1]:8443/", 8443),
        ("http://[2001:db8::1]/", 80),
        ("http://user:pw@example.com:81/", 81),
        ("http://user:pw@example.com/", 80),  # the password is not a port
        ("http://fe80::1/", 80),  # an unbracketed IPv6 address: no port in it
        ("http://example.com:99999/", 80),  # not a port
        ("http://example.com:44\u00b3/", 80),  # not ASCII digits
        ("http://example.com:/", 80),
    ],
)
def test_absolute_form_requests_to_a_proxy_use_the_url_port(uri, port):
    t = flow_target(_flow(http_method="GET", http_uri=uri))
    assert (t.port, t.via_proxy) == (port, True)


def test_an_unknown_scheme_without_a_port_is_checked_on_the_proxy_port():
    t = flow_target(_flow(http_method="GET", http_uri="gopher://example.com/"))
    assert (t.port, t.via_proxy) == (3128, False)


@pytest.mark.parametrize(
    ("uri", "host"),
    [
        ("http://user:pw@Example.com:81/x", "example.com"),
        ("http://user@example.com/x", "example.com"),
        ("http://[2001:db8::1]:8443/", "2001:db8::1"),
        ("ftp://ftp.example.com/pub", "ftp.example.com"),
        ("http://example.com?q=a:b@c", "example.com"),
    ],
)
def test_absolute_form_request_host_without_userinfo(uri, host):
    from pcapaudit.decode.http import parse_request

    req = parse_request(f"GET {uri} HTTP/1.1\r\nAccept: */*\r\n\r\n".encode())
    assert req is not None and req.host == host


def test_quic_to_a_host_listed_for_https_on_tcp_443_is_allowed(book):
    """HTTP/3 is the HTTPS service over QUIC: the documents list "443 (TCP)" (nDPI's quic.pcap flagged
    every QUIC flow to www.google.com as a known host on an unlisted port before)."""
    from pcapaudit.classify import classify
    from pcapaudit.rules.matcher import RuleIndex

    idx = RuleIndex(book)
    quic = _flow(transport=Transport.UDP, dst_ip="172.217.16.4", dst_port=443, sni="www.google.com",
                 app_protocol="quic", conn_state=None, state="reply", history="")  # fmt: skip
    c = classify(quic, idx)
    assert (c.rule_id, c.verdict) == ("google-fcm.android-domains", "allowed")
    assert "HTTP/3 over QUIC on udp/443" in c.reason
    other = _flow(transport=Transport.UDP, dst_ip="172.217.16.4", dst_port=443, dns_names=("www.google.com",),
                  app_protocol=None, conn_state=None, state="reply", history="")  # fmt: skip
    assert classify(other, idx).verdict == "unlisted_port"  # UDP that is not QUIC is not HTTPS
    apns = _flow(transport=Transport.UDP, dst_ip="17.57.146.20", dst_port=5223, sni="1-courier.push.apple.com",
                 app_protocol="quic", conn_state=None, state="reply", history="")  # fmt: skip
    assert classify(apns, idx).verdict == "unlisted_port"  # only HTTPS rules, only on 443


def test_fcm_port_to_a_google_host_listed_only_on_443_is_the_fcm_rule(book):
    """clients1.google.com is listed on 443 only, but the FCM rule allows all of AS15169 on 5228-5230."""
    from pcapaudit.classify import classify
    from pcapaudit.rules.matcher import RuleIndex

    idx = RuleIndex(book)
    f = _flow(dst_ip="216.239.38.120", dst_port=5228, dns_names=("clients1.google.com",))
    c = classify(f, idx)
    assert (c.rule_id, c.verdict, c.matched_by) == ("google-fcm.fcm-5228-5230", "allowed", "cidr")
    off_net = _flow(dst_ip="198.51.100.7", dst_port=5228, dns_names=("clients1.google.com",))
    assert classify(off_net, idx).verdict == "unlisted_port"  # not a Google address: still worth a look


def test_google_internet_authority_g2_is_a_google_issuer(book):
    """Older captures (nDPI's alexa-app.pcapng, 2017) carry Google's earlier intermediate."""
    from pcapaudit.enrich import DnsMap
    from pcapaudit.findings import FindingContext
    from pcapaudit.model import CertInfo
    from pcapaudit.rules.matcher import RuleIndex

    ctx = FindingContext(book, RuleIndex(book), DnsMap())
    giag2 = CertInfo("CN=android.clients.google.com", "CN=Google Internet Authority G2,O=Google Inc,C=US",
                     "android.clients.google.com", "Google Internet Authority G2", "Google Inc", "00", False,
                     None, None)  # fmt: skip
    assert ctx.issuer_ok(giag2, "google")
    fake = CertInfo("CN=android.clients.google.com", "CN=Corp Inspection CA,O=Example Corp", "android.clients.google.com",
                    "Corp Inspection CA", "Example Corp", "01", False, None, None)  # fmt: skip
    assert not ctx.issuer_ok(fake, "google")


def test_a_name_from_the_sni_is_not_overridden_by_a_network_rule(book):
    from pcapaudit.classify import classify
    from pcapaudit.rules.matcher import RuleIndex

    idx = RuleIndex(book)
    by_sni = _flow(dst_ip="216.239.38.120", dst_port=5228, sni="clients1.google.com")
    assert classify(by_sni, idx).verdict == "unlisted_port"  # the client said which host: 443 only
    by_dns = _flow(dst_ip="17.57.146.20", dst_port=5223, dns_names=("updates.cdn-apple.com",))
    assert classify(by_dns, idx).rule_id == "apple.apns"  # 17/8 on 5223 is APNs; the name is the address's


@pytest.mark.parametrize(
    ("dst", "port", "verdict", "rule_id"),
    [
        ("10.176.176.11", 3306, "port_only", "jamf-pro.mysql"),  # the customer's database
        ("147.234.1.253", 3306, "unknown", None),  # MySQL on the Internet is not the customer's server
        ("147.234.1.253", 58999, "unknown", None),  # nor is a DCOM dynamic port
        ("192.168.1.2", 58999, "port_only", "jamf-pro.adcs-dcom"),
        ("54.255.253.199", 5223, "port_only", "bigfix-mdm.apns-device-5223"),  # responder: a third party
        ("fd00::5", 389, "port_only", None),  # LDAP to a ULA address: the customer's directory
        ("2a03:b0c0:3:d0::70:1001", 389, "unknown", None),
    ],
)
def test_port_only_rules_of_on_prem_servers_need_a_private_address(book, dst, port, verdict, rule_id):
    """A port-only rule (no host, no network) of an on-prem responder (customer-infra, mdm-server,
    connector, device) says nothing about a public address: nDPI's synscan had HIGH 'blocked' findings for
    a scanned Internet host's ports 25, 389 and 3306 as if they were the customer's SMTP, LDAP and MySQL."""
    from pcapaudit.classify import classify
    from pcapaudit.rules.matcher import RuleIndex

    c = classify(_flow(dst_ip=dst, dst_port=port), RuleIndex(book))
    assert c.verdict == verdict
    if rule_id:
        assert c.rule_id == rule_id


@pytest.mark.parametrize("text", ["17.57.146.20", "10.0.0.1", "255.255.255.255", "0.0.0.0", "::1", "2001:db8::1",
                                  "::ffff:17.57.146.20", "fe80::1%en0", "2620:149:a44::10", "1.2.3", "01.2.3.4",
                                  "17.57.146.20 ", "", "x", "::ffff:1.2.3.4.5", "1:2:3:4:5:6:7:8:9", "1.2.3.4\x00", "::1\x00"])  # fmt: skip
def test_ip_int_reads_addresses_as_ipaddress_does(text):
    """match_ip parses with the socket functions (backscatter brings an address per packet); anything they
    refuse goes to ipaddress, so the answer is the same for every string."""
    import ipaddress

    from pcapaudit.rules.matcher import ip_int

    try:
        a = ipaddress.ip_address(text)
        want = (a.version, int(a))
    except ValueError:
        want = None
    assert ip_int(text) == want


def _legacy_apns_vendors(**opts):
    """Vendor and reason of a Jamf Pro server's flow to Apple's legacy APNs port 2195, which the Jamf Pro,
    BigFix and Endpoint Central rulesets all list for 17.0.0.0/8."""
    from pcapaudit.audit import AuditOptions, Auditor
    from pcapaudit.classify import classify

    a = Auditor(AuditOptions(**opts))
    rec = _flow(src_ip="10.20.0.5", dst_ip="17.188.128.22", dst_port=2195, sni="gateway.push.apple.com")
    cls = classify(rec, a.index, a._prefer)
    return cls.vendor, cls.reason


@pytest.mark.parametrize(
    ("opts", "vendor"),
    [
        ({}, "bigfix-mdm"),  # no hint: the first ruleset, in file order
        ({"tenants": {"jamf-pro.instance": "acme"}}, "jamf-pro"),  # the user runs Jamf Pro
        ({"tenants": {"kandji.uuid": "x", "jamf-pro.instance": "acme"}}, "jamf-pro"),
        ({"vendors": ("endpoint-central",)}, "endpoint-central"),
    ],
)
def test_a_destination_several_vendors_list_goes_to_the_users_vendor(opts, vendor):
    got, reason = _legacy_apns_vendors(**opts)
    assert got == vendor
    others = {"bigfix-mdm", "endpoint-central", "jamf-pro"} - {vendor}
    if "vendors" not in opts:  # the others are named in the reason
        assert all(o in reason for o in others), reason
