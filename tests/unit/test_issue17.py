"""Issue 17: what a flow's own evidence lets the auditor say (classification, findings, checklist)."""

from __future__ import annotations

import pytest

from pcapaudit.classify import classify
from pcapaudit.coverage import CoverageTracker
from pcapaudit.enrich import DnsMap
from pcapaudit.findings import FindingContext, _detect
from pcapaudit.model import CertInfo, FlowRecord, Severity, Transport
from pcapaudit.rules.matcher import RuleIndex


def _flow(**kw) -> FlowRecord:
    base = dict(
        uid="C1", ts=1.7e9, ts_last=1.7e9 + 1, transport=Transport.TCP, src_ip="10.0.0.2", src_port=50000,
        dst_ip="17.57.146.20", dst_port=443, ip_version=4, pkts_c2s=5, pkts_s2c=5, bytes_c2s=500, bytes_s2c=500,
        payload_c2s=200, payload_s2c=200, conn_state="SF", state="closed", history="ShADadFf",
    )  # fmt: skip
    base.update(kw)
    return FlowRecord(**base)


@pytest.fixture(scope="module")
def index(book):
    return RuleIndex(book)


def _findings(f, index, book, dnsmap=None):
    cls = classify(f, index)
    ctx = FindingContext(book, index, dnsmap or DnsMap())
    return cls, [fd.build() for fd in _detect(f, cls, ctx.rule(cls.rule_id), ctx)]


def _codes(findings):
    return {fd.code for fd in findings}


# -- 3: only a server that answered can be "served from" an address -------------------------------------
@pytest.mark.parametrize(
    "unanswered",
    [
        dict(conn_state="REJ", state="rejected", history="Sr", pkts_s2c=1, payload_s2c=0, bytes_s2c=40),
        dict(conn_state="S0", state="no_reply", history="S", pkts_s2c=0, payload_s2c=0, bytes_s2c=0, syn_count=3),
    ],
)
def test_an_unanswered_syn_is_never_served_from_anywhere(index, book, unanswered):
    f = _flow(dst_ip="198.51.100.7", sni="1-courier.push.apple.com", dst_port=5223, **unanswered)
    _cls, fds = _findings(f, index, book)
    assert "server_outside_vendor_range" not in _codes(fds)
    assert _codes(fds) & {"syn_rejected", "syn_no_reply"}  # still blocked


def test_a_server_that_answered_outside_the_range_is_still_reported(index, book):
    synack_only = _flow(dst_ip="198.51.100.7", sni="1-courier.push.apple.com", dst_port=5223, conn_state="RSTO",
                        state="reset", history="ShAR", payload_s2c=0)  # fmt: skip
    _cls, fds = _findings(synack_only, index, book)
    assert "server_outside_vendor_range" in _codes(fds)
    _cls, fds = _findings(_flow(dst_ip="198.51.100.7", sni="1-courier.push.apple.com", dst_port=5223), index, book)
    assert "server_outside_vendor_range" in _codes(fds)


# -- 4: a flow to DNS is not the service of the name it resolved ---------------------------------------
def test_a_dns_flow_is_not_named_by_its_own_answer(index, book):
    f = _flow(transport=Transport.UDP, dst_ip="198.51.100.53", dst_port=53, conn_state=None, state="reply",
              history="", dns_names=("1-courier.push.apple.com",), dns_name="1-courier.push.apple.com",
              app_protocol="dns")  # fmt: skip
    cls, fds = _findings(f, index, book)
    assert cls.verdict != "unlisted_port" and cls.vendor != "apple", cls
    assert not _codes(fds) & {"unlisted_port", "server_outside_vendor_range"}, fds
    assert CoverageTracker(index).rules_for_flow(f, cls) == frozenset()


# -- 5: the binary APNs gateway by name, wherever it is --------------------------------------------------
@pytest.mark.parametrize("port", [2195, 2196])
@pytest.mark.parametrize("name", ["gateway.push.apple.com", "gateway.sandbox.push.apple.com"])
def test_the_legacy_apns_gateway_is_named_legacy_whatever_its_address(index, book, port, name):
    for f in (
        _flow(dst_ip="198.51.100.9", dst_port=port, sni=name),  # an address outside 17/8
        _flow(dst_ip="10.0.0.1", dst_port=3128, connect_host=name, connect_port=port, http_status=200),  # proxied
    ):
        cls, fds = _findings(f, index, book)
        assert cls.verdict == "legacy", cls
        assert "legacy_apns_binary" in _codes(fds) and "unlisted_port" not in _codes(fds), fds
    inside = _flow(dst_ip="17.188.128.22", dst_port=port, sni=name)
    assert classify(inside, index).verdict == "legacy"


# -- 6: FCM host names, and a proxy's refusal of them ------------------------------------------------
@pytest.mark.parametrize("host", ["mtalk.google.com", "alt3-mtalk.google.com", "mtalk4.google.com"])
def test_a_proxy_refusing_fcm_is_the_fcm_rule_blocked(index, book, host):
    f = _flow(dst_ip="10.0.0.1", dst_port=3128, connect_host=host, connect_port=5228, http_status=403,
              payload_s2c=100)  # fmt: skip
    cls, fds = _findings(f, index, book)
    assert cls.vendor == "google-fcm" and cls.verdict == "allowed", cls
    denied = [fd for fd in fds if fd.code == "proxy_denied"]
    assert denied and denied[0].severity >= Severity.MEDIUM and denied[0].rule_id == cls.rule_id, fds
    assert "not_allowed" not in _codes(fds)
    tracker = CoverageTracker(index)
    rules = tracker.rules_for_flow(f, cls)
    tracker.flow(f, cls, rules)
    for fd in fds:
        tracker.finding(fd, rules)
    rows = {r.rule_id: r for r in tracker.rows(book, ("google-fcm",))}
    for rid in (cls.rule_id, "google-fcm.fcm-5228-5230"):  # the FCM port requirement, by host and by network
        assert rows[rid].flows == 1 and rows[rid].status == "blocked", rows[rid]


def test_fcm_hosts_cite_googles_firewall_page(book):
    rs = book.ruleset("google-fcm")
    src = {s.id: s for s in rs.sources}
    named = [r for r in rs.rules if "mtalk.google.com" in r.hosts]
    assert named
    for r in named:
        assert src[r.source].url and src[r.source].url.startswith("https://firebase.google.com/docs/cloud-messaging/")


# -- 12: a checklist row counts the flows whose own name is its own ---------------------------------------
def test_a_row_does_not_count_flows_that_only_share_its_address(index, book):
    # mesu.apple.com by SNI; captive.apple.com only answered for the same (CDN) address
    f = _flow(dst_ip="17.253.21.10", sni="mesu.apple.com", dns_names=("captive.apple.com", "mesu.apple.com"))
    cls = classify(f, index)
    rules = CoverageTracker(index).rules_for_flow(f, cls)
    assert "apple.mesu" in rules and "apple.captive" not in rules, rules
    # with no name of its own, the DNS names are the flow's evidence
    g = _flow(dst_ip="17.253.21.10", dns_names=("captive.apple.com",))
    assert "apple.captive" in CoverageTracker(index).rules_for_flow(g, classify(g, index))


# -- 13: a named flow matching no host rule meets only the network-wide rule ------------------------------
def test_a_named_flow_outside_the_host_rules_meets_only_the_network_rule(index, book):
    f = _flow(dst_ip="17.248.130.1", sni="gateway.icloud.com")
    cls = classify(f, index)
    assert not cls.rule_id.startswith("apple.notarization"), cls
    assert cls.rule_id == "apple.firewall-17-8", cls
    rules = CoverageTracker(index).rules_for_flow(f, cls)
    assert not any(r.startswith("apple.notarization") for r in rules), rules
    unnamed = _flow(dst_ip="17.248.130.1")  # an address alone still says notarization
    assert classify(unnamed, index).rule_id.startswith("apple.notarization")


# -- 14: an info note is not an interception ------------------------------------------------------------
def test_summary_counts_by_kind_leave_info_notes_out():
    from pcapaudit.model import CaptureStats, Finding, FindingKind
    from pcapaudit.result import AuditResult

    def fd(code, sev, kind=FindingKind.INTERCEPTED):
        return Finding(kind, sev, code, "C1", None, None, None, "t", "m", (), code, 1.0), ("C1",)

    stats = CaptureStats(sources=(), packets=0, bytes=0, first_ts=None, last_ts=None, decoded=0, not_ip=0, weird=0,
                         dropped=None, if_dropped=None, extra=())  # fmt: skip
    res = AuditResult([], [], [fd("issuer_mismatch", Severity.HIGH), fd("evidence_unavailable", Severity.INFO),
                                   fd("evidence_unavailable", Severity.INFO)], [], [], stats, (), True, (), None)  # fmt: skip
    s = res.summary()
    assert s["findings_by_kind"] == {"tls_intercepted": 1}, s
    assert s["findings"] == 3 and s["findings_by_severity"]["info"] == 2


# -- 15: a DNS filter's block page -------------------------------------------------------------------------
def test_a_block_page_the_dns_answer_led_to_says_so(index, book):
    dnsmap = DnsMap()
    dnsmap.add(1.7e9 - 1, "203.0.113.80", "1-courier.push.apple.com")
    leaf = CertInfo("CN=block.filter.example", "CN=Filter CA,O=Filter Inc", "block.filter.example", "Filter CA",
                    "Filter Inc", "01", False, None, None, san=("block.filter.example",))  # fmt: skip
    f = _flow(dst_ip="203.0.113.80", sni="1-courier.push.apple.com", certs=(leaf,), tls_handshake="complete",
              tls_server_version="TLSv1.2")  # fmt: skip
    _cls, fds = _findings(f, index, book, dnsmap)
    mism = [fd for fd in fds if fd.code == "certificate_name_mismatch"]
    assert mism and "DNS" in mism[0].message and "203.0.113.80" in mism[0].message, fds
    assert "\n" not in mism[0].message


# -- 16: a status follows from the flows it counts ------------------------------------------------------
def test_intercepted_needs_a_flow_of_the_row(index, book):
    from pcapaudit.model import DnsTransaction

    tracker = CoverageTracker(index)
    # a flow to an APNs host on a port APNs does not list: it counts for no row
    f = _flow(dst_ip="198.51.100.7", dst_port=8443, sni="1-courier.push.apple.com")
    cls, fds = _findings(f, index, book)
    rules = tracker.rules_for_flow(f, cls)
    assert "apple.apns" not in rules
    tracker.flow(f, cls, rules)
    for fd in fds:
        tracker.finding(fd, rules)
    tx = DnsTransaction("D1", 1.0, "10.0.0.2", "198.51.100.53", "udp", 1, "1-courier.push.apple.com", "A", "NOERROR",
                        (), None)  # fmt: skip
    tracker.dns_query(tx, tracker.dns_rules(tx))
    row = next(r for r in tracker.rows(book, ("apple",)) if r.rule_id == "apple.apns")
    assert row.flows == 0 and row.status != "intercepted" and not row.intercepted, row


# -- 7: QUIC carries TLS 1.3 too: a pinned host over HTTP/3 gets the same "evidence unavailable" note --------
def test_quic_to_a_protected_host_says_evidence_unavailable(index, book):
    from pcapaudit.findings import quiet

    tcp13 = _flow(dst_ip="17.253.21.201", sni="albert.apple.com", tls_server_version="TLSv1.3",
                  tls_handshake="complete", app_protocol="tls")  # fmt: skip
    _cls, fds = _findings(tcp13, index, book)
    assert "evidence_unavailable" in _codes(fds)  # the TCP note the QUIC one mirrors
    quic = _flow(dst_ip="17.253.21.201", sni="albert.apple.com", transport=Transport.UDP, conn_state=None,
                 state="reply", history="", app_protocol="quic", quic_version="QUICv1")  # fmt: skip
    cls, fds = _findings(quic, index, book)
    notes = [fd for fd in fds if fd.code == "evidence_unavailable"]
    assert len(notes) == 1 and notes[0].severity is Severity.INFO and "QUIC" in notes[0].message
    ctx = FindingContext(book, index, DnsMap())
    assert not quiet(quic, cls, ctx.rule(cls.rule_id), ctx)  # the batch path's pre-check lets it through
    # an unnamed QUIC flow, or one to a host whose rule allows inspection, gets no such note
    _cls, fds = _findings(_flow(dst_ip="203.0.113.9", transport=Transport.UDP, conn_state=None, state="reply",
                                history="", app_protocol="quic", quic_version="QUICv1"), index, book)  # fmt: skip
    assert "evidence_unavailable" not in _codes(fds)
