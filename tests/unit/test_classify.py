"""classify.flow_target: the destination port the vendor rules are checked against."""

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
