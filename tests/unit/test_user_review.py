"""A new user's review (stop 19): what a proxy refused is not reached, DNS that never answered or answered
nothing for a vendor name, damaged captures in a directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcapaudit.cli import main
from tests.craft import tcp_session, write


def _audit(capsys, *args) -> dict:
    main(["audit", *map(str, args), "-f", "json", "--fail-on", "none"])
    return json.loads(capsys.readouterr().out)


def _row(rows, rid):
    return next(r for r in rows if r["rule_id"] == rid)


@pytest.mark.parametrize("status, reached", [(403, False), (407, False), (503, False), (200, True)])
def test_a_proxy_refusing_an_absolute_form_request_is_not_reaching_the_host(tmp_path, capsys, status, reached):
    """A GET http://captive.apple.com/ to a proxy answered 403 is a block of the captive-portal host, as a
    CONNECT answered 403 is: the checklist row is blocked, not reached."""
    req = b"GET http://captive.apple.com/hotspot-detect.html HTTP/1.1\r\nHost: captive.apple.com\r\n\r\n"
    resp = f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode()
    cap = write(tmp_path / "proxy.pcap", tcp_session("10.0.0.5", "10.0.0.1", 50000, 8080, [req], [resp]))
    out = _audit(capsys, cap)
    row = _row(out["coverage"], "apple.captive")
    assert row["reached"] is reached
    assert row["status"] == ("reached" if reached else "blocked")


def _dns(client, server, name, t, *, qtype="A", answers=None, rcode=0, tid=7, sport=40000):
    """A query (and its response unless ``answers`` is None): (ts, packet) pairs."""
    from scapy.all import DNS, DNSQR, DNSRR, IP, UDP, Ether

    q = Ether() / IP(src=client, dst=server) / UDP(sport=sport, dport=53) / DNS(id=tid, rd=1, qd=DNSQR(qname=name, qtype=qtype))
    out = [(t, q)]
    if answers is not None:
        an = [DNSRR(rrname=name, type=qtype, rdata=value, ttl=60) for value in answers]
        r = Ether() / IP(src=server, dst=client) / UDP(sport=53, dport=sport) / DNS(
            id=tid, qr=1, rd=1, ra=1, rcode=rcode, qd=DNSQR(qname=name, qtype=qtype), an=an)
        out.append((t + 0.02, r))
    return out


def _write_timed(path, items):
    from tests.craft import at

    return write(path, [at(p, t) for t, p in sorted(items, key=lambda x: x[0])])


T0 = 1_700_000_000.0


def test_an_unanswered_lookup_of_a_vendor_name_is_a_block(tmp_path, capsys):
    """gdmf.apple.com asked three times, never answered (a DNS filter that drops): a blocked finding and
    a blocked checklist row, not "tried, not reached" with nothing said."""
    items = [x for i in range(3) for x in _dns("10.0.0.5", "10.0.0.53", "gdmf.apple.com", T0 + i)]
    items += _dns("10.0.0.5", "10.0.0.53", "example.org", T0 + 10, answers=["93.184.216.34"], tid=9, sport=40009)
    out = _audit(capsys, _write_timed(tmp_path / "unanswered.pcap", items))
    codes = [(f["code"], f["kind"]) for f in out["findings"]]
    assert ("dns_no_response", "blocked") in codes
    f = next(f for f in out["findings"] if f["code"] == "dns_no_response")
    assert f["rule_id"] == "apple.gdmf" and "10.0.0.53" in f["message"]
    assert _row(out["coverage"], "apple.gdmf")["status"] == "blocked"


def test_a_lookup_cut_by_the_end_of_the_capture_says_nothing(tmp_path, capsys):
    items = _dns("10.0.0.5", "10.0.0.53", "example.org", T0, answers=["93.184.216.34"], tid=9, sport=40009)
    items += _dns("10.0.0.5", "10.0.0.53", "gdmf.apple.com", T0 + 5)  # the capture's last packet
    out = _audit(capsys, _write_timed(tmp_path / "cut.pcap", items))
    assert not [f for f in out["findings"] if f["code"] == "dns_no_response"]


@pytest.mark.parametrize("qtype, answers, blocked", [
    ("A", [], True),  # NODATA: a filter answering "no address" (Pi-hole's NODATA mode)
    ("AAAA", [], False),  # no IPv6 address: common and harmless
    ("A", ["17.253.21.201"], False),
])  # fmt: skip
def test_an_empty_address_answer_for_a_vendor_name_is_a_block(tmp_path, capsys, qtype, answers, blocked):
    items = _dns("10.0.0.5", "10.0.0.53", "gdmf.apple.com", T0, qtype=qtype, answers=answers)
    items += _dns("10.0.0.5", "10.0.0.53", "example.org", T0 + 10, answers=["93.184.216.34"], tid=9, sport=40009)
    out = _audit(capsys, _write_timed(tmp_path / "nodata.pcap", items))
    found = [f for f in out["findings"] if f["code"] == "dns_no_address"]
    assert bool(found) is blocked
    if blocked:
        assert found[0]["kind"] == "blocked" and found[0]["rule_id"] == "apple.gdmf"
        assert _row(out["coverage"], "apple.gdmf")["status"] == "blocked"


# -- a directory: compressed captures are found, damaged ones are errors, other files are skipped ---------
SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "enrollment-troubleshooting.pcap"


def _compressed(path: Path, kind: str) -> Path:
    import bz2
    import lzma

    data = SAMPLE.read_bytes()
    if kind == "xz":
        path.write_bytes(lzma.compress(data))
    elif kind == "bz2":
        path.write_bytes(bz2.compress(data))
    return path


@pytest.mark.parametrize("kind", ["xz", "bz2"])
def test_compressed_captures_in_a_directory_are_audited(tmp_path, capsys, kind):
    d = tmp_path / "ring"
    d.mkdir()
    _compressed(d / f"a.pcap.{kind}", kind)
    (d / "README.txt").write_text("rotated by tcpdump\n")
    out = tmp_path / "r.json"
    assert main(["audit", str(d), "-f", "json", "-o", str(out), "--fail-on", "none"]) == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["summary"]["flows"] == 24 and not data["weirds"]


@pytest.mark.parametrize("content", [
    SAMPLE.read_bytes()[:10],  # a capture's magic, its header cut short (a ring file being written)
    bytes(range(256)) * 4,  # garbage under a capture's name
])  # fmt: skip
def test_a_damaged_capture_in_a_directory_is_an_error_not_skipped(tmp_path, capsys, content):
    d = tmp_path / "ring"
    d.mkdir()
    (d / "ring_1.pcap").write_bytes(SAMPLE.read_bytes())
    (d / "ring_2.pcap").write_bytes(content)
    (d / "notes.txt").write_text("not a capture and not named as one: skipped\n")
    out = tmp_path / "r.json"
    assert main(["audit", str(d), "-f", "json", "-o", str(out), "--fail-on", "none"]) == 2
    err = capsys.readouterr().err
    assert "ring_2.pcap" in err and "notes.txt" not in err
    data = json.loads(out.read_text())
    assert data["summary"]["flows"] == 24
    assert [w["name"] for w in data["weirds"]] == ["capture_unreadable"] and "ring_2.pcap" in data["weirds"][0]["detail"]


# -- interception on a tenant's own host when no tenant is configured --------------------------------------
def _tls_flow(sni, dst, certs, **kw):
    from pcapaudit.model import FlowRecord, Transport

    base = dict(uid="C1", ts=1_700_000_000.0, ts_last=1_700_000_001.0, transport=Transport.TCP,
                src_ip="192.168.50.10", src_port=50000, dst_ip=dst, dst_port=443, ip_version=4, pkts_c2s=8,
                pkts_s2c=8, bytes_c2s=900, bytes_s2c=4000, payload_c2s=600, payload_s2c=3500, conn_state="SF",
                state="closed", history="ShADadFf", sni=sni, app_protocol="tls", tls_version="TLSv1.2",
                tls_server_version="TLSv1.2", tls_handshake="complete", certs=certs)  # fmt: skip
    base.update(kw)
    return FlowRecord(**base)


def _cert(issuer_cn, issuer_org, subject_cn, san, sha="ab"):
    from pcapaudit.model import CertInfo

    return CertInfo(subject=f"CN={subject_cn}", issuer=f"CN={issuer_cn},O={issuer_org}", subject_cn=subject_cn,
                    issuer_cn=issuer_cn, issuer_org=issuer_org, sha256=sha, self_signed=False,
                    not_before="2023-01-01T00:00:00+00:00", not_after="2030-01-01T00:00:00+00:00", san=san)  # fmt: skip


def _found(rec, **opts) -> dict[str, str]:
    from pcapaudit.audit import AuditOptions, Auditor
    from pcapaudit.classify import classify
    from pcapaudit.findings import _detect

    a = Auditor(AuditOptions(**opts))
    cls = classify(rec, a.index, a._prefer)
    return {fd.code: fd.severity.name for fd in _detect(rec, cls, a.ctx.rule(cls.rule_id), a.ctx)}


ZSCALER = ("Zscaler Intermediate Root CA", "Zscaler Inc.")


@pytest.mark.parametrize("tenants", [None, {"jamf-pro.instance": "acme"}], ids=["no-tenant", "tenant"])
def test_inspection_of_a_jamf_cloud_instance_is_an_alarm_with_or_without_the_tenant(tenants):
    """acme.jamfcloud.com re-signed by Zscaler: Jamf says HTTPS interception is not supported for Jamf Pro,
    so it is issuer_mismatch (HIGH) also when the instance name is not configured: the wildcard rule of
    Jamf's own hosted services (which may be inspected) must not hide the unfilled instance rule."""
    rec = _tls_flow("acme.jamfcloud.com", "3.140.18.44", (_cert(*ZSCALER, "acme.jamfcloud.com", ("*.jamfcloud.com",)),))
    got = _found(rec, tenants=tenants or {})
    assert got.get("issuer_mismatch") == "HIGH", got


def test_inspection_of_a_named_jamf_hosted_service_stays_a_note():
    """jamf-patch.jamfcloud.com is listed by name among the services the Jamf Pro server calls, which the
    rules let a proxy inspect: a note, not an alarm (the instance pattern does not take it over)."""
    rec = _tls_flow("jamf-patch.jamfcloud.com", "3.140.18.45",
                    (_cert(*ZSCALER, "jamf-patch.jamfcloud.com", ("*.jamfcloud.com",)),))  # fmt: skip
    assert _found(rec) == {"inspection_ca_seen": "LOW"}


DIGICERT = ("DigiCert Global G2 TLS RSA SHA256 2020 CA1", "DigiCert Inc")


@pytest.mark.parametrize("alert, code, kind", [
    (45, "certificate_rejected_as_expired", "BLOCKED"),  # certificate_expired, the chain valid: the device's clock
    (48, "client_rejected_certificate", "INTERCEPTED"),  # unknown_ca: a forged chain may copy the issuer's name
])  # fmt: skip
def test_a_client_calling_a_valid_expected_chain_expired_is_its_clock_not_an_interception(alert, code, kind):
    from pcapaudit.audit import AuditOptions, Auditor
    from pcapaudit.classify import classify
    from pcapaudit.findings import _detect
    from pcapaudit.model import TlsAlert

    rec = _tls_flow("1-courier.push.apple.com", "17.57.146.20",
                    (_cert(*DIGICERT, "1-courier.push.apple.com", ("*.push.apple.com",)),),
                    alerts=(TlsAlert("client", 2, alert, True),), tls_handshake="client_alert")  # fmt: skip
    a = Auditor(AuditOptions())
    cls = classify(rec, a.index, a._prefer)
    got = {fd.code: (fd.kind.name, fd.severity.name) for fd in _detect(rec, cls, a.ctx.rule(cls.rule_id), a.ctx)}
    assert code in got and got[code][0] == kind, got
    if kind == "BLOCKED":
        assert "client_rejected_certificate" not in got and not any(k == "INTERCEPTED" for k, _s in got.values()), got


# -- a lookup that failed once and was answered on the retry ---------------------------------------------
@pytest.mark.parametrize("order, softened", [("fail-then-ok", True), ("ok-then-fail", False)])
def test_a_dns_failure_answered_on_the_retry_is_a_low_note(tmp_path, capsys, order, softened):
    """SERVFAIL for albert.apple.com, answered a second later (a resolver's hiccup): a LOW note that says
    it recovered, not a HIGH block; a failure after the last good answer stays what it was."""
    fail = _dns("10.0.0.5", "10.0.0.53", "albert.apple.com", 0, answers=[], rcode=2, tid=1, sport=40001)
    ok = _dns("10.0.0.5", "10.0.0.53", "albert.apple.com", 0, answers=["17.253.21.201"], tid=2, sport=40002)
    first, second = (fail, ok) if order == "fail-then-ok" else (ok, fail)
    items = [(T0 + t, p) for t, p in first] + [(T0 + 1 + t, p) for t, p in second]
    items += _dns("10.0.0.5", "10.0.0.53", "example.org", T0 + 10, answers=["93.184.216.34"], tid=9, sport=40009)
    out = _audit(capsys, _write_timed(tmp_path / "retry.pcap", items))
    f = next(f for f in out["findings"] if f["code"] == "dns_servfail")
    if softened:
        assert f["severity"] == "low" and "answered later" in f["message"], f
    else:
        assert f["severity"] == "high" and "answered later" not in f["message"], f


# -- the API: a config file, tenants as the CLI writes them ---------------------------------------------
LAB = Path(__file__).resolve().parents[2] / "captures" / "lab.yaml"


def test_the_api_reads_the_same_config_file_as_the_cli(tmp_path):
    import pcapaudit

    with_config = pcapaudit.audit(SAMPLE, config=LAB)
    by_hand = pcapaudit.audit(SAMPLE, tenants={"kandji.uuid": "4f3c2a10-7e55-4d1e-9a4b-2b6f0c8d9e01",
                                               "jamf-pro.instance": "acme"},
                              trust_issuers=["pcapaudit Lab Trust Services"],
                              devices=["192.168.50.0/24", "10.20.0.0/24"])  # fmt: skip
    assert with_config.findings.equals(by_hand.findings) and with_config.coverage.equals(by_hand.coverage)
    bare = pcapaudit.audit(SAMPLE)
    assert not bare.findings.equals(with_config.findings)
    # the arguments add to (devices, trust_issuers) or override (tenants by key) the file's values
    other = pcapaudit.audit(SAMPLE, config=LAB, tenants={"jamf-pro.instance": "other"})
    assert not other.coverage.equals(with_config.coverage)


def test_api_config_errors_name_the_file(tmp_path):
    import pcapaudit

    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants: [1, 2]\n")
    with pytest.raises(pcapaudit.UsageError, match="bad.yaml: tenants"):
        pcapaudit.audit(SAMPLE, config=bad)
    with pytest.raises(pcapaudit.UsageError, match="no such config file"):
        pcapaudit.audit(SAMPLE, config=tmp_path / "missing.yaml")


def test_api_tenants_as_the_cli_writes_them():
    import pcapaudit

    as_dict = pcapaudit.audit(SAMPLE, tenants={"kandji.region": "eu"})
    as_items = pcapaudit.audit(SAMPLE, tenants=["kandji.region=eu"])
    assert as_items.coverage.equals(as_dict.coverage)
    with pytest.raises(pcapaudit.UsageError, match="tenants: .*VENDOR.NAME"):
        pcapaudit.audit(SAMPLE, tenants=["kandji.region"])
    with pytest.raises(pcapaudit.UsageError, match="tenants: 'kandji': .*VENDOR.NAME"):
        pcapaudit.audit(SAMPLE, tenants={"kandji": "x"})


def test_another_clients_good_answer_does_not_soften_a_failure(tmp_path, capsys):
    """10.0.0.5 gets NXDOMAIN for gdmf.apple.com twice; 10.0.0.6 later gets an address from another
    resolver: 10.0.0.5 never resolved the name, so its failure stays a block."""
    items = _dns("10.0.0.5", "10.0.0.53", "gdmf.apple.com", T0, answers=[], rcode=3, tid=1, sport=40001)
    items += _dns("10.0.0.5", "10.0.0.53", "gdmf.apple.com", T0 + 1, answers=[], rcode=3, tid=2, sport=40002)
    items += _dns("10.0.0.6", "8.8.8.8", "gdmf.apple.com", T0 + 5, answers=["17.253.21.201"], tid=3, sport=40003)
    items += _dns("10.0.0.5", "10.0.0.53", "example.org", T0 + 10, answers=["93.184.216.34"], tid=9, sport=40009)
    out = _audit(capsys, _write_timed(tmp_path / "clients.pcap", items))
    f = next(f for f in out["findings"] if f["code"] == "dns_nxdomain")
    assert f["severity"] == "high" and "answered later" not in f["message"], f


def test_a_truncated_udp_answer_is_no_nodata_block(tmp_path, capsys):
    """An empty answer with TC set says "ask again over TCP", not "no address": no dns_no_address, and the
    dns table says truncated."""
    from scapy.all import DNS, DNSQR, IP, UDP, Ether

    q = Ether() / IP(src="10.0.0.5", dst="10.0.0.53") / UDP(sport=40001, dport=53) / DNS(id=5, rd=1, qd=DNSQR(qname="gdmf.apple.com"))
    r = Ether() / IP(src="10.0.0.53", dst="10.0.0.5") / UDP(sport=53, dport=40001) / DNS(
        id=5, qr=1, rd=1, ra=1, tc=1, qd=DNSQR(qname="gdmf.apple.com"))
    items = [(T0, q), (T0 + 0.01, r)]
    items += _dns("10.0.0.5", "10.0.0.53", "example.org", T0 + 10, answers=["93.184.216.34"], tid=9, sport=40009)
    out = _audit(capsys, _write_timed(tmp_path / "tc.pcap", items))
    assert not [f for f in out["findings"] if f["code"].startswith("dns_")], out["findings"]
    row = next(d for d in out["dns"] if d["query"] == "gdmf.apple.com")
    assert row["truncated"] is True and row["rcode"] == "NOERROR"


# -- "served from an address DNS did not give": this client's own lookups, before the flow ----------------
def _tls_to(client, dst, sni, t, sport):
    from tests.craft import client_hello, server_hello, tcp_session

    return [(p._ts, p) for p in tcp_session(client, dst, sport, 443, [client_hello(sni)], [server_hello()], t0=t)]


@pytest.mark.parametrize("case, flagged", [
    ("own-lookup-other-address", True),  # this client was told .51 and went to .50
    ("lookup-after-the-flow", False),  # a cached address; the client's lookup a minute later gave another
    ("other-clients-lookup", False),  # another device was told .51; this one asked nothing in the capture
])  # fmt: skip
def test_server_not_in_dns_answer_uses_the_clients_own_earlier_lookups(tmp_path, capsys, case, flagged):
    a, b = "192.168.50.10", "192.168.50.11"
    items = []
    if case == "own-lookup-other-address":
        items += _dns(a, "10.0.0.53", "gdmf.apple.com", T0, answers=["17.253.21.51"])
        items += _tls_to(a, "17.253.21.50", "gdmf.apple.com", T0 + 1, 50001)
    elif case == "lookup-after-the-flow":
        items += _tls_to(a, "17.253.21.50", "gdmf.apple.com", T0, 50001)
        items += _dns(a, "10.0.0.53", "gdmf.apple.com", T0 + 60, answers=["17.253.21.51"])
    else:
        items += _dns(b, "10.0.0.53", "gdmf.apple.com", T0, answers=["17.253.21.51"])
        items += _tls_to(a, "17.253.21.50", "gdmf.apple.com", T0 + 1, 50001)
    items += _dns(a, "10.0.0.53", "example.org", T0 + 120, answers=["93.184.216.34"], tid=9, sport=40009)
    out = _audit(capsys, _write_timed(tmp_path / "dnsaddr.pcap", items), "--config", LAB)
    found = [f for f in out["findings"] if f["code"] == "server_not_in_dns_answer"]
    assert bool(found) is flagged, out["findings"]
    assert all(f["severity"] == "low" for f in found)  # a note: the device did not use that answer
    assert _row(out["coverage"], "apple.gdmf")["status"] != "intercepted"


def test_a_tunnel_is_where_its_connect_goes_not_what_its_sni_says(tmp_path, capsys):
    """CONNECT tunnel.example.net:443, then a ClientHello naming gdmf.apple.com inside the tunnel: the proxy
    connected to tunnel.example.net, so the flow is not Apple's and does not reach Apple's row."""
    from tests.craft import client_hello, tcp_session, write

    connect = b"CONNECT tunnel.example.net:443 HTTP/1.1\r\nHost: tunnel.example.net:443\r\n\r\n"
    pkts = tcp_session("192.168.50.10", "10.0.0.3", 50001, 3128, [connect, client_hello("gdmf.apple.com")],
                       [b"HTTP/1.1 200 Connection established\r\n\r\n", b""])  # fmt: skip
    out = _audit(capsys, write(tmp_path / "tunnel.pcap", pkts), "--config", LAB)
    flow = next(f for f in out["flows"] if f["dst_port"] == 3128)
    assert flow["connect_host"] == "tunnel.example.net" and flow["sni"] == "gdmf.apple.com"
    assert flow["rule_id"] != "apple.gdmf" and flow["matched_by"] != "sni", flow
    assert all(r["status"] == "never seen" for r in out["coverage"] if r["rule_id"] == "apple.gdmf")
    assert any(f["code"] == "not_allowed" and "tunnel.example.net" in f["target"] for f in out["findings"])


def test_a_port_reused_after_a_close_is_a_new_connection(tmp_path, capsys):
    """albert.apple.com over a connection closed by FIN, then, a second later, a SYN with a new ISN on the
    same ports carrying a ClientHello for mdmenrollment.apple.com reset by the server: two flows (Zeek's
    connection reuse), and the second one's block is reported."""
    from tests.craft import client_hello, server_hello, tcp_session, write

    first = tcp_session("192.168.50.10", "17.253.21.201", 50001, 443, [client_hello("albert.apple.com")],
                        [server_hello()], close="fin", t0=T0, isn=1000, isn_s=5000)  # fmt: skip
    second = tcp_session("192.168.50.10", "17.253.21.205", 50001, 443, [client_hello("mdmenrollment.apple.com")],
                         [b""], close="rst_server", t0=T0 + 1, isn=900_000, isn_s=7000)  # fmt: skip
    # the same server address for both (the 5-tuple is reused)
    for p in second:
        from scapy.all import IP

        if p[IP].src == "17.253.21.205":
            p[IP].src = "17.253.21.201"
        if p[IP].dst == "17.253.21.205":
            p[IP].dst = "17.253.21.201"
    out = _audit(capsys, write(tmp_path / "reuse.pcap", first + second), "--config", LAB)
    flows = [f for f in out["flows"] if f["dst_port"] == 443]
    assert sorted(f["sni"] for f in flows) == ["albert.apple.com", "mdmenrollment.apple.com"], flows
    codes = {(f["code"], f["rule_id"]) for f in out["findings"]}
    assert ("rst_after_client_hello", "apple.mdmenrollment") in codes, codes


@pytest.mark.parametrize("wait, blocked", [(0.001, False), (3.0, True)])
def test_a_client_cancelling_right_after_its_clienthello_is_no_block(tmp_path, capsys, wait, blocked):
    """The client resets its own connection 1 ms after the ClientHello (a Happy Eyeballs loser, a cancelled
    request): the server had no time to answer, so no silence_after_client_hello; after 3 s of silence the
    client giving up is the block it looks like."""
    from scapy.all import IP, TCP, Ether

    from tests.craft import at, client_hello, write

    c, s, sp = "192.168.50.10", "17.253.21.201", 50001
    ch = client_hello("albert.apple.com")
    pkts = [at(Ether() / IP(src=c, dst=s) / TCP(sport=sp, dport=443, flags="S", seq=100), T0),
            at(Ether() / IP(src=s, dst=c) / TCP(sport=443, dport=sp, flags="SA", seq=500, ack=101), T0 + 0.001),
            at(Ether() / IP(src=c, dst=s) / TCP(sport=sp, dport=443, flags="A", seq=101, ack=501), T0 + 0.002),
            at(Ether() / IP(src=c, dst=s) / TCP(sport=sp, dport=443, flags="PA", seq=101, ack=501) / ch, T0 + 0.002),
            at(Ether() / IP(src=c, dst=s) / TCP(sport=sp, dport=443, flags="R", seq=101 + len(ch)), T0 + 0.002 + wait)]
    pkts += [at(p, t + 10) for t, p in _dns(c, "10.0.0.53", "example.org", T0, answers=["93.184.216.34"])]
    out = _audit(capsys, write(tmp_path / "cancel.pcap", pkts), "--config", LAB)
    found = [f for f in out["findings"] if f["code"] == "silence_after_client_hello"]
    assert bool(found) is blocked, out["findings"]


@pytest.mark.parametrize("fallback, severity", [(True, "low"), (False, "high")])
def test_quic_that_fell_back_to_tcp_is_a_note(tmp_path, capsys, fallback, severity):
    """Three QUIC Initials to gdmf.apple.com that nobody answers (UDP 443 blocked), then the same client's
    TLS over TCP to it completes: QUIC is blocked but the service is reached, a LOW note and a reached row;
    without the TCP connection it stays the block it is."""
    from scapy.all import IP, UDP, Ether

    from tests.craft import at, client_hello, server_hello, tcp_session, write

    from tests.unit.test_protocols import _crypto, _protect  # a protected RFC 9001 Initial carrying an SNI

    c, s = "192.168.50.10", "17.253.21.201"
    initial = _protect(1, bytes(range(8)), _crypto(0, client_hello("gdmf.apple.com")[5:]), pn=0)
    pkts = [at(Ether() / IP(src=c, dst=s) / UDP(sport=55000, dport=443) / initial, T0 + k * 0.3) for k in range(3)]
    if fallback:  # the client's Finished and data after the server's flight: a complete handshake
        finished = b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03\x00\x20" + bytes(32)
        pkts += tcp_session(c, s, 50001, 443, [client_hello("gdmf.apple.com"), finished],
                            [server_hello(version=0x0304, cipher=0x1301), b"\x17\x03\x03\x00\x20" + bytes(32)],
                            t0=T0 + 1)  # fmt: skip
    pkts += [at(p, t + 20) for t, p in _dns(c, "10.0.0.53", "example.org", T0, answers=["93.184.216.34"])]
    out = _audit(capsys, write(tmp_path / "quic.pcap", pkts), "--config", LAB)
    found = [f for f in out["findings"] if f["code"] == "udp_no_reply"]
    assert len(found) == 1 and found[0]["severity"] == severity, out["findings"]
    if fallback:
        assert "fell back" in found[0]["message"]
        assert _row(out["coverage"], "apple.gdmf")["status"] == "reached"


@pytest.mark.parametrize("starttls", [False, True])
def test_smtp_on_587_without_starttls_is_cleartext(tmp_path, capsys, starttls):
    """Endpoint Central's mail over 587 is SMTP upgraded by STARTTLS; a session that logs in without it
    sends the password in clear: a cleartext finding (the ruleset's own note says so)."""
    from tests.craft import client_hello, server_hello, tcp_session, write

    srv = [b"220 mail.example.com ESMTP\r\n", b"250-mail.example.com\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"]
    cli = [b"", b"EHLO ec.example.com\r\n"]
    if starttls:
        cli += [b"STARTTLS\r\n", client_hello("mail.example.com")]
        srv += [b"220 2.0.0 Ready to start TLS\r\n", server_hello()]
    else:
        cli += [b"AUTH PLAIN AGVjAHNlY3JldA==\r\n", b"QUIT\r\n"]
        srv += [b"235 2.7.0 Authentication successful\r\n", b"221 Bye\r\n"]
    pkts = tcp_session("192.168.50.20", "192.168.60.25", 50001, 587, cli, srv, t0=T0)
    out = _audit(capsys, write(tmp_path / "smtp.pcap", pkts), "--vendor", "endpoint-central")
    flow = next(f for f in out["flows"] if f["dst_port"] == 587)
    assert flow["rule_id"] == "endpoint-central.smtp-tls-587", flow
    found = [f for f in out["findings"] if f["code"] == "cleartext"]
    assert bool(found) is (not starttls), (flow["smtp_starttls"], out["findings"])


def test_a_fast_open_syn_refused_is_one_block_not_two(tmp_path, capsys):
    """TCP Fast Open: the ClientHello rides in the SYN and the server answers RST: the SYN refused is the
    block (syn_rejected); the same reset is not also a reset after the ClientHello."""
    from scapy.all import IP, TCP, Ether

    from tests.craft import at, client_hello, write

    c, s = "192.168.50.10", "17.253.21.201"
    ch = client_hello("albert.apple.com")
    pkts = [at(Ether() / IP(src=c, dst=s) / TCP(sport=50001, dport=443, flags="S", seq=100) / ch, T0),
            at(Ether() / IP(src=s, dst=c) / TCP(sport=443, dport=50001, flags="RA", seq=0, ack=101 + len(ch)), T0 + 0.01)]
    pkts += [at(p, t + 10) for t, p in _dns(c, "10.0.0.53", "example.org", T0, answers=["93.184.216.34"])]
    out = _audit(capsys, write(tmp_path / "tfo.pcap", pkts), "--config", LAB)
    codes = sorted(f["code"] for f in out["findings"] if f["kind"] == "blocked")
    assert codes == ["syn_rejected"], out["findings"]


def test_client_lookups_hold_a_bounded_backlog(monkeypatch):
    """Answered lookups wait unindexed until a flow asks, but never more than PENDING_ROWS of them; what
    is asked is the same whenever they were indexed."""
    import pyarrow as pa

    from pcapaudit.findings import ClientLookups

    monkeypatch.setattr(ClientLookups, "PENDING_ROWS", 5)
    lk = ClientLookups()
    for i in range(4):
        lk.add_table(pa.table({"c": [f"10.0.0.{i}", "10.0.0.9"], "q": ["a.example", "b.example"], "t": [float(i), 9.0 - i]}))
        assert len(lk._pending) <= 3 and lk._pending_rows <= 5
    assert lk.before("10.0.0.2", "a.example", 2.0) and not lk.before("10.0.0.2", "a.example", 1.9)
    assert lk.before("10.0.0.9", "b.example", 6.0) and not lk.before("10.0.0.9", "b.example", 5.9)
