"""Passive TLS 1.3 interception evidence (pcapaudit/tls13.py, issue 20) on hand-made flows tables: the
re-signing proxy's physics fires, everything that only resembles it does not, and nothing is ever HIGH."""

from __future__ import annotations

import random

import pyarrow as pa

from pcapaudit import tls13
from pcapaudit.findings import FindingCollector
from pcapaudit.model import Finding, FindingKind, Severity

SHAPE = "t13_1302_002b-0033_001d"
NAMES = {  # name -> vendor (ruleset)
    "albert.apple.com": "apple", "gdmf.apple.com": "apple", "acme.jamfcloud.com": "jamf-pro",
    "4f3c2a10-7e55-4d1e-9a4b-2b6f0c8d9e01.web-api.kandji.io": "kandji",
    "android.googleapis.com": "google-fcm",
}  # fmt: skip


def _table(rows: list[dict]) -> pa.Table:
    cols = {c: [] for c in tls13.COLUMNS}
    for i, r in enumerate(rows):
        full = {"uid": f"C{i}", "ts": 1.0 + i, "transport": "tcp", "src_ip": "192.168.50.10",
                "dst_ip": f"10.0.0.{i % 250}", "dst_port": 443, "tls_server_shape": SHAPE,
                "tls_handshake": "complete", "rule_id": None, "service": None, "matched_by": "sni",
                "cert_issuer": None, **r}  # fmt: skip
        full["vendor"] = full.get("vendor", NAMES.get(full["sni"]))
        for c in tls13.COLUMNS:
            cols[c].append(full.get(c))
    return pa.table(cols)


def _proxy(name: str, **kw) -> dict:
    """A flow through a re-signing proxy: flight = constant + 2 x name length (+ signature jitter)."""
    return {"sni": name, "tls_server_flight": 2227 + 2 * len(name) + kw.pop("jitter", 0), **kw}


def _codes(table, rows=()) -> list[tuple[str, Severity]]:
    return sorted((f.code, f.severity) for f, _u in tls13.findings(table, list(rows)))


def test_one_stack_for_three_vendors_with_name_sized_flights_fires_low():
    t = _table([_proxy(n, jitter=j) for n, j in zip(NAMES, (0, 1, 2, 0, 2))])
    res, _inc, summaries = tls13.verdicts(t)
    assert len(res) == 5 and all(v.signals == ("one_stack_for_vendors",) for v in res.values())
    assert {v.severity for v in res.values()} == {Severity.LOW}
    assert len(summaries) == 1 and summaries[0]["vendors"] == ["apple", "google-fcm", "jamf-pro", "kandji"]
    assert ("tls13_one_stack", Severity.LOW) in _codes(t)


def test_genuine_vendors_differ_and_same_shape_alone_is_nothing():
    # the same OpenSSL defaults everywhere, but each vendor's own chain (sizes as the clean lab recording)
    flights = [2387, 2383, 3237, 2011, 2206]
    rows = [{"sni": n, "tls_server_flight": f} for n, f in zip(NAMES, flights)]
    assert tls13.verdicts(_table(rows))[0] == {}


def test_two_vendors_are_not_enough():
    names = [n for n in NAMES if NAMES[n] in ("apple", "kandji")]
    assert tls13.verdicts(_table([_proxy(n) for n in names]))[0] == {}


def test_a_constant_flight_whatever_the_name_does_not_fit():
    """A CDN certificate naming many hosts, or a synthetic generator: the flight does not grow with the
    name, so it cannot be a minted-per-name chain."""
    assert tls13.verdicts(_table([{"sni": n, "tls_server_flight": 2300} for n in NAMES]))[0] == {}


def test_flights_of_random_size_never_cluster():
    """The benchmark generator's TLS 1.3 flights: one shape, a random size per flow, many flows per name.
    Single cells gather flows of several vendors by chance, but no name's flights repeat there."""
    rng = random.Random(7)
    rows = [{"sni": n, "tls_server_flight": rng.randint(1800, 4500)} for n in NAMES for _ in range(300)]
    assert tls13.verdicts(_table(rows))[0] == {}


def test_other_signals_raise_the_confidence_never_to_high():
    names = list(NAMES)
    rows = [_proxy(n) for n in names]
    rows.append(_proxy(names[1], tls_handshake="client_abort_after_server_flight"))  # a pinned client
    rows.append({"sni": names[2], "tls_server_flight": 3237})  # the same name on a clean path
    rows.append({"sni": names[2], "tls_server_flight": 3237})
    t = _table(rows)
    dns = Finding(FindingKind.INTERCEPTED, Severity.MEDIUM, "server_not_in_dns_answer", "C5", None, None,
                  None, None, "", (), "x")  # fmt: skip
    res, _inc, _s = tls13.verdicts(t, [(dns, ("C5",))])
    assert res["C5"].signals == ("one_stack_for_vendors", "client_abort_after_flight", "path_evidence")
    assert res["C5"].confidence == 0.9 and res["C5"].severity is Severity.MEDIUM
    assert res["C2"].signals == ("one_stack_for_vendors", "flight_differs_for_name")
    assert res["C2"].severity is Severity.MEDIUM
    assert "C6" not in res and "C7" not in res  # the clean path's flows
    assert all(s is not Severity.HIGH for _c, s in _codes(t, [(dns, ("C5",))]))


def test_no_tls13_flights_no_findings():
    assert tls13.findings(_table([]), []) == []
    t = _table([{"sni": "albert.apple.com", "tls_server_flight": None}])
    assert tls13.findings(t, []) == []


def test_retract_takes_covered_flows_out_of_a_folded_row():
    c = FindingCollector()

    def note(uid):
        return Finding(FindingKind.INTERCEPTED, Severity.INFO, "evidence_unavailable", uid, None, None, None,
                       "x", "", (), "intercepted:unavailable|x", ts=1.0)  # fmt: skip

    for u in ("A", "B", "C"):
        c.add(note(u), "10.0.0.1")
    assert c.retract("evidence_unavailable", {"A"}) == 1
    (row, uids), = c.rows()
    assert row.count == 2 and uids == ("B", "C") and row.uid == "B"
    assert c.retract("evidence_unavailable", {"B", "C"}) == 2
    assert c.rows() == []


def test_the_lab_recordings_together_give_the_name_signal_to_the_intercepted_flows_only():
    """tls13-inspection-passive and tls13-clean-forwarder audited as one capture (a device on two paths):
    the intercepted flows also differ from their names' clean flights; the clean flows get nothing."""
    from pathlib import Path

    import pcapaudit

    here = Path(__file__).resolve().parents[1] / "scenarios"
    r = pcapaudit.audit([str(here / "tls13-inspection-passive" / "input.pcap"),
                         str(here / "tls13-clean-forwarder" / "input.pcap")])  # fmt: skip
    passive = r.findings[r.findings["code"] == "tls13_passive"]
    assert int(passive["count"].sum()) == 8
    assert passive["evidence"].str.contains("flight_differs_for_name").all()
    assert set(passive["severity"]) == {"medium"}
    # the clean path's TLS 1.3 notes stay; acme.jamfcloud.com has one too without the tenant configured:
    # the Jamf Cloud instance may not be inspected (its rule, not the Jamf-hosted services' wildcard)
    notes = r.findings[r.findings["code"] == "evidence_unavailable"]
    assert len(notes) == 5 and "jamf-pro.web-app-cloud" in set(notes["rule_id"])


QSHAPE = "q13_1301_0033-002b_001d"


def test_quic_flows_cluster_like_tcp_ones_with_their_own_identifier():
    """QUIC (issue 20): the flight is the server's Handshake packet sizes; a proxy answering QUIC for three
    vendors is found the same way, named udp/443, its certificate said unavailable as QUIC."""
    rows = [_proxy(n, transport="udp", tls_server_shape=QSHAPE, quic_version="QUICv1", tls_handshake=None)
            for n in NAMES]  # fmt: skip
    found = tls13.findings(_table(rows), [])
    per_flow = [f for f, _u in found if f.code == tls13.CODE]
    assert len(per_flow) == 5
    assert all(f.identifier.endswith("|udp/443") for f in per_flow)
    ev = dict(per_flow[0].evidence)
    assert ev["quic_version"] == "QUICv1" and ev["cert"] == "unavailable: quic"
    assert {f.code for f, _u in found} == {tls13.CODE, tls13.CAPTURE_CODE}


def test_quic_and_tcp_flights_are_never_mixed():
    """Two vendors over TCP and two others over QUIC whose flights happen to line up: one stack answering
    for four vendors only if TCP and QUIC flights were compared (their header overheads differ)."""
    tcp = [n for n in NAMES if NAMES[n] in ("apple", "kandji")]
    udp = [n for n in NAMES if NAMES[n] in ("jamf-pro", "google-fcm")]
    rows = [_proxy(n) for n in tcp] + [_proxy(n, transport="udp", quic_version="QUICv1") for n in udp]
    assert tls13.verdicts(_table(rows))[0] == {}
    # nor does a name's QUIC flight make its TCP flight "differ for the name"
    quic = {"sni": "gdmf.apple.com", "tls_server_flight": 5000, "transport": "udp", "quic_version": "QUICv1"}
    rows = [_proxy(n) for n in NAMES] + [quic]
    res = tls13.verdicts(_table(rows))[0]
    assert len(res) == 5 and all(v.signals == ("one_stack_for_vendors",) for v in res.values())
