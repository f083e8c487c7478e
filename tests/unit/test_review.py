"""A new user's review: the checklist's lookups and cross-vendor rows, explicit file lists, clamped records,
time windows that select nothing, compressed captures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcapaudit.cli import main

ROOT = Path(__file__).resolve().parents[2]
S = ROOT / "tests" / "scenarios"
E = ROOT / "captures" / "enrollment-troubleshooting.pcap"


def _coverage(capsys, *args) -> list[dict]:
    main(["audit", *map(str, args), "-f", "json", "--fail-on", "none"])
    return json.loads(capsys.readouterr().out)["coverage"]


def _row(rows, rid):
    return next(r for r in rows if r["rule_id"] == rid)


# -- 1: a lookup counts for the rules a flow to the name would count for ---------------------------------
def test_a_lookup_of_the_device_domain_is_not_one_of_an_unfilled_tenant_pattern(capsys):
    rows = _coverage(capsys, S / "kandji-ssl-inspection-tls12" / "input.pcap", "--config", S / "lab.yaml")
    assert not any(r["rule_id"] == "kandji.us.enrollment-profile" and r["attempted"] for r in rows), [
        r for r in rows if r["status"] == "tried, not reached"]
    assert not any(r["status"] == "tried, not reached" for r in rows if r["vendor"] == "kandji")


def test_a_lookup_of_an_exact_host_does_not_try_the_tenant_web_app(capsys):
    rows = _coverage(capsys, S / "kandji-region-mismatch" / "input.pcap", "--config", S / "lab.yaml")
    tried = [r["service"] for r in rows if r["status"] == "tried, not reached"]
    assert tried == [], tried


def test_name_rules_follow_satisfied_rules(book):
    from pcapaudit.coverage import CoverageTracker
    from pcapaudit.rules.loader import load_rulebook
    from pcapaudit.rules.matcher import RuleIndex

    tb = load_rulebook(tenants={"kandji.uuid": "4f3c2a10"})
    t = CoverageTracker(RuleIndex(tb))
    dev = t.name_rules("4f3c2a10.web-api.kandji.io")
    assert dev and all("{subdomain}" not in tb.rule(r).targets_text for r in dev), dev
    assert not any("{subdomain}" in tb.rule(r).targets_text for r in t.name_rules("managed-library.kandji.io"))
    # a name only a tenant pattern matches still counts for it
    assert any("{subdomain}" in tb.rule(r).targets_text for r in t.name_rules("acme.kandji.io"))


# -- 2: Jamf's requirements on Apple's network are met by Apple's flows ---------------------------------
@pytest.mark.parametrize("capture", [E, S / "clean-apple-jamf-enrollment" / "input.pcap"])
def test_jamf_apns_and_apple_rows_count_apples_flows(capsys, capture):
    cfg = ROOT / "captures" / "lab.yaml" if capture == E else S / "lab.yaml"
    rows = _coverage(capsys, capture, "--config", cfg)
    apns, jamf = _row(rows, "apple.apns"), _row(rows, "jamf-pro.device-apns")
    assert apns["flows"] > 0 and jamf["flows"] == apns["flows"], (apns, jamf)
    assert jamf["status"] == apns["status"], (apns, jamf)
    cdn = _row(rows, "jamf-pro.device-apple-cdn")
    assert cdn["flows"] > 0 and cdn["status"] != "never seen", cdn


def test_met_by_keeps_the_borrowing_rules_ports(book):
    from pcapaudit.classify import classify
    from pcapaudit.coverage import CoverageTracker
    from pcapaudit.rules.matcher import RuleIndex
    from tests.unit.test_issue17 import _flow

    index = RuleIndex(book)
    t = CoverageTracker(index)
    f = _flow(dst_ip="17.57.146.20", dst_port=5223, sni="1-courier.push.apple.com")
    rules = t.rules_for_flow(f, classify(f, index))
    assert {"apple.apns", "jamf-pro.device-apns"} <= rules, rules
    assert classify(f, index).rule_id == "apple.apns"  # classification unchanged
    g = _flow(dst_ip="17.57.146.20", dst_port=2197, sni="api.push.apple.com")  # apple.apns lists 2197, Jamf not
    rules = t.rules_for_flow(g, classify(g, index))
    assert "apple.apns" in rules and "jamf-pro.device-apns" not in rules, rules


def test_met_by_must_name_a_rule_of_a_loaded_vendor(tmp_path):
    from pcapaudit.rules.loader import RulesetError, builtin_dir, load_rulebook

    text = (builtin_dir() / "jamf-pro.yaml").read_text().replace("met_by: [apple.apns]", "met_by: [apple.nope]")
    (tmp_path / "jamf-pro.yaml").write_text(text)
    with pytest.raises(RulesetError, match="apple.nope"):
        load_rulebook([builtin_dir() / "apple.yaml", tmp_path / "jamf-pro.yaml"])


# -- 3: a named file that is no capture, among others: a weird row, the others audited ------------------
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_text_file_among_named_captures_is_a_weird_row(tmp_path, capsys, jobs):
    text = tmp_path / "notes.pcap"
    text.write_text("hello, not a capture\n")
    out = tmp_path / "r.json"
    assert main(["audit", str(E), str(text), "-f", "json", "-o", str(out), "--jobs", jobs]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "notes.pcap" in err
    d = json.loads(out.read_text())
    assert d["summary"]["flows"] == 24 and d["summary"]["weird"] == 1, d["summary"]
    assert [w["name"] for w in d["weirds"]] == ["capture_unreadable"] and "notes.pcap" in d["weirds"][0]["detail"]
    assert any("notes.pcap" in e for e in d["summary"]["errors"])


def test_a_text_file_alone_is_only_an_error(tmp_path, capsys):
    text = tmp_path / "notes.pcap"
    text.write_text("hello, not a capture\n")
    out = tmp_path / "r.json"
    assert main(["audit", str(text), "-f", "json", "-o", str(out)]) == 2
    assert "not a pcap or pcapng capture" in capsys.readouterr().err and not out.exists()
    assert main(["audit", str(text), str(text), "-f", "json", "-o", str(out)]) == 2 and not out.exists()


# -- 4: a record that says it captured more than the wire carried: a weird row and a count ------------
def _clamped_pcap(path: Path) -> Path:
    import struct

    from scapy.all import IP, TCP, Ether

    pkts = [bytes(Ether() / IP(src="10.0.0.2", dst="17.57.146.20") / TCP(sport=40000 + i, dport=443, flags="S"))
            for i in range(3)]  # fmt: skip
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, p in enumerate(pkts):
        incl = len(p) + (10 if i == 1 else 0)  # the second says 10 bytes more than the wire carried
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, incl, len(p)) + p
    path.write_bytes(out)
    return path


@pytest.mark.parametrize("engine", ["core", "fast"])
def test_a_captured_length_beyond_the_wire_length_is_a_weird_row(tmp_path, capsys, engine):
    cap = _clamped_pcap(tmp_path / "c.pcap")
    main(["audit", str(cap), "-f", "json", "--fail-on", "none", "--engine", engine])
    d = json.loads(capsys.readouterr().out)
    rows = [w for w in d["weirds"] if w["name"] == "capture_length_exceeds_wire_length"]
    assert len(rows) == 1 and "1 pcap record " in rows[0]["detail"] and "packet 2" in rows[0]["detail"], d["weirds"]
    assert d["summary"]["capture_length_exceeds_wire_length"] == 1 and d["summary"]["packets"] == 3, d["summary"]
    assert d["summary"]["weird"] >= 1


# -- 5: a window or filter that leaves nothing of the capture: an error naming the capture's span -------
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_window_outside_the_capture_is_an_error(capsys, jobs):
    assert main(["audit", str(E), "--start", "2030-01-01T00:00:00Z", "--jobs", jobs, "-q"]) == 2
    err = capsys.readouterr().err
    assert "left no packet" in err and "2026-11-26T23:07:59" in err and "2026-11-26T23:08:05" in err, err
    assert main(["audit", str(E), "--filter", "tcp port 9", "-q"]) == 2
    assert "--filter left no packet" in capsys.readouterr().err
    # a window that keeps some packets is an ordinary audit
    assert main(["audit", str(E), "--start", "2026-11-26T23:08:00Z", "-q", "--fail-on", "none"]) == 0
