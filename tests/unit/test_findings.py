"""Findings: the quiet() pre-check never hides a finding; dedup of repeated findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapaudit.audit import AuditOptions, Auditor
from pcapaudit.capture.pcapfile import CaptureFile
from pcapaudit.errors import CaptureError
from pcapaudit.findings import FindingCollector, _detect, quiet
from pcapaudit.model import Finding, FindingKind, Severity
from tests.conftest import CORPUS

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "tests" / "scenarios").glob("*/input.pcap"))


def _flows_of(paths, **opts):
    seen = []
    for p in paths:
        a = Auditor(AuditOptions(**opts), on_flow=lambda f, c: seen.append((f, c)))
        try:
            a.run_file(CaptureFile(str(p)))
        except Exception:  # noqa: BLE001 - unreadable corpus files are tested elsewhere
            continue
        a.finish()
        yield from ((f, c, a.ctx) for f, c in seen)
        seen.clear()


def test_quiet_never_hides_a_finding_in_the_scenarios():
    checked = 0
    for f, c, ctx in _flows_of(SCENARIOS, trust_issuers=("pcapaudit Lab Trust Services",)):
        rule = ctx.rule(c.rule_id)
        if quiet(f, c, rule, ctx):
            assert list(_detect(f, c, rule, ctx)) == [], (f, c)
            checked += 1
    assert checked > 20


def test_quiet_never_hides_a_finding_in_the_corpus(corpus):
    paths = sorted(corpus.glob("*/*.pcap*")) + sorted(corpus.glob("suricata-verify/**/*.pcap"))
    checked = 0
    for f, c, ctx in _flows_of(paths):
        rule = ctx.rule(c.rule_id)
        if quiet(f, c, rule, ctx):
            assert list(_detect(f, c, rule, ctx)) == [], (f, c)
            checked += 1
    assert checked > 200


def _finding(uid, ts, sev=Severity.LOW):
    return Finding(FindingKind.BLOCKED, sev, "syn_no_reply", uid, "apple.apns", "apple", "APNs", "x", "m", (),
                   "blocked:syn_no_reply|apple.apns|x|tcp/5223", ts)  # fmt: skip


def test_collector_folds_repeats():
    c = FindingCollector()
    assert c.add(_finding("C2", 2.0)) is True
    assert c.add(_finding("C1", 1.0, Severity.HIGH)) is False
    assert c.add(_finding("C2", 3.0)) is False
    (row, uids), = c.rows()
    assert row.count == 3 and row.uid == "C1" and row.ts == 1.0 and row.severity is Severity.HIGH
    assert uids == ("C2", "C1")


def _tables(path, plain: bool, **opts):
    """The five tables, and how many flows took the plain shortcut (no FlowRecord at all)."""
    a = Auditor(AuditOptions(**opts))
    records = []
    if not plain:
        a.engine.on_plain = None  # every flow as a FlowRecord through the full path
    inner = a.engine.on_flow
    a.engine.on_flow = a._flow = lambda rec: (records.append(1), inner(rec))  # also counts fall-backs
    a.run_file(CaptureFile(str(path)))
    r = a.finish()
    findings = [(f, uids) for f, uids in r.finding_records]
    return (r.flows, r.dns, findings, r.coverage, r.weirds), len(r.flows) - len(records)


PLAIN_CASES = [ROOT / "captures" / "enrollment-troubleshooting.pcap"] + SCENARIOS


@pytest.mark.parametrize("opts", [{}, {"devices": ("10.0.0.0/8", "fd00::/8")}], ids=["all-hosts", "devices"])
def test_plain_flows_report_exactly_what_the_full_path_reports(opts):
    """Flows without application details skip the FlowRecord, the detectors and flow_row when their
    destination is known to be quiet; every table must come out identical, uid lists included."""
    used = 0
    for path in PLAIN_CASES:
        fast, n = _tables(path, True, trust_issuers=("pcapaudit Lab Trust Services",), **opts)
        full, _ = _tables(path, False, trust_issuers=("pcapaudit Lab Trust Services",), **opts)
        used += n
        for got, want in zip(fast, full):
            if hasattr(got, "equals"):
                assert got.equals(want), path
            else:
                assert got == want, path
    assert used > 30


def test_plain_flows_in_the_corpus(corpus):
    paths = sorted(corpus.glob("*/*.pcap*")) + sorted(corpus.glob("suricata-verify/**/*.pcap"))
    used = 0
    for path in paths:
        try:
            fast, n = _tables(path, True)
        except CaptureError:  # unreadable corpus files are tested elsewhere
            continue
        full, _ = _tables(path, False)
        used += n
        for got, want in zip(fast, full):
            assert got.equals(want) if hasattr(got, "equals") else got == want, path
    assert used > 100


def test_plain_flows_on_a_generated_span_capture(tmp_path):
    """The benchmark generator's traffic (DNS-heavy, like a SPAN port) through both paths."""
    import subprocess
    import sys

    out = tmp_path / "span.pcap"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_capture.py"), str(out), "--packets", "8000",
                    "--seed", "7"], check=True, capture_output=True)  # fmt: skip
    fast, used = _tables(out, True)
    full, _ = _tables(out, False)
    for got, want in zip(fast, full):
        assert got.equals(want) if hasattr(got, "equals") else got == want
    assert used > 300
