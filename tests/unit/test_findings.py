"""Findings: the quiet() pre-check never hides a finding; dedup of repeated findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapaudit.audit import AuditOptions, Auditor
from pcapaudit.capture.pcapfile import CaptureFile
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
